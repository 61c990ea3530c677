#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| streaming_fuzz::ids(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| streaming_fuzz::object_url(data));

//! Every saved input (`seeds/<target>/`, the corpus the fuzzer starts from,
//! and `regressions/<target>/`, inputs that once failed) through its check.

use std::path::Path;

#[test]
fn every_saved_input_passes_its_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for target in streaming_fuzz::TARGETS {
        for directory in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(directory).join(target)) else { continue };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("a saved input");
                let outcome = std::panic::catch_unwind(|| streaming_fuzz::check(target, &data));
                assert!(outcome.is_ok(), "{target}: {} fails its check", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= streaming_fuzz::TARGETS.len(), "the seeds are missing: {checked} inputs");
}

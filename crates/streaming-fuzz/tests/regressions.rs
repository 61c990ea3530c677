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

#[test]
fn every_check_has_its_fuzz_target_and_no_target_lacks_a_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("the fuzz targets")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().replace(".rs", ""))
        .collect();
    files.sort();
    let mut checks = streaming_fuzz::TARGETS.to_vec();
    checks.sort_unstable();
    assert_eq!(files, checks);
}

//! The API guide's curl walk-through (`docs/api.md`, "Try it with curl"),
//! run block by block against the service on its embedded defaults: a guide
//! that no longer works fails here.

use std::path::PathBuf;

use crate::harness::{spawn, MOVIE, READY};

/// The `sh` blocks of the section headed `heading`.
fn shell_blocks(text: &str, heading: &str) -> Vec<String> {
    let section = text.split(heading).nth(1).unwrap_or_else(|| panic!("no section {heading:?}"));
    let section = section.split("\n## ").next().unwrap_or_default();
    section.split("```sh\n").skip(1).map(|block| block.split("```").next().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn the_curl_walk_through_runs_against_the_service() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let text = std::fs::read_to_string(file).unwrap();
    let blocks = shell_blocks(&text, "## Try it with curl");
    assert!(blocks.len() >= 4, "the walk-through has its blocks: {}", blocks.len());

    // The first block names the variables: the demo's ids, as the test uses them.
    let setup = &blocks[0];
    assert!(setup.contains(&format!("export TRACK={READY}")), "{setup}");
    assert!(setup.contains(&format!("export MOVIE={MOVIE}")), "{setup}");
    assert!(setup.contains("export BASE=http://127.0.0.1:8080"), "{setup}");

    let app = spawn(|_| {}).await;
    let work = tempfile::tempdir().unwrap();
    for block in &blocks[1..] {
        // The service runs on this test's runtime: the shell must not block it.
        let output = tokio::process::Command::new("bash")
            .args(["-c", &format!("set -eu -o pipefail\n{block}")])
            .env("BASE", &app.address)
            .env("TOKEN", &app.demo.token)
            .env("TRACK", READY)
            .env("MOVIE", MOVIE)
            .current_dir(work.path())
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "this block of the guide failed:\n{block}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

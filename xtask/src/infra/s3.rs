//! An S3-compatible server that checks SigV4 signatures: `s3s-fs`, built with
//! `cargo install` into the tool cache once.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::tools;

/// The server, built once into the tool cache.
pub const SERVER: tools::CargoTool = tools::CargoTool {
    krate: "s3s-fs",
    version: "0.14.1",
    features: &["binary"],
    binary: "s3s-fs",
    first_build: "about 1.5 min",
    quick_build: false,
};
pub const ACCESS_KEY: &str = "streamgate-test";
pub const SECRET_KEY: &str = "streamgate-test-secret-key-0123456789";
pub const BUCKET: &str = "streamgate-test";

pub fn start(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let binary = SERVER.ensure()?;
    let data = dir.join("s3");
    // A fresh bucket every run: a directory per bucket under the root.
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(data.join(BUCKET)).map_err(|e| format!("{}: {e}", data.display()))?;
    let port = super::free_port()?;
    // Always pass keys: without them s3s-fs accepts unsigned requests.
    super::spawn(
        dir,
        "s3s-fs",
        Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&data),
    )?;
    super::wait_for_port("s3s-fs", port, Duration::from_secs(15))?;
    println!("==> s3s-fs listening on 127.0.0.1:{port}");
    Ok(BTreeMap::from([
        ("STREAMGATE_S3_ENDPOINT".to_owned(), format!("http://127.0.0.1:{port}")),
        ("STREAMGATE_S3_ACCESS_KEY".to_owned(), ACCESS_KEY.to_owned()),
        ("STREAMGATE_S3_SECRET_KEY".to_owned(), SECRET_KEY.to_owned()),
        ("STREAMGATE_S3_BUCKET".to_owned(), BUCKET.to_owned()),
        ("STREAMGATE_S3S_FS_BIN".to_owned(), binary.display().to_string()),
    ]))
}

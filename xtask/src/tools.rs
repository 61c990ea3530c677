//! Tools the tests need, installed on demand into a cache outside the clone
//! (`$STREAMGATE_TOOLS`, default `$HOME/.cache/streamgate/tools`) so a fresh
//! clone does not rebuild them.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How to invoke a tool.
pub struct Invocation {
    pub program: PathBuf,
    pub prefix_args: Vec<String>,
}

/// The tool cache directory.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = env::var_os("STREAMGATE_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("streamgate").join("tools")
}

fn cargo() -> PathBuf {
    env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

fn works(program: &PathBuf, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// `cargo nextest` if installed, else the cached build, else installs it into the cache.
pub fn ensure_nextest() -> Result<Invocation, String> {
    if works(&cargo(), &["nextest", "--version"]) {
        return Ok(Invocation { program: cargo(), prefix_args: vec!["nextest".into()] });
    }
    let root = cache_root();
    let cached = root.join("bin").join("cargo-nextest");
    if !works(&cached, &["nextest", "--version"]) {
        println!("==> installing cargo-nextest into {}", root.display());
        let status = Command::new(cargo())
            .args(["install", "--locked", "cargo-nextest", "--root"])
            .arg(&root)
            .status()
            .map_err(|e| format!("cargo install: {e}"))?;
        if !status.success() {
            return Err("installing cargo-nextest failed".into());
        }
    }
    Ok(Invocation { program: cached, prefix_args: vec!["nextest".into()] })
}

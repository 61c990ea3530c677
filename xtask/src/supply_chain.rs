//! `cargo deny` over the workspace graph with the checked-in `deny.toml`:
//! licenses, bans (duplicate versions, wildcards) and sources always;
//! advisories against the RustSec database when it can be fetched, or
//! against the last fetched copy, or skipped with a notice when there is
//! none (an offline machine still gets the other three checks).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::tools;

const VERSION: &str = "0.20.2";

/// Where cargo-deny keeps the advisory database by default.
fn advisory_dbs() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".cargo"));
    cargo_home.join("advisory-dbs")
}

/// Whether a fetched copy is there (a clone with its `crates` directory; a
/// failed fetch leaves only a lock file or an empty clone behind).
fn has_database() -> bool {
    std::fs::read_dir(advisory_dbs())
        .is_ok_and(|entries| entries.flatten().any(|entry| entry.path().join("crates").is_dir()))
}

pub fn check(root: &Path) -> Result<(), String> {
    let deny = tools::ensure_cargo_tool("cargo-deny", VERSION, &[], "cargo-deny")?;
    let run = |args: &[&str], quiet: bool| -> Result<bool, String> {
        let mut command = Command::new(&deny);
        command.arg("deny").args(args).current_dir(root);
        if quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        command.status().map(|s| s.success()).map_err(|e| format!("cargo deny: {e}"))
    };
    let fetched = run(&["fetch", "db"], true)?;
    let checks: &[&str] = if fetched || has_database() {
        if !fetched {
            println!("    the advisory database could not be updated; checking against the last fetched copy");
        }
        &["advisories", "licenses", "bans", "sources"]
    } else {
        println!(
            "    no advisory database and none can be fetched: advisories skipped; licenses, bans, sources checked"
        );
        &["licenses", "bans", "sources"]
    };
    let mut args = vec!["--log-level", "error", "--offline", "check"];
    args.extend(checks);
    if run(&args, false)? {
        Ok(())
    } else {
        Err("cargo deny found problems (see above; exceptions are explained in deny.toml)".into())
    }
}

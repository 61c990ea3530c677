//! `cargo deny` over the workspace graph with the checked-in `deny.toml`:
//! licenses, bans (duplicate versions, wildcards) and sources always;
//! advisories against the RustSec database when it can be fetched, or
//! against the last fetched copy, or skipped with a notice when there is
//! none (an offline machine still gets the other three checks).
//!
//! cargo-deny reads the graph with `cargo metadata`, which needs the
//! manifest of every package in `Cargo.lock`, those of other platforms too
//! (Windows, Android, wasm), which a build for this machine never
//! downloads. So `cargo fetch --locked` brings them first; where nothing can
//! be fetched and they are not cached, the graph cannot be read and the
//! step is skipped with a notice, as the advisories are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::tools;

/// The checker; its own speed does not matter (a few seconds on the graph).
pub const CARGO_DENY: tools::CargoTool = tools::CargoTool {
    krate: "cargo-deny",
    version: "0.20.2",
    features: &[],
    binary: "cargo-deny",
    first_build: "about 2 min",
    quick_build: true,
};

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

/// Whether every package in `Cargo.lock` is in the cargo cache, fetching
/// what is missing: `cargo fetch`, then `cargo metadata --offline` as the
/// proof (it fails on the first package it would have to download).
fn graph_readable(root: &Path) -> Result<bool, String> {
    let quiet = |args: &[&str]| -> Result<bool, String> {
        crate::cargo(root, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .map_err(|e| format!("cargo {}: {e}", args[0]))
    };
    if !quiet(&["fetch", "--locked", "--quiet"])? {
        println!("    cargo fetch failed: checking against the crates cached already");
    }
    quiet(&["metadata", "--offline", "--locked", "--format-version", "1"])
}

pub fn check(root: &Path) -> Result<(), String> {
    let deny = CARGO_DENY.ensure()?;
    if !graph_readable(root)? {
        println!(
            "    NOTICE: supply chain NOT checked: packages in Cargo.lock (those of other platforms too) are not \
             in the cargo cache and cannot be fetched here; run `cargo fetch --locked` where the registry is \
             reachable"
        );
        return Ok(());
    }
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

//! `cargo xtask faults`: the fault suite on its own, one test at a time, and
//! its figures as the table of `docs/reliability.md`.
//!
//! Each test (they also run in `cargo xtask test`) kills one dependency of
//! its own, or one of two service instances, in the middle of a bounded load
//! on loopback, starts it again, and prints one line
//! `FAULT|fault|requests|answered|5xx|writes lost|events lost|recovery s|by phase`.
//! Alone, the load has the machine to itself, so the figures are steadier
//! than in the full run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{infra, prepare, tools};

/// The fault tests: every test whose name says it runs under load.
const FILTER: &str = "test(under_load)";

/// Runs the fault tests with the infrastructure up and prints their table.
pub fn run(root: &Path) -> Result<(), String> {
    let background = prepare::Background::start(root)?;
    background.wait_all()?;
    let nextest = tools::ensure_nextest()?;
    let env = infra::up(root)?;
    println!("==> fault tests (one at a time)");
    let lines = run_tests(root, &nextest, &env);
    infra::down(root)?;
    let lines = lines?;
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("FAULT|"))
        .map(|line| line.split('|').collect())
        .filter(|fields: &Vec<&str>| fields.len() == 8)
        .collect();
    if rows.is_empty() {
        return Err("no fault test printed its figures".into());
    }
    println!();
    println!("| fault | requests | answered | 5xx | acknowledged writes lost | events lost | recovered in | answers by phase |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} s | {} |",
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
        );
    }
    Ok(())
}

/// Runs the tests, echoing their output; every line printed.
fn run_tests(
    root: &Path,
    nextest: &tools::Invocation,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut child = Command::new(&nextest.program)
        .args(&nextest.prefix_args)
        .args(["run", "-p", "streaming-api", "--all-features", "--test", "api", "--no-fail-fast"])
        .args(["--no-capture", "--test-threads", "1", "-E", FILTER])
        .envs(env)
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("fault tests: cannot run: {e}"))?;
    let mut lines = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            lines.push(line);
        }
    }
    let status = child.wait().map_err(|e| format!("fault tests: {e}"))?;
    if status.success() {
        Ok(lines)
    } else {
        Err(format!("fault tests failed ({status})"))
    }
}

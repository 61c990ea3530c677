//! `cargo xtask`: the project's repeatable chores.
//!
//! * `test`  — format check, clippy (`-D warnings`), tidy, every test of the workspace.
//! * `tidy`  — architecture checks (the core's dependency list).
//! * `infra up|down` — the real servers the tests use, on loopback (see `infra`).
//! * `bench` — the criterion benchmarks, then the load harness; writes `docs/benchmarks.md`.
//! * `load`  — the load harness alone (wrk against the release build; see `load`).
//! * `fuzz`  — the cargo-fuzz targets for a bounded time each (not in CI; see `fuzz`).

// A command-line tool: its progress lines on stdout are its interface.
#![allow(clippy::print_stdout)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod deploy;
mod fuzz;
mod infra;
mod load;
mod supply_chain;
mod tidy;
mod tools;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("tidy") => tidy::run(&workspace_root()),
        Some("deploy") => deploy::check(&workspace_root()),
        Some("bench") => {
            load::Options::parse(&args[1..], true).and_then(|options| bench(&options, &command_line(&args)))
        }
        Some("fuzz") => fuzz::Options::parse(&workspace_root(), &args[1..])
            .and_then(|options| fuzz::run(&workspace_root(), &options)),
        Some("load") => load::Options::parse(&args[1..], false)
            .and_then(|options| load::run(&workspace_root(), &options, &command_line(&args))),
        Some("infra") => match args.get(1).map(String::as_str) {
            Some("up") => infra::up(&workspace_root()).map(drop),
            Some("down") => infra::down(&workspace_root()),
            _ => Err(USAGE.to_owned()),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <test | tidy | deploy | infra up | infra down | bench [--no-criterion] [--duration S] [--connections N] [--viewers N] [--setup embedded|real] | load [--duration S] [--connections N] [--viewers N] [--setup embedded|real] | fuzz [--seconds N] [TARGET...]>";

fn workspace_root() -> PathBuf {
    let manifest = env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("xtask"), PathBuf::from);
    manifest.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn test() -> Result<(), String> {
    let root = workspace_root();
    step("format", &mut cargo(&root, &["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        &mut cargo(&root, &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]),
    )?;
    println!("==> tidy");
    tidy::run(&root)?;
    println!("==> supply chain (cargo deny)");
    supply_chain::check(&root)?;
    println!("==> deployment files");
    deploy::check(&root)?;
    println!("==> streaming-core as a published crate");
    publishable_core(&root)?;
    // ffmpeg decodes the demo movie's renditions in the API tests; curl runs
    // the API guide's walk-through.
    tools::ensure_debian_packages(&[("ffmpeg", "ffmpeg"), ("curl", "curl")])?;
    // Doc tests first: nextest's summary must be the run's closing line.
    step("doc tests", &mut cargo(&root, &["test", "--workspace", "--all-features", "--doc"]))?;
    let nextest = tools::ensure_nextest()?;
    println!("==> infrastructure");
    let env = infra::up(&root)?;
    let result = step(
        "tests",
        Command::new(nextest.program)
            .args(nextest.prefix_args)
            .args(["run", "--workspace", "--all-features", "--no-fail-fast"])
            .envs(&env)
            .current_dir(&root),
    );
    infra::down(&root)?;
    result
}

/// `streaming-core` packages without warnings, and its package holds only
/// what a user of the crate needs (manifest, sources, tests, benchmarks,
/// examples, README).
fn publishable_core(root: &Path) -> Result<(), String> {
    let output = cargo(root, &["package", "-p", "streaming-core", "--list", "--allow-dirty", "--offline"])
        .output()
        .map_err(|e| format!("cargo package: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo package --list: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let allowed = ["Cargo.toml", "Cargo.toml.orig", "Cargo.lock", ".cargo_vcs_info.json", "README.md"];
    let folders = ["src/", "tests/", "benches/", "examples/"];
    for file in listed.lines() {
        if !allowed.contains(&file) && !folders.iter().any(|f| file.starts_with(f)) {
            return Err(format!("streaming-core's package would ship {file}"));
        }
    }
    step(
        "cargo package (no verify build)",
        &mut cargo(root, &["package", "-p", "streaming-core", "--no-verify", "--allow-dirty", "--offline"]),
    )
}

/// The criterion benchmarks (with the infrastructure up: some need Redis),
/// then the load harness.
fn bench(options: &load::Options, command_line: &str) -> Result<(), String> {
    let root = workspace_root();
    if options.criterion {
        println!("==> infrastructure");
        let env = infra::up(&root)?;
        let result = step("criterion benchmarks", cargo(&root, &["bench", "--workspace"]).envs(&env));
        infra::down(&root)?;
        result?;
    }
    load::run(&root, options, command_line)
}

fn command_line(args: &[String]) -> String {
    format!("cargo xtask {}", args.join(" "))
}

fn cargo(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.args(args).current_dir(root);
    command
}

fn step(name: &str, command: &mut Command) -> Result<(), String> {
    println!("==> {name}");
    let status = command.status().map_err(|e| format!("{name}: cannot run: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

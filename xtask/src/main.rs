//! `cargo xtask`: the project's repeatable chores.
//!
//! * `test`  — format check, clippy (`-D warnings`), tidy, every test of the workspace.
//! * `install [ITEM...]` — what `test` needs besides the workspace (see `prepare`).
//! * `tidy`  — architecture checks (the core's dependency list).
//! * `deny`  — the supply-chain check alone (see `supply_chain`).
//! * `infra up|down` — the real servers the tests use, on loopback (see `infra`).
//! * `bench` — the criterion benchmarks, then the load harness; writes `docs/benchmarks.md`.
//! * `load`  — the load harness alone (wrk against the release build, then each real path at fixed rates; see `load`).
//! * `faults` — the fault tests alone, one at a time, and their figures (see `faults`).
//! * `fuzz`  — the cargo-fuzz targets for a bounded time each (not in CI; see `fuzz`).

// A command-line tool: its progress lines on stdout are its interface.
#![allow(clippy::print_stdout)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use steps::{run as step, timed};

mod deploy;
mod faults;
mod fuzz;
mod infra;
mod load;
mod prepare;
mod steps;
mod supply_chain;
mod tidy;
mod tools;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    // Help is an answer, wherever it is asked for; no command is a mistake.
    if args.first().is_some_and(|first| first == "help") || args.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("tidy") => tidy::run(&workspace_root()),
        Some("install") => install(&args[1..]),
        Some("deny") => supply_chain::check(&workspace_root()),
        Some("deploy") if args.get(1).is_some_and(|arg| arg == "--write") => deploy::write_rules(&workspace_root()),
        Some("deploy") => deploy::check(&workspace_root()),
        Some("bench") => {
            load::Options::parse(&args[1..], true).and_then(|options| bench(&options, &command_line(&args)))
        }
        Some("faults") => faults::run(&workspace_root()),
        Some("fuzz") => fuzz::Options::parse(&workspace_root(), &args[1..])
            .and_then(|options| fuzz::run(&workspace_root(), &options)),
        Some("load") => load::Options::parse(&args[1..], false)
            .and_then(|options| load::run(&workspace_root(), &options, &command_line(&args))),
        Some("infra") => match args.get(1).map(String::as_str) {
            Some("up") => infra::up(&workspace_root()).map(drop),
            Some("down") => infra::down(&workspace_root()),
            _ => return usage_error(),
        },
        _ => return usage_error(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A command that is not one: the help on stderr, exit 2 (as a parser's).
fn usage_error() -> ExitCode {
    eprint!("xtask: no such command\n\n{HELP}");
    ExitCode::from(2)
}

const HELP: &str = "\
Usage: cargo xtask <COMMAND> [OPTIONS]

The project's repeatable chores.

Commands:
  test      format check, clippy, tidy, supply chain, deployment files, then every test
            against the real servers it starts on loopback (what CI runs)
  install [ITEM...]
            what `test` needs besides the workspace (tools, packages, servers)
  tidy      architecture and repository checks
  deny      the supply-chain check alone (cargo-deny)
  deploy [--write]
            the deployment files alone (Dockerfile, Compose, Kubernetes, Prometheus);
            --write makes the Prometheus operator's rules of deploy/prometheus/alerts.yml
  infra up|down
            start or stop the real servers the tests use, on loopback
  bench [--no-criterion] [LOAD OPTIONS]
            the criterion benchmarks, then the load harness; writes docs/benchmarks.md
  load [LOAD OPTIONS] [--paths hit,miss,start,progress,manifest,paced,solo]
            the load harness alone, against the release build
  faults    the fault tests alone, one at a time, with their figures
  fuzz [--seconds N] [TARGET...]
            the fuzz targets for a bounded time each (not in CI)

Load options:
  --duration S  --connections N  --viewers N  --setup embedded|real

  -h, --help  Print this help (also after a command)
";

fn workspace_root() -> PathBuf {
    let manifest = env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("xtask"), PathBuf::from);
    manifest.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Debian packages the test step itself needs: ffmpeg decodes the demo
/// movie's renditions in the API tests; curl runs the API guide's walk-through.
const TEST_PACKAGES: &[(&str, &str)] = &[("ffmpeg", "ffmpeg"), ("curl", "curl")];

/// Every check and test. The packages the tests need are installed in the
/// background meanwhile, the Rust tools where they are first needed
/// (`prepare`); each step says what it does and how long it took, and the
/// times are summed up before the tests run (nextest's summary stays the
/// closing line).
fn test() -> Result<(), String> {
    let started = Instant::now();
    let root = workspace_root();
    // Nothing built yet but xtask itself (a few fingerprints; the workspace
    // has hundreds): the steps that compile say they take minutes.
    let fingerprints = root.join("target").join("debug").join(".fingerprint");
    let cold = std::fs::read_dir(fingerprints).map_or(true, |entries| entries.count() < 20);
    let minutes = |name: &str, what: &str| if cold { format!("{name} ({what}: minutes)") } else { name.to_owned() };
    let background = prepare::Background::start(&root)?;
    step("format", &mut cargo(&root, &["fmt", "--all", "--check"]))?;
    step(
        &minutes("clippy", "a first run checks every dependency here"),
        &mut cargo(&root, &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]),
    )?;
    timed("tidy", || tidy::run(&root))?;
    timed("install cargo-deny", || background.wait(prepare::Item::CargoDeny))?;
    timed("supply chain (cargo deny)", || supply_chain::check(&root))?;
    timed("deployment files", || {
        background.wait(prepare::Item::Checkers)?;
        deploy::check(&root)
    })?;
    timed("streaming-core as a published crate", || publishable_core(&root))?;
    background.wait(prepare::Item::DebianPackages)?;
    tools::ensure_debian_packages(TEST_PACKAGES)?;
    // Doc tests first: nextest's summary must be the run's closing line.
    step(
        &minutes("doc tests", "a first run builds every dependency here"),
        &mut cargo(&root, &["test", "--workspace", "--all-features", "--doc"]),
    )?;
    let nextest = tools::ensure_nextest()?;
    let nextest_run = |extra: &[&str]| {
        let mut command = Command::new(&nextest.program);
        command
            .args(&nextest.prefix_args)
            .args(["run", "--workspace", "--all-features"])
            .args(extra)
            .current_dir(&root);
        command
    };
    // Built before the servers start: a build error shows before the
    // broker's long first build.
    step(&minutes("test build", "a first run compiles every test binary"), &mut nextest_run(&["--no-run"]))?;
    timed("install the S3 server", || background.wait(prepare::Item::S3Server))?;
    timed("install the broker", || background.wait(prepare::Item::Broker))?;
    let env = timed("infrastructure", || {
        background.wait_all()?;
        infra::up(&root)
    })?;
    steps::print_summary(started);
    // Not a timed step: nextest's summary, with its own time, closes the run.
    println!("==> tests");
    let status = nextest_run(&["--no-fail-fast"]).envs(&env).status().map_err(|e| format!("tests: cannot run: {e}"));
    infra::down(&root)?;
    match status? {
        status if status.success() => Ok(()),
        status => Err(format!("tests failed ({status})")),
    }
}

/// `cargo xtask install [ITEM...]`: installs the items named (all of them
/// without names) in the foreground, one after the other.
fn install(names: &[String]) -> Result<(), String> {
    let items = if names.is_empty() {
        prepare::Item::all().collect()
    } else {
        names.iter().map(|name| prepare::Item::parse(name)).collect::<Result<Vec<_>, _>>()?
    };
    items.into_iter().try_for_each(prepare::Item::install)
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

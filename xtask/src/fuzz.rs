//! `cargo xtask fuzz [--seconds N] [TARGET…]`: runs each cargo-fuzz target
//! of `crates/streaming-fuzz/fuzz` for a bounded time (default 60 s), its
//! corpus kept under `target/fuzz/corpus/` and seeded from
//! `crates/streaming-fuzz/seeds/`. An input that fails a check is copied to
//! `crates/streaming-fuzz/regressions/<target>/`, where the regression test
//! of `cargo xtask test` replays it from then on. Not part of CI: libFuzzer
//! needs the compiler's unstable flags, which `RUSTC_BOOTSTRAP=1` unlocks on
//! the stable toolchain, and the runs are long.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::tools;

/// The fuzzer driver; its own speed does not matter (the targets are built with the toolchain).
const CARGO_FUZZ: tools::CargoTool = tools::CargoTool {
    krate: "cargo-fuzz",
    version: "0.13.2",
    features: &[],
    binary: "cargo-fuzz",
    first_build: "about 2 min",
    quick_build: true,
};

/// The targets: one file each in `crates/streaming-fuzz/fuzz/fuzz_targets/`.
fn targets(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("crates/streaming-fuzz/fuzz/fuzz_targets");
    let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut targets: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
        .collect();
    targets.sort();
    Ok(targets)
}

/// What to run.
pub struct Options {
    seconds: u64,
    targets: Vec<String>,
}

impl Options {
    pub fn parse(root: &Path, args: &[String]) -> Result<Self, String> {
        let known = targets(root)?;
        let mut options = Self { seconds: 60, targets: Vec::new() };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    let value = args.next().ok_or("--seconds needs a number")?;
                    options.seconds = value.parse().map_err(|_| format!("--seconds: {value:?} is not a number"))?;
                }
                target if known.iter().any(|t| t == target) => options.targets.push(target.to_owned()),
                other => return Err(format!("fuzz: unknown argument {other:?} (targets: {})", known.join(", "))),
            }
        }
        if options.targets.is_empty() {
            options.targets = known;
        }
        Ok(options)
    }
}

pub fn run(root: &Path, options: &Options) -> Result<(), String> {
    let cargo_fuzz = CARGO_FUZZ.ensure()?;
    let crate_dir = root.join("crates").join("streaming-fuzz");
    let work = root.join("target").join("fuzz");
    let mut found = Vec::new();
    for target in &options.targets {
        let corpus = work.join("corpus").join(target);
        let artifacts = work.join("artifacts").join(target);
        let _ = fs::remove_dir_all(&artifacts);
        for dir in [&corpus, &artifacts] {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        println!("==> fuzz {target} for {} s", options.seconds);
        let status = Command::new(&cargo_fuzz)
            .arg("fuzz")
            .args(["run", "--fuzz-dir"])
            .arg(crate_dir.join("fuzz"))
            // No sanitizer (the code is safe Rust; panics are what is looked
            // for), debug assertions on (overflow checks).
            .args(["--sanitizer", "none", "--debug-assertions", target])
            .arg(&corpus)
            .arg(crate_dir.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={}", options.seconds))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", &work)
            .current_dir(&crate_dir)
            .status()
            .map_err(|e| format!("cargo fuzz: {e}"))?;
        let saved = save_crashers(&artifacts, &crate_dir.join("regressions").join(target))?;
        if !status.success() || saved > 0 {
            found.push(format!("{target}: {saved} failing input(s)"));
        }
    }
    if found.is_empty() {
        println!("fuzz: no failing input in {} target(s)", options.targets.len());
        Ok(())
    } else {
        Err(format!(
            "fuzz found failures ({}); the inputs are in crates/streaming-fuzz/regressions/, \
             replayed by `cargo nextest run -p streaming-fuzz`: fix them and commit the inputs",
            found.join("; ")
        ))
    }
}

/// Copies libFuzzer's crash, leak and timeout inputs to `regressions`; how many.
fn save_crashers(artifacts: &Path, regressions: &Path) -> Result<usize, String> {
    let mut saved = 0;
    for entry in fs::read_dir(artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if ["crash-", "leak-", "timeout-", "oom-"].iter().any(|prefix| name.starts_with(prefix)) {
            fs::create_dir_all(regressions).map_err(|e| format!("{}: {e}", regressions.display()))?;
            fs::copy(entry.path(), regressions.join(name)).map_err(|e| format!("{name}: {e}"))?;
            println!("    saved {name} to {}", regressions.display());
            saved += 1;
        }
    }
    Ok(saved)
}

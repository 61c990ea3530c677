//! Architecture checks that `cargo` itself cannot express.

use std::path::Path;

/// Crates that must never be in `streaming-core`'s normal dependency tree:
/// the core stays pure (no network, database, HTTP or runtime drivers).
const FORBIDDEN_IN_CORE: &[&str] = &[
    "actix-web",
    "actix-rt",
    "actix-server",
    "rusoto_core",
    "rusoto_s3",
    "fred",
    "diesel",
    "diesel-async",
    "rskafka",
    "reqwest",
    "hyper",
    "mio",
];

/// Features of tokio the core must not enable.
const FORBIDDEN_TOKIO_FEATURES: &[&str] = &["net", "fs", "rt", "rt-multi-thread", "process", "signal"];

/// The driven adapters: each implements the core's ports over one
/// technology, and none may depend on another (they meet only in the app).
const ADAPTERS: &[&str] = &[
    "streaming-localfs",
    "streaming-s3",
    "streaming-redis",
    "streaming-postgres",
    "streaming-kafka",
    "streaming-users",
];

/// Libraries a team mounts with adapters of its own: like the adapters,
/// they must not depend on one.
const EDGES: &[&str] = &["streaming-auth", "streaming-http"];

pub fn run(root: &Path) -> Result<(), String> {
    let mut violations = adapter_dependencies(root)?;
    violations.extend(app_port_impls(root)?);
    if !violations.is_empty() {
        return Err(format!("tidy: the layers are crossed:\n  {}", violations.join("\n  ")));
    }
    println!("tidy: no adapter depends on another, and the app implements no port of the core");
    license_texts(root)?;
    core_tree(root)
}

/// Every license the workspace declares has its text at the root
/// (`LICENSE-MIT`, `LICENSE-APACHE`).
fn license_texts(root: &Path) -> Result<(), String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    let missing = missing_license_texts(&manifest, |file| {
        std::fs::read_to_string(root.join(file)).ok().filter(|text| !text.trim().is_empty())
    });
    if !missing.is_empty() {
        return Err(format!("tidy: licenses declared without their text: {}", missing.join(", ")));
    }
    println!("tidy: every declared license has its text");
    Ok(())
}

/// The license files the `license` expression of `manifest` needs and
/// `read` does not find with the license's title in them.
fn missing_license_texts(manifest: &str, read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let Some(expression) = manifest
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("license = \"").and_then(|rest| rest.strip_suffix('"')))
    else {
        return vec!["Cargo.toml declares no license".to_owned()];
    };
    expression
        .split(" OR ")
        .filter_map(|id| {
            let (file, title) = match id.trim() {
                "MIT" => ("LICENSE-MIT", "MIT License"),
                "Apache-2.0" => ("LICENSE-APACHE", "Apache License"),
                other => return Some(format!("{other} (no known file)")),
            };
            let found = read(file).is_some_and(|text| text.contains(title));
            (!found).then(|| file.to_owned())
        })
        .collect()
}

/// `name depends on adapter` for each adapter (or edge) depending on a driven adapter.
fn adapter_dependencies(root: &Path) -> Result<Vec<String>, String> {
    let mut violations = Vec::new();
    for name in ADAPTERS.iter().chain(EDGES) {
        let manifest = root.join("crates").join(name).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
        for dependency in normal_dependencies(&text) {
            if dependency != *name && ADAPTERS.contains(&dependency) {
                violations.push(format!("{name} depends on the adapter {dependency}"));
            }
        }
    }
    Ok(violations)
}

/// The names in a manifest's `[dependencies]` table.
fn normal_dependencies(manifest: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or("");
            names.push(name);
        }
    }
    names
}

/// `file: impl Trait for Type` for each port of the core the app implements.
fn app_port_impls(root: &Path) -> Result<Vec<String>, String> {
    let mut traits = Vec::new();
    for file in rust_files(&root.join("crates/streaming-core/src"))? {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        traits.extend(public_traits(&text));
    }
    let app = root.join("apps/streaming-api/src");
    let mut violations = Vec::new();
    for file in rust_files(&app)? {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for implemented in implemented_traits(&text) {
            if traits.contains(&implemented) {
                let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
                violations.push(format!("{shown} implements the core's port {implemented}"));
            }
        }
    }
    Ok(violations)
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// The names of the `pub trait`s a source file declares.
fn public_traits(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("pub trait "))
        .filter_map(|rest| rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next())
        .map(str::to_owned)
        .collect()
}

/// The last path segment of every trait a source file implements
/// (`impl<T> a::b::Port<X> for Y` gives `Port`).
fn implemented_traits(source: &str) -> Vec<String> {
    let mut traits = Vec::new();
    for line in source.lines().map(str::trim_start) {
        let Some(rest) = line.strip_prefix("impl") else { continue };
        let Some((head, _)) = rest.split_once(" for ") else { continue };
        // Drop the impl's own generics, then the trait's, then its path.
        let head = head.trim();
        let head = if head.starts_with('<') { head.split_once("> ").map_or(head, |(_, t)| t) } else { head };
        let path = head.split('<').next().unwrap_or(head).trim();
        if let Some(name) = path.rsplit("::").next().filter(|name| !name.is_empty()) {
            traits.push(name.to_owned());
        }
    }
    traits
}

/// The core's dependency tree holds no driver, runtime or HTTP crate.
fn core_tree(root: &Path) -> Result<(), String> {
    let output = crate::cargo(
        root,
        &[
            "tree",
            "--package",
            "streaming-core",
            "--edges",
            "normal,features",
            "--prefix",
            "none",
            "--format",
            "{p} {f}",
            "--all-features",
        ],
    )
    .output()
    .map_err(|e| format!("cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let violations = check_core_tree(&tree);
    if violations.is_empty() {
        println!("tidy: streaming-core depends on no driver, runtime or HTTP crate");
        Ok(())
    } else {
        Err(format!("tidy: streaming-core must stay pure:\n  {}", violations.join("\n  ")))
    }
}

/// The offending lines of a `cargo tree --format "{p} {f}"` listing.
fn check_core_tree(tree: &str) -> Vec<String> {
    let mut violations = Vec::new();
    for line in tree.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(_version)) = (words.next(), words.next()) else {
            continue;
        };
        if FORBIDDEN_IN_CORE.contains(&name) {
            violations.push(format!("depends on {name}"));
        }
        if name == "tokio" {
            let features = line.rsplit(' ').next().unwrap_or("");
            for feature in features.split(',') {
                if FORBIDDEN_TOKIO_FEATURES.contains(&feature) {
                    violations.push(format!("enables tokio feature {feature}"));
                }
            }
        }
    }
    violations.sort();
    violations.dedup();
    violations
}

#[cfg(test)]
mod tests {
    use super::{check_core_tree, implemented_traits, missing_license_texts, normal_dependencies, public_traits};

    #[test]
    fn reads_the_normal_dependencies_only() {
        let manifest = "[package]\nname = \"x\"\n\n[dependencies]\n# note\nstreaming-core.workspace = true\n\
                        streaming-redis = { workspace = true }\nserde = \"1\"\n\n[dev-dependencies]\nstreaming-kafka.workspace = true\n";
        assert_eq!(normal_dependencies(manifest), vec!["streaming-core", "streaming-redis", "serde"]);
    }

    #[test]
    fn finds_declared_and_implemented_traits() {
        let core =
            "/// A port.\npub trait ObjectStore: Send + Sync {\n}\npub(crate) trait Hidden {}\npub trait Clock {}\n";
        assert_eq!(public_traits(core), vec!["ObjectStore", "Clock"]);
        let app = "impl streaming_core::ports::ObjectStore for Storage {}\nimpl<T: Send> Clock for Wall<T> {}\n\
                   impl std::fmt::Debug for Storage {}\n    impl<'de> de::Deserializer<'de> for Recorder<'_> {}\nimpl Storage {}\n";
        assert_eq!(implemented_traits(app), vec!["ObjectStore", "Clock", "Debug", "Deserializer"]);
    }

    #[test]
    fn flags_forbidden_crates_and_tokio_features() {
        let tree = "streaming-core v0.1.0 (crates/streaming-core) mock\nserde v1.0.0 derive,std\n\
                    tokio v1.40.0 net,rt,sync\nfred v10.0.0 default\n";
        assert_eq!(
            check_core_tree(tree),
            vec!["depends on fred", "enables tokio feature net", "enables tokio feature rt"]
        );
    }

    #[test]
    fn passes_a_clean_tree() {
        assert!(check_core_tree("streaming-core v0.1.0\ntokio v1.40.0 sync\nmoka v0.12.0 sync\n").is_empty());
    }

    #[test]
    fn each_declared_license_needs_its_text() {
        let manifest = "[workspace.package]\nlicense = \"MIT OR Apache-2.0\"\n";
        let only_mit = |file: &str| (file == "LICENSE-MIT").then(|| "MIT License ...".to_owned());
        assert_eq!(missing_license_texts(manifest, only_mit), ["LICENSE-APACHE"]);
        let both = |file: &str| Some(if file == "LICENSE-MIT" { "MIT License" } else { "Apache License" }.to_owned());
        assert!(missing_license_texts(manifest, both).is_empty());
        assert_eq!(missing_license_texts("[package]\n", both), ["Cargo.toml declares no license"]);
    }
}

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

pub fn run(root: &Path) -> Result<(), String> {
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
    use super::check_core_tree;

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
}

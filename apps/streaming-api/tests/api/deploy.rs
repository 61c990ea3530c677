//! The configuration reference and the deployment files against the
//! settings the service really reads: a key missing from the reference, a
//! documented key or environment name the service does not know, a default
//! that is not the default, or a deployment variable the service would
//! refuse, fails here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config_keys::keys_of;
use streaming_api::Settings;

fn repository_file(path: &str) -> (PathBuf, String) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (file, text)
}

fn environment_name(key: &str) -> String {
    format!("STREAMING__{}", key.split('.').map(str::to_uppercase).collect::<Vec<_>>().join("__"))
}

/// The text between each pair of backticks in `cell`.
fn quoted(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The rows of the reference's key table: (keys, environment names, default cell).
fn reference_rows() -> Vec<(Vec<String>, Vec<String>, String)> {
    let (_, text) = repository_file("docs/configuration.md");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.trim() == "| key | environment | default | meaning |" {
            in_table = true;
            continue;
        }
        if in_table && !line.starts_with('|') {
            in_table = false;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "a row of four cells: {line}");
        let keys = quoted(cells[1]).into_iter().map(str::to_owned).collect();
        let names = quoted(cells[2]).into_iter().map(str::to_owned).collect();
        rows.push((keys, names, cells[3].to_owned()));
    }
    rows
}

#[test]
fn the_configuration_reference_lists_every_key_once_with_its_environment_name() {
    let keys = keys_of::<Settings>().unwrap();
    let rows = reference_rows();
    let mut documented = Vec::new();
    for (row_keys, names, _) in &rows {
        let expected: Vec<String> = row_keys.iter().map(|k| environment_name(k)).collect();
        assert_eq!(names, &expected, "the environment names of {row_keys:?}");
        documented.extend(row_keys.iter().cloned());
    }
    let unique: BTreeSet<&String> = documented.iter().collect();
    assert_eq!(unique.len(), documented.len(), "a key documented twice");
    let missing: Vec<&String> = keys.iter().filter(|k| !unique.contains(k)).collect();
    assert!(missing.is_empty(), "keys the service reads but the reference does not list: {missing:?}");
    let unknown: Vec<&&String> = unique.iter().filter(|k| !keys.contains(k)).collect();
    assert!(unknown.is_empty(), "documented keys the service does not read: {unknown:?}");
}

/// Setting a key to the default its row names (a single literal) changes nothing.
#[test]
fn the_documented_defaults_are_the_defaults() {
    let defaults = format!("{:?}", Settings::default());
    let mut checked = 0;
    for (keys, _, default) in reference_rows() {
        let [key] = keys.as_slice() else { continue };
        // Only a cell that is one literal (perhaps with a remark after it).
        let Some(literal) = default.strip_prefix('`').and_then(|rest| rest.split('`').next()) else { continue };
        if literal.contains('{') || literal.is_empty() {
            continue;
        }
        let set = Settings::load(None, [(environment_name(key), literal.to_owned())])
            .unwrap_or_else(|e| panic!("{key} = {literal:?}: {e}"));
        assert_eq!(format!("{set:?}"), defaults, "{key}: the documented default {literal:?} is not the default");
        checked += 1;
    }
    assert!(checked > 60, "most rows name a literal default; {checked} did");
}

/// `STREAMING__…` variables set in a deployment file, as `NAME: value` lines.
fn deployment_variables(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.trim().trim_start_matches("- ").split_once(':')?;
            let name = name.trim().trim_matches('"');
            name.starts_with("STREAMING__").then(|| {
                let value = value.trim().trim_matches('"').trim_matches('\'');
                (name.to_owned(), value.to_owned())
            })
        })
        .collect()
}

#[test]
fn the_deployment_files_set_only_settings_the_service_accepts() {
    let names: BTreeSet<String> = keys_of::<Settings>().unwrap().iter().map(|k| environment_name(k)).collect();
    let mut files = vec!["deploy/docker-compose.yml".to_owned()];
    let k8s = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s");
    for entry in std::fs::read_dir(&k8s).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            files.push(format!("deploy/k8s/{name}"));
        }
    }
    let mut seen = 0;
    for path in &files {
        let (_, text) = repository_file(path);
        let variables = deployment_variables(&text);
        for (name, _) in &variables {
            assert!(names.contains(name), "{path}: {name} is not a setting");
        }
        // Variables filled from a Secret: `- name: STREAMING__…` (the value elsewhere).
        for line in text.lines() {
            if let Some(name) = line.trim().trim_start_matches("- ").strip_prefix("name: STREAMING__") {
                let name = format!("STREAMING__{}", name.trim());
                assert!(names.contains(&name), "{path}: {name} is not a setting");
                seen += 1;
            }
        }
        if let Err(error) = Settings::load(None, variables.clone()) {
            panic!("{path}: the service refuses these settings: {error}");
        }
        seen += variables.len();
    }
    assert!(seen >= 20, "the compose stack and the ConfigMap set the service's settings ({seen} found)");
}

/// The Kubernetes manifests: a drain takes one replica at a time, replicas
/// spread over nodes and zones, and the image is named where kustomize can
/// set its tag or digest (`kustomize edit set image`).
#[test]
fn the_manifests_drain_one_replica_at_a_time_spread_them_and_let_kustomize_set_the_image() {
    let (_, pdb) = repository_file("deploy/k8s/pdb.yaml");
    assert!(pdb.contains("maxUnavailable: 1") && !pdb.contains("minAvailable:"), "pdb.yaml:\n{pdb}");
    let (_, deployment) = repository_file("deploy/k8s/deployment.yaml");
    assert!(deployment.contains("topologySpreadConstraints:"), "no topology spread");
    for key in ["topology.kubernetes.io/zone", "kubernetes.io/hostname"] {
        assert!(deployment.contains(&format!("topologyKey: {key}")), "no spread over {key}");
    }
    let (_, kustomization) = repository_file("deploy/k8s/kustomization.yaml");
    assert!(kustomization.contains("images:") && kustomization.contains("- name: streamgate"), "{kustomization}");
    assert!(deployment.contains("image: streamgate\n"), "the Deployment names the image kustomize sets");
    // The migration Job, applied on its own before the rollout, runs the same version.
    let tag = kustomization.split("newTag: ").nth(1).unwrap().lines().next().unwrap().trim_matches('"');
    let (_, job) = repository_file("deploy/k8s/migrate-job.yaml");
    assert!(job.contains(&format!("image: streamgate:{tag}\n")), "migrate-job.yaml runs streamgate:{tag}");
}

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

/// `STREAMING__…` variables set in a deployment file, as `NAME: value`
/// lines (YAML) or `NAME=value` lines (an env file).
fn deployment_variables(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("- ");
            let separator = if line.split_once(':').is_some_and(|(name, _)| !name.contains('=')) { ':' } else { '=' };
            let (name, value) = line.split_once(separator)?;
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
        if name.ends_with(".yaml") || name.ends_with(".env") {
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
    assert!(seen >= 40, "the compose stack and the ConfigMap's env file set the service's settings ({seen} found)");
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

/// The settings reach the pods through kustomize's generator (a changed
/// file is a new ConfigMap name, so the pods roll); the pods run under
/// their own service account, behind a network policy that lets in the API
/// port only and lets out only what the service talks to; and a cluster
/// with the Prometheus operator gets a ServiceMonitor and the alert rules.
#[test]
fn the_manifests_roll_on_a_settings_change_run_as_their_own_account_and_are_fenced_in() {
    let (_, kustomization) = repository_file("deploy/k8s/kustomization.yaml");
    assert!(!kustomization.contains("configmap.yaml"), "the ConfigMap is generated, not a plain resource");
    let generator = kustomization.split("configMapGenerator:").nth(1).expect("a configMapGenerator");
    assert!(generator.contains("- name: streamgate-config") && generator.contains("- streamgate.env"), "{generator}");
    let (_, deployment) = repository_file("deploy/k8s/deployment.yaml");
    assert!(deployment.contains("configMapRef:\n                name: streamgate-config"), "envFrom the generated map");

    let (_, account) = repository_file("deploy/k8s/serviceaccount.yaml");
    assert!(account.contains("kind: ServiceAccount") && account.contains("name: streamgate\n"), "{account}");
    assert!(account.contains("automountServiceAccountToken: false"), "no API token: the service never calls the API");
    // (The migration Job, applied before the kustomization, needs no account of its own.)
    assert!(deployment.contains("serviceAccountName: streamgate\n"), "the pods run as the streamgate account");

    let (_, policy) = repository_file("deploy/k8s/networkpolicy.yaml");
    assert!(policy.contains("kind: NetworkPolicy") && policy.contains("policyTypes: [Ingress, Egress]"), "{policy}");
    let ingress = policy.split("ingress:").nth(1).unwrap().split("egress:").next().unwrap();
    assert!(ingress.contains("port: http") && !ingress.contains("8081"), "only the API port is let in: {ingress}");
    let egress = policy.split("egress:").nth(1).unwrap();
    for port in ["53", "5432", "6379", "9092", "443"] {
        assert!(egress.contains(&format!("port: {port},")), "egress to port {port}: {egress}");
    }
    for resource in ["serviceaccount.yaml", "networkpolicy.yaml"] {
        assert!(kustomization.contains(&format!("- {resource}")), "kustomization.yaml applies {resource}");
    }

    let (_, monitor) = repository_file("deploy/k8s/monitoring/servicemonitor.yaml");
    assert!(monitor.contains("kind: ServiceMonitor"), "{monitor}");
    let (_, service) = repository_file("deploy/k8s/service.yaml");
    assert!(service.contains("app.kubernetes.io/name: streamgate") && service.contains("- name: http"));
    for line in ["app.kubernetes.io/name: streamgate", "- port: http", "path: /metrics"] {
        assert!(monitor.contains(line), "the ServiceMonitor has {line}: {monitor}");
    }
    let (_, rules) = repository_file("deploy/k8s/monitoring/prometheusrule.yaml");
    assert!(rules.contains("kind: PrometheusRule"), "{rules}");
    let (_, monitoring) = repository_file("deploy/k8s/monitoring/kustomization.yaml");
    for resource in ["servicemonitor.yaml", "prometheusrule.yaml"] {
        assert!(monitoring.contains(&format!("- {resource}")), "monitoring/kustomization.yaml applies {resource}");
    }
}

/// The image runs on a distroless base (no shell, no package manager: the
/// health check is the binary's own command), says what it is in OCI
/// labels, and every third-party image of the compose stack names a fixed
/// release.
#[test]
fn the_image_is_distroless_and_labelled_and_the_stack_pins_its_images() {
    let (_, dockerfile) = repository_file("deploy/Dockerfile");
    let runtime = dockerfile.split(" AS runtime").nth(1).expect("a runtime stage");
    let base = dockerfile.split(" AS runtime").next().unwrap().lines().last().unwrap();
    assert_eq!(base, "FROM ${RUNTIME_BASE}", "the runtime base is the argument a digest pin can replace");
    assert!(dockerfile.contains("\nARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot\n"), "distroless cc");
    assert!(runtime.contains(&format!("ARG VERSION={}\n", env!("CARGO_PKG_VERSION"))), "the version label's default");
    for forbidden in ["apt-get", "RUN "] {
        assert!(!runtime.contains(forbidden), "the runtime stage runs nothing ({forbidden})");
    }
    assert!(runtime.contains("CMD [\"/usr/local/bin/streaming-api\", \"healthcheck\"]"), "exec-form health check");
    for label in ["title", "description", "source", "licenses", "version", "revision", "created"] {
        assert!(runtime.contains(&format!("org.opencontainers.image.{label}=")), "OCI label {label}");
    }
    assert!(
        runtime.contains("org.opencontainers.image.licenses=\"MIT OR Apache-2.0\""),
        "the licenses Cargo.toml declares"
    );

    let (_, compose) = repository_file("deploy/docker-compose.yml");
    for image in compose.lines().filter_map(|line| line.trim().strip_prefix("image: ")) {
        if image.starts_with("streamgate:") {
            continue; // built here from the Dockerfile
        }
        let tag = image.split_once(':').map(|(_, tag)| tag).unwrap_or_default();
        assert!(!tag.is_empty() && tag != "latest", "{image}: pin a release, not latest");
    }
}

//! Redis from Debian's `redis-server`: one standalone server, and a 3-node
//! cluster (no replicas) for the cluster tests. No persistence.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::tools;

/// The Debian packages of the servers, the client and the throwaway CA, as
/// `(command, package)` pairs.
pub const PACKAGES: &[(&str, &str)] =
    &[("redis-server", "redis-server"), ("redis-cli", "redis-tools"), ("openssl", "openssl")];

pub fn start(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    tools::ensure_debian_packages(PACKAGES)?;
    let standalone = super::free_port()?;
    let data = dir.join("redis");
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    spawn_node(dir, "redis", standalone, &data, false)?;

    let ports = cluster_ports(3)?;
    for port in &ports {
        let node_dir = dir.join("redis-cluster").join(port.to_string());
        let _ = fs::remove_dir_all(&node_dir);
        fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
        spawn_node(dir, &format!("redis-cluster-{port}"), *port, &node_dir, true)?;
    }
    super::wait_for_port("redis", standalone, Duration::from_secs(10))?;
    for port in &ports {
        super::wait_for_port("redis-cluster", *port, Duration::from_secs(10))?;
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !status.success() {
        return Err("creating the redis cluster failed".into());
    }
    wait_cluster_ok(ports[0], Duration::from_secs(20))?;

    let (tls_port, ca) = start_tls(dir)?;

    // A sentinel watching the standalone server as the primary "streamgate".
    let sentinel = super::free_port()?;
    let sentinel_dir = dir.join("redis-sentinel");
    let _ = fs::remove_dir_all(&sentinel_dir);
    fs::create_dir_all(&sentinel_dir).map_err(|e| e.to_string())?;
    let sentinel_conf = sentinel_dir.join("sentinel.conf");
    fs::write(
        &sentinel_conf,
        format!(
            "port {sentinel}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
             sentinel monitor streamgate 127.0.0.1 {standalone} 1\nsentinel down-after-milliseconds streamgate 5000\n",
            sentinel_dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut command = Command::new("redis-server");
    command.arg(&sentinel_conf).arg("--sentinel");
    super::spawn(dir, "redis-sentinel", &mut command)?;
    super::wait_for_port("redis-sentinel", sentinel, Duration::from_secs(10))?;
    println!("==> redis on 127.0.0.1:{standalone}, cluster on {}, sentinel on 127.0.0.1:{sentinel}", nodes.join(", "));
    let cluster_url = format!(
        "redis-cluster://{}?{}",
        nodes[0],
        nodes[1..].iter().map(|n| format!("node={n}")).collect::<Vec<_>>().join("&")
    );
    Ok(BTreeMap::from([
        ("STREAMGATE_REDIS_URL".to_owned(), format!("redis://127.0.0.1:{standalone}")),
        ("STREAMGATE_REDIS_CLUSTER_URL".to_owned(), cluster_url),
        ("STREAMGATE_REDIS_TLS_URL".to_owned(), format!("rediss://127.0.0.1:{tls_port}")),
        ("STREAMGATE_REDIS_TLS_CA".to_owned(), ca.display().to_string()),
        (
            "STREAMGATE_REDIS_SENTINEL_URL".to_owned(),
            format!("redis-sentinel://127.0.0.1:{sentinel}?sentinelServiceName=streamgate"),
        ),
    ]))
}

fn spawn_node(dir: &Path, name: &str, port: u16, data: &Path, cluster: bool) -> Result<(), String> {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--protected-mode", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(data);
    if cluster {
        command.args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ]);
    }
    super::spawn(dir, name, &mut command).map(drop)
}

/// Free ports whose cluster bus ports (port + 10000) are free too.
fn cluster_ports(count: usize) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for _ in 0..100 {
        let port = super::free_port()?;
        let bus_free = port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
        if bus_free && !ports.contains(&port) {
            ports.push(port);
            if ports.len() == count {
                return Ok(ports);
            }
        }
    }
    Err("no free ports for the redis cluster".into())
}

fn wait_cluster_ok(port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let output = Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output();
        if output.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("the redis cluster did not become ready".into())
}

/// A TLS-only Redis with a certificate from a throwaway CA (made with `openssl`).
fn start_tls(dir: &Path) -> Result<(u16, std::path::PathBuf), String> {
    let tls = dir.join("redis-tls");
    let _ = fs::remove_dir_all(&tls);
    fs::create_dir_all(&tls).map_err(|e| e.to_string())?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let output =
            Command::new("openssl").args(args).current_dir(&tls).output().map_err(|e| format!("openssl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("openssl {}: {}", args[0], String::from_utf8_lossy(&output.stderr)))
        }
    };
    fs::write(tls.join("server.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .map_err(|e| e.to_string())?;
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=streamgate test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    let port = super::free_port()?;
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-auth-clients", "no", "--daemonize", "no"])
        .arg("--tls-cert-file")
        .arg(tls.join("server.crt"))
        .arg("--tls-key-file")
        .arg(tls.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(tls.join("ca.crt"))
        .arg("--dir")
        .arg(&tls);
    super::spawn(dir, "redis-tls", &mut command)?;
    super::wait_for_port("redis-tls", port, Duration::from_secs(10))?;
    Ok((port, tls.join("ca.crt")))
}

//! `/metrics`, trace ids and the request span, black-box over HTTP.

use std::collections::HashMap;

use reqwest::Method;

use crate::harness::{spawn, TestApp, MOVIE, READY};

/// `/metrics` as `series → value` (`name{labels}` exactly as rendered).
pub(crate) async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// How much `series` grew between two scrapes.
pub(crate) fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// A `rate()` panel or an `absent()` alert sees a counter only once it is
/// exported: every counter whose labels are known is on the first scrape,
/// at 0, for each of its label values.
#[tokio::test]
async fn every_counter_with_known_labels_is_exported_at_zero_from_the_start() {
    let app = spawn(|s| s.rate_limit.stream_url_per_minute = 60).await;
    let first = scrape(&app).await;
    let mut expected: Vec<String> = [
        "stream_cache_decrypt_failures_total",
        "playback_sessions_closed_idle_total",
        "manifest_subscription_vouched_total",
        "pending_writes_hold_calls_total",
        "rate_limit_rejections_total{policy=\"stream-url\"}",
    ]
    .map(str::to_owned)
    .to_vec();
    for reason in ["deletion", "status_change", "logout", "subscription", "grant", "operator"] {
        expected.push(format!("stream_cache_invalidations_total{{reason=\"{reason}\"}}"));
    }
    for op in ["get", "set"] {
        expected.push(format!("stream_cache_errors_total{{op=\"{op}\"}}"));
    }
    for manifest in ["hls", "dash"] {
        expected.push(format!("playback_sessions_started_total{{manifest=\"{manifest}\"}}"));
    }
    for outcome in ["applied", "stale"] {
        expected.push(format!("playback_progress_reports_total{{outcome=\"{outcome}\"}}"));
    }
    for kind in ["hls", "dash", "other"] {
        for outcome in ["served", "refused", "invalid", "limited", "unavailable", "not_found"] {
            expected.push(format!("manifest_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"));
        }
    }
    for queue in ["progress", "sessions", "outbox"] {
        for name in [
            "write_behind_flush_failures_total",
            "write_behind_overflows_total",
            "pending_writes_hold_failures_total",
            "pending_writes_rescued_total",
            "pending_writes_held_total",
        ] {
            expected.push(format!("{name}{{queue=\"{queue}\"}}"));
        }
    }
    for path in ["outbox", "direct"] {
        expected.push(format!("events_published_total{{path=\"{path}\"}}"));
    }
    for reason in ["publish_failed", "buffer_full", "sender_stopped"] {
        expected.push(format!("events_dropped_total{{reason=\"{reason}\"}}"));
    }
    let absent: Vec<&String> = expected.iter().filter(|series| first.get(*series) != Some(&0.0)).collect();
    assert!(absent.is_empty(), "not on the first scrape at 0: {absent:#?}");
}

/// A configured dependency's breaker is on the first scrape: its state
/// (closed) and its openings (none).
#[tokio::test]
async fn a_configured_dependency_s_breaker_is_exported_from_the_start() {
    let redis = streaming_core::contract::infra_var("STREAMGATE_REDIS_URL");
    let app = spawn(move |s| s.redis.url = Some(secrecy::SecretString::from(redis))).await;
    let first = scrape(&app).await;
    for series in ["circuit_breaker_state{dependency=\"redis\"}", "circuit_breaker_opened_total{dependency=\"redis\"}"]
    {
        assert_eq!(first.get(series), Some(&0.0), "{series} on the first scrape at 0");
    }
}

#[tokio::test]
async fn the_spec_metrics_count_the_url_path_and_http_is_labelled_by_route_template() {
    let app = spawn(|_| {}).await;
    let before = scrape(&app).await;
    for series in [
        "stream_url_cache_hits_total",
        "stream_url_cache_misses_total",
        "stream_url_presign_generated_total",
        "stream_url_requests_total{status=\"success\",cache_hit=\"true\"}",
    ] {
        assert!(before.contains_key(series), "{series} exists from the start");
    }

    app.stream_url(READY).await; // miss: presigned
    let url = app.stream_url(READY).await["streamUrl"].as_str().unwrap().to_owned(); // hit
    let missing = app.stream("01JG0DEM0TRACK0000000000ZZ", Some(&app.demo.token)).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(app.client.get(&url).header("Range", "bytes=0-9").send().await.unwrap().status(), 206);
    let started = app.send(Method::POST, &format!("/api/v1/stream/{MOVIE}"), None, None).await;
    let started: serde_json::Value = started.json().await.unwrap();
    let manifest = app.client.get(started["manifest_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(manifest.status(), 200);
    let after = scrape(&app).await;

    let grew = |series: &str| delta(&before, &after, series);
    assert_eq!(grew("stream_url_requests_total{status=\"success\",cache_hit=\"false\"}"), 1.0);
    assert_eq!(grew("stream_url_requests_total{status=\"success\",cache_hit=\"true\"}"), 1.0);
    assert_eq!(grew("stream_url_requests_total{status=\"error\",cache_hit=\"false\"}"), 1.0);
    assert_eq!(grew("stream_url_cache_hits_total"), 1.0);
    assert_eq!(grew("stream_url_cache_misses_total"), 1.0);
    assert_eq!(grew("stream_url_presign_generated_total"), 1.0);
    assert_eq!(grew("stream_url_request_duration_ms_count"), 3.0);
    assert!(after.contains_key("stream_url_request_duration_ms_bucket{le=\"1000\"}"), "a histogram with buckets");
    assert_eq!(grew("playback_sessions_started_total{manifest=\"hls\"}"), 1.0);
    assert_eq!(grew("manifest_requests_total{kind=\"hls\",outcome=\"served\"}"), 1.0);
    assert_eq!(grew("http_requests_total{method=\"POST\",route=\"/tracks/{track_id}/stream\",status=\"200\"}"), 2.0);
    assert_eq!(grew("http_requests_total{method=\"POST\",route=\"/tracks/{track_id}/stream\",status=\"404\"}"), 1.0);
    assert_eq!(grew("http_requests_total{method=\"GET\",route=\"/objects/{key:.+}\",status=\"206\"}"), 1.0);
    // The standard process metrics (those of Prometheus's own clients).
    assert!(after.get("process_resident_memory_bytes").is_some_and(|rss| *rss > 1e6));
    // Whole seconds (the metrics facade's counters are integers).
    assert!(after.get("process_cpu_seconds_total").is_some_and(|cpu| *cpu >= 0.0));
    assert!(after.get("process_start_time_seconds").is_some_and(|start| *start > 1.7e9));
    assert!(after.get("process_open_fds").is_some_and(|fds| *fds > 3.0));
    assert!(after.get("process_threads").is_some_and(|threads| *threads >= 2.0));

    // No raw path, id or key ever becomes a label; every series is one we document.
    let known: Vec<&str> = streaming_core::telemetry::ALL.to_vec();
    for series in after.keys() {
        for leak in [READY, MOVIE, "tracks/", "movies/", "grant="] {
            assert!(!series.contains(leak) || series.contains("{track_id}"), "{leak} in {series}");
        }
        let name = series.split('{').next().unwrap();
        let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        assert!(known.contains(&base) || base.starts_with("process_"), "undocumented metric {name}");
    }
}

#[tokio::test]
async fn rate_limit_rejections_are_counted_by_policy() {
    let app = spawn(|s| s.rate_limit.stream_url_per_minute = 1).await;
    app.stream_url(READY).await;
    let before = scrape(&app).await;
    assert_eq!(app.stream(READY, Some(&app.demo.token)).await.status(), 429);
    let after = scrape(&app).await;
    assert_eq!(delta(&before, &after, "rate_limit_rejections_total{policy=\"stream-url\"}"), 1.0);
}

#[tokio::test]
async fn a_valid_traceparent_is_continued_and_every_response_carries_one() {
    let app = spawn(|_| {}).await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app.client.get(app.url("/healthz")).header("traceparent", incoming).send().await.unwrap();
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continues");
    assert_ne!(parts[2], "00f067aa0ba902b7", "with a span of our own");
    assert_eq!(response.headers()["trace-id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // A problem document names the same trace.
    let missing = app
        .client
        .post(app.url("/tracks/01JG0DEM0TRACK0000000000ZZ/stream"))
        .bearer_auth(&app.demo.token)
        .header("traceparent", incoming)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // Garbage starts a fresh trace.
    let fresh = app.client.get(app.url("/healthz")).header("traceparent", "00-zz-zz-01").send().await.unwrap();
    let fresh = fresh.headers()["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(fresh.len(), 55, "{fresh}");
    assert!(!fresh.contains("zz"));
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let app = spawn(|s| s.metrics.enabled = false).await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
}

/// `metrics.listener = "admin"`: `/metrics` is served by the admin
/// listener only (no key needed: the port is internal), and the public port
/// answers 404 for it; without the admin API the start stops.
#[tokio::test]
async fn metrics_can_be_served_on_the_admin_listener_only() {
    use streaming_api::settings::MetricsListener;
    let app = spawn(|s| {
        s.metrics.listener = MetricsListener::Admin;
        crate::admin::with_admin(s);
    })
    .await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
    let admin = app.admin.clone().unwrap();
    let scraped = app.client.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("stream_url_cache_hits_total"));

    let mut settings = streaming_api::Settings::default();
    settings.server.port = 0;
    settings.metrics.listener = MetricsListener::Admin;
    let refused = streaming_api::Application::build(settings).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("metrics.listener") && refused.contains("admin.enabled"), "{refused}");
}

/// The dashboard and the alert rules in `deploy/`.
fn deploy_file(path: &str) -> (std::path::PathBuf, String) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (file, text)
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions or aggregations (followed by `(`), label names (before a
/// matcher, or listed in `by (…)`), keywords, or `$variables`.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 10] =
        ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"];
    let bytes = expr.as_bytes();
    let (mut names, mut i, mut in_quotes, mut label_list) = (Vec::new(), 0, false, false);
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            in_quotes = !in_quotes;
        }
        // Numbers (`0.99`, `1e6`) and ranges (`[5m]`) hold no names.
        if !in_quotes && (c.is_ascii_digit() || c == b'[') {
            let end = if c == b'[' { b']' } else { b' ' };
            while i < bytes.len()
                && bytes[i] != end
                && (c == b'[' || bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.')
            {
                i += 1;
            }
            continue;
        }
        if in_quotes || !(c.is_ascii_alphabetic() || c == b'_' || c == b':' || c == b'$') {
            if c == b')' {
                label_list = false;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':' | b'$')) {
            i += 1;
        }
        let word = &expr[start..i];
        let next = expr[i..].trim_start();
        if matches!(word, "by" | "without") {
            label_list = true;
        } else if word.starts_with('$')
            || KEYWORDS.contains(&word)
            || label_list
            || next.starts_with('(')
            || next.starts_with("by")
            || next.starts_with("without")
        {
        } else if ["=", "!="].iter().any(|m| next.starts_with(m)) {
            // a label matcher (`=`, `!=`, `=~`, `!~`); `==` would be a comparison
            if next.starts_with("==") {
                names.push(word.to_owned());
            }
        } else {
            names.push(word.to_owned());
        }
    }
    names
}

#[test]
fn dashboard_and_alert_rules_use_only_metrics_the_service_exports() {
    let known: Vec<&str> = streaming_core::telemetry::ALL.to_vec();
    let exported = |name: &str| {
        let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        known.contains(&base) || base == "up" || base.starts_with("process_")
    };
    assert_eq!(
        metric_names(r#"sum by (le, route) (rate(x_bucket{a="b", c=~"d"}[5m])) / y == 2 and $v"#),
        ["x_bucket", "y"]
    );

    let (_, dashboard) = deploy_file("grafana/streamgate.json");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut on_dashboard = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                assert!(exported(&name), "the dashboard's {expr} uses {name}, which the service does not export");
                on_dashboard.insert(name.trim_end_matches("_bucket").to_owned());
            }
        }
    }
    for name in &known {
        assert!(on_dashboard.contains(*name), "{name} is not on the dashboard");
    }

    let (_, rules) = deploy_file("prometheus/alerts.yml");
    // `expr:` values, single-line or `|` blocks (the more-indented lines after).
    let lines: Vec<&str> = rules.lines().collect();
    let mut expressions = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if let Some(value) = line.trim_start().strip_prefix("expr:") {
            let indent = line.len() - line.trim_start().len();
            let mut expr = value.trim().trim_start_matches('|').to_owned();
            for next in &lines[n + 1..] {
                if next.len() - next.trim_start().len() <= indent {
                    break;
                }
                expr.push_str(next);
            }
            expressions.push(expr);
        }
    }
    assert!(expressions.len() >= 4, "{expressions:?}");
    for expr in &expressions {
        for name in metric_names(expr) {
            assert!(exported(&name), "alert rule {expr} uses {name}, which the service does not export");
        }
    }
    let alerting = |needle: &str| expressions.iter().any(|e| e.contains(needle));
    for needle in
        ["status=~\"5..\"", "http_request_duration_seconds_bucket", "circuit_breaker_state", "outbox_lag_seconds"]
    {
        assert!(alerting(needle), "no alert rule on {needle}");
    }
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let promtool = streaming_core::contract::infra_var("STREAMGATE_PROMTOOL");
    let (rules, _) = deploy_file("prometheus/alerts.yml");
    let dir = rules.parent().unwrap().to_owned();
    // The Prometheus operator's copy: its `spec`, two spaces shallower, is a rule file.
    let (_, resource) = deploy_file("k8s/monitoring/prometheusrule.yaml");
    let spec = resource.split("\nspec:\n").nth(1).expect("a PrometheusRule with a spec");
    let spec: String = spec.lines().map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line))).collect();
    let operator_rules = tempfile::tempdir().unwrap();
    let operator_file = operator_rules.path().join("prometheusrule-spec.yml");
    std::fs::write(&operator_file, spec).unwrap();
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["check", "rules", operator_file.to_str().unwrap()],
        vec!["check", "config", "prometheus.yml"],
        vec!["test", "rules", "alerts.test.yml"],
    ] {
        let output = std::process::Command::new(&promtool).args(&args).current_dir(&dir).output().unwrap();
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Each alert links its runbook, a section of docs/runbooks.md saying what
/// it means, what to check and what to do; and the service vanishing from
/// discovery altogether (no `up` series to be 0) is an alert of its own.
#[test]
fn every_alert_has_a_runbook_and_the_service_missing_altogether_is_an_alert() {
    let (_, rules) = deploy_file("prometheus/alerts.yml");
    let alerts: Vec<&str> = rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).collect();
    let (_, runbooks) = deploy_file("../docs/runbooks.md");
    let sections: Vec<&str> = runbooks.split("\n## ").skip(1).collect();
    for alert in &alerts {
        let url = format!(
            "runbook_url: \"https://github.com/streamgate/streamgate/blob/main/docs/runbooks.md#{}\"",
            alert.to_lowercase()
        );
        let rule = rules.split(&format!("- alert: {alert}\n")).nth(1).unwrap().split("- alert:").next().unwrap();
        assert!(rule.contains(&url), "{alert} links its runbook ({url}):\n{rule}");
        let section = sections.iter().find(|s| s.lines().next() == Some(*alert));
        let section = section.unwrap_or_else(|| panic!("docs/runbooks.md has no section `## {alert}`"));
        for part in ["**What it means.**", "**What to check.**", "**What to do.**"] {
            assert!(section.contains(part), "the runbook of {alert} says {part}");
        }
    }
    for section in &sections {
        let title = section.lines().next().unwrap();
        assert!(alerts.contains(&title), "docs/runbooks.md has a section for {title}, which is no alert");
    }
    let absent =
        rules.split("- alert: StreamgateAbsent\n").nth(1).expect("an alert for the service missing altogether");
    assert!(absent.contains("expr: absent(up{job=\"streamgate\"})"), "{absent}");
}

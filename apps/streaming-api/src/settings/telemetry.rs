//! Settings of logs, metrics and trace export.

use serde::Deserialize;

/// Logging.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter (default `info`); `RUST_LOG` overrides it.
    pub filter: String,
    /// `text` (human-readable, the default) or `json` (one object per line,
    /// with the fields of the enclosing spans: `trace_id`, `route`, `TrackId`, …).
    pub format: LogFormat,
    /// Whether log lines may carry user ids (`UserId`; default true).
    pub user_ids: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { filter: "info".into(), format: LogFormat::Text, user_ids: true }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    Text,
    /// JSON lines, for collectors.
    Json,
}

/// Prometheus metrics.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` (default true). Off, or when the embedding program
    /// installed its own `metrics` recorder first, the route is 404.
    pub enabled: bool,
    /// Which listener serves `/metrics` (default `public`).
    pub listener: MetricsListener,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true, listener: MetricsListener::Public }
    }
}

/// Where `/metrics` is served (`metrics.listener`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsListener {
    /// The public API's port, beside the API.
    #[default]
    Public,
    /// The admin API's port only (`admin.enabled`), so the public port need
    /// not expose it; no admin key is asked for it.
    Admin,
}

/// Trace export over OTLP/HTTP.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`; spans go
    /// to `{endpoint}/v1/traces`). Unset (the default): no export. Set on a
    /// build without the `otlp` feature, the service refuses to start.
    pub endpoint: Option<String>,
    /// `service.name` of the exported spans (default `streaming-api`).
    pub service_name: String,
    /// Fraction of new traces exported, 0 to 1 (default 1). A request that
    /// arrives with a `traceparent` follows its caller's sampling decision.
    pub sample_ratio: f64,
    /// Which spans are exported, as a `tracing` filter (default
    /// `info,streaming_core=debug,streaming_http=debug,streaming_api=debug`: requests, operations
    /// and every port call).
    pub filter: String,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "streaming-api".into(),
            sample_ratio: 1.0,
            filter: "info,streaming_core=debug,streaming_http=debug,streaming_api=debug".into(),
        }
    }
}

/// A setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidSetting {
    /// The setting's dotted key (`otlp.endpoint`).
    pub key: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl OtlpSettings {
    /// Where spans are posted: `endpoint` with `/v1/traces` appended unless present.
    ///
    /// # Errors
    /// [`InvalidSetting`] when the endpoint is not an http(s) URL or the
    /// ratio is outside 0..=1.
    pub fn traces_url(&self) -> Result<Option<String>, InvalidSetting> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            let problem = format!("must be within 0 and 1, not {}", self.sample_ratio);
            return Err(InvalidSetting { key: "otlp.sample_ratio", problem });
        }
        let Some(endpoint) = self.endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        let scheme_ok = ["http://", "https://"].iter().any(|s| endpoint.starts_with(s) && endpoint.len() > s.len());
        if !scheme_ok || endpoint.contains(char::is_whitespace) {
            return Err(InvalidSetting { key: "otlp.endpoint", problem: "must be an http:// or https:// URL".into() });
        }
        let base = endpoint.trim_end_matches('/');
        Ok(Some(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }))
    }
}

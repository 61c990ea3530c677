//! Log lines and trace export: the subscriber, its filter (rusoto capped
//! at INFO), the timestamp format, and what shutdown flushes.

/// Line timestamps as RFC 3339 UTC with microseconds
/// (`2026-01-02T03:04:05.678901Z`, as the default timer writes them), the
/// part up to the second formatted once a second per thread.
#[derive(Debug, Clone, Copy)]
struct UtcMicros;

impl tracing_subscriber::fmt::time::FormatTime for UtcMicros {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
        }
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
        SECOND.with(|second| {
            let mut second = second.borrow_mut();
            if second.0 != secs {
                let at = i64::try_from(secs)
                    .ok()
                    .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let (date, clock) = (at.date(), at.time());
                let text = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    date.year(),
                    u8::from(date.month()),
                    date.day(),
                    clock.hour(),
                    clock.minute(),
                    clock.second()
                );
                *second = (secs, text);
            }
            w.write_str(&second.1)?;
            let mut digits = [b'0'; 7];
            let mut rest = micros;
            for digit in digits[..6].iter_mut().rev() {
                // `rest % 10` is a single decimal digit.
                *digit = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            digits[6] = b'Z';
            w.write_str(std::str::from_utf8(&digits).map_err(|_| std::fmt::Error)?)
        })
    }
}

/// Dependencies that print object keys or signing material at debug level
/// (rusoto logs every request's URI and its signer the canonical request):
/// held at `info` whatever the configured filter says.
const LEAKY_TARGETS: [&str; 3] = ["rusoto_core", "rusoto_signature", "rusoto_credential"];

/// `filter` with the [`LEAKY_TARGETS`] held at `info`.
fn capped(mut filter: tracing_subscriber::EnvFilter) -> LineFilter {
    for target in LEAKY_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    LineFilter::new(filter)
}

/// An [`EnvFilter`](tracing_subscriber::EnvFilter) that hears of spans only
/// when it has span directives (`target[span{field=value}]=level`). Without
/// them its verdicts never depend on spans, yet it would look every span up
/// under a process-wide lock each time one is made, entered, left, recorded
/// or closed: several times per request.
struct LineFilter {
    inner: tracing_subscriber::EnvFilter,
    spans: bool,
}

impl LineFilter {
    fn new(inner: tracing_subscriber::EnvFilter) -> Self {
        // Span directives are the ones written with `[`; `Display` writes every directive.
        let spans = inner.to_string().contains('[');
        Self { inner, spans }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for LineFilter {
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        tracing_subscriber::layer::Filter::<S>::enabled(&self.inner, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing_subscriber::layer::Filter::<S>::callsite_enabled(&self.inner, meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        tracing_subscriber::layer::Filter::<S>::max_level_hint(&self.inner)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_new_span(&self.inner, attrs, id, cx);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_record(&self.inner, id, values, cx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_enter(&self.inner, id, cx);
        }
    }

    fn on_exit(&self, id: &tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_exit(&self.inner, id, cx);
        }
    }

    fn on_close(&self, id: tracing::span::Id, cx: tracing_subscriber::layer::Context<'_, S>) {
        if self.spans {
            tracing_subscriber::layer::Filter::on_close(&self.inner, id, cx);
        }
    }
}

/// What [`install_logging`] leaves running: the trace exporter, when one is
/// configured. [`Telemetry::shutdown`] sends its buffered spans.
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    exporter: Option<crate::otlp::Exporter>,
}

impl Telemetry {
    /// Flushes and stops trace export (blocking; a no-op without it).
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = self.exporter {
            exporter.shutdown();
        }
    }
}

/// Trace export asked of a build without it.
#[cfg(not(feature = "otlp"))]
fn no_trace_export() -> crate::settings::InvalidSetting {
    crate::settings::InvalidSetting {
        key: "otlp.endpoint",
        problem: "set, but this build has no trace export (build with the `otlp` feature)".into(),
    }
}

/// Every setting of logging and trace export that [`install_logging`]
/// would refuse (`RUST_LOG` aside), without installing anything.
pub fn check_settings(
    log: &crate::settings::LogSettings,
    otlp: &crate::settings::OtlpSettings,
) -> Vec<crate::settings::InvalidSetting> {
    use crate::settings::InvalidSetting;
    let filter = |key: &'static str, filter: &str| {
        tracing_subscriber::EnvFilter::try_new(filter).err().map(|e| InvalidSetting { key, problem: e.to_string() })
    };
    let mut problems: Vec<InvalidSetting> = filter("log.filter", &log.filter).into_iter().collect();
    match otlp.traces_url() {
        Err(problem) => problems.push(problem),
        Ok(None) => {}
        #[cfg(feature = "otlp")]
        Ok(Some(_)) => problems.extend(filter("otlp.filter", &otlp.filter)),
        #[cfg(not(feature = "otlp"))]
        Ok(Some(_)) => problems.push(no_trace_export()),
    }
    problems
}

/// Installs the process's logging and tracing: `filter` applied (leaky
/// dependencies capped), lines in `log.format` written to `writer` (stdout in
/// the binary; a buffer in tests), records of crates that use the `log`
/// facade brought in too, and, with `otlp.endpoint` set (and the `otlp`
/// feature), spans exported under `otlp.filter`.
///
/// # Errors
/// When logging was installed already, or trace export is misconfigured
/// (or configured in a build without it).
pub fn install_logging<W>(
    log: &crate::settings::LogSettings,
    otlp: &crate::settings::OtlpSettings,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Result<Telemetry, TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    let lines = tracing_subscriber::fmt::layer().with_timer(UtcMicros).with_writer(writer);
    let lines = match log.format {
        crate::settings::LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            lines.with_target(false).with_ansi(ansi).boxed()
        }
        // Every enclosing span's fields: `trace_id` of the request, `TrackId` of the operation.
        crate::settings::LogFormat::Json => {
            lines.json().flatten_event(true).with_current_span(false).with_span_list(true).boxed()
        }
    };
    let registry = tracing_subscriber::registry().with(lines.with_filter(capped(filter)));

    #[cfg(feature = "otlp")]
    let (registry, telemetry) = {
        let exporter = crate::otlp::exporter(otlp)?;
        streaming_http::set_trace_export(streaming_http::TraceExport {
            exporting: crate::otlp::exporting,
            join: crate::otlp::join,
        });
        let spans = match &exporter {
            Some(exporter) => {
                let filter = tracing_subscriber::EnvFilter::try_new(&otlp.filter)
                    .map_err(|e| crate::settings::InvalidSetting { key: "otlp.filter", problem: e.to_string() })?;
                Some(crate::otlp::layer(exporter).with_filter(capped(filter)))
            }
            None => None,
        };
        (registry.with(spans), Telemetry { exporter })
    };
    #[cfg(not(feature = "otlp"))]
    let telemetry = match otlp.traces_url()? {
        Some(_) => return Err(TelemetryError::Setting(no_trace_export())),
        None => Telemetry::default(),
    };

    // Also routes the `log` facade's records into the subscriber.
    tracing_subscriber::util::SubscriberInitExt::try_init(registry)
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(telemetry)
}

/// Why logging or trace export could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting of logging or trace export cannot be used.
    #[error(transparent)]
    Setting(#[from] crate::settings::InvalidSetting),
    /// The trace exporter could not be built.
    #[error("otlp exporter: {0}")]
    Exporter(String),
    /// A subscriber is installed already in this process.
    #[error("logging is installed already: {0}")]
    AlreadyInstalled(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `directives` let through of a fixed set of lines.
    fn lines_under(directives: &str) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone());
        let filter = capped(tracing_subscriber::EnvFilter::try_new(directives).unwrap());
        let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("outside debug");
            tracing::info!("outside info");
            tracing::info_span!("picked", kind = "a").in_scope(|| tracing::debug!("inside picked debug"));
            tracing::info_span!("other").in_scope(|| tracing::debug!("inside other debug"));
            tracing::debug!(target: "rusoto_core", "leaky debug");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn line_timestamps_are_rfc3339_utc_with_microseconds() {
        use tracing_subscriber::fmt::time::FormatTime as _;
        let before = time::OffsetDateTime::now_utc();
        let mut text = String::new();
        UtcMicros.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text)).unwrap();
        let after = time::OffsetDateTime::now_utc();
        assert_eq!(text.len(), "2026-01-02T03:04:05.678901Z".len(), "{text}");
        let at = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
        assert!(before - time::Duration::microseconds(1) <= at && at <= after, "{text}");
        // The cached second is used again, with new microseconds.
        let mut again = String::new();
        UtcMicros.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut again)).unwrap();
        assert!(time::OffsetDateTime::parse(&again, &time::format_description::well_known::Rfc3339).unwrap() >= at);
    }

    #[test]
    fn plain_directives_filter_without_following_spans() {
        let filter = capped(tracing_subscriber::EnvFilter::try_new("info,streaming_core=debug").unwrap());
        assert!(!filter.spans);
        let text = lines_under("info");
        assert!(text.contains("outside info"));
        assert!(!text.contains("debug"), "{text}");
        let text = lines_under("debug");
        assert!(text.contains("outside debug") && text.contains("inside picked debug"));
        assert!(!text.contains("leaky debug"), "leaky targets stay capped: {text}");
    }

    #[test]
    fn span_directives_still_filter_by_span() {
        let filter = capped(tracing_subscriber::EnvFilter::try_new("info,[picked]=debug").unwrap());
        assert!(filter.spans);
        let text = lines_under("info,[picked{kind=a}]=debug");
        assert!(text.contains("inside picked debug"), "{text}");
        assert!(!text.contains("inside other debug"), "{text}");
        assert!(!text.contains("outside debug"), "{text}");
        assert!(text.contains("outside info"));
    }
}

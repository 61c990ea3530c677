//! What every problem document carries besides its error: the type base,
//! the request's trace id (from a valid `traceparent`, else fresh), and the
//! middleware that fills them in.

use super::ApiError;
use std::fmt;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::HttpMessage;

/// The configured base of problem `type` URIs, kept in app data.
#[derive(Debug, Clone)]
pub struct ProblemTypeBase(pub String);

impl ProblemTypeBase {
    /// The base when none is configured.
    pub const DEFAULT: &'static str = "https://streamgate.dev/problems/";
}

/// A request's trace id: the trace-id of a valid incoming W3C `traceparent`,
/// else a fresh random one. Returned in the `trace-id` response header and in
/// problem documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(pub String);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TraceId {
    /// The trace id, parent span id and flags of a valid W3C `traceparent`.
    pub fn parse_traceparent(value: &HeaderValue) -> Option<(&str, &str, &str)> {
        // version "-" trace-id(32 hex) "-" parent-id(16 hex) "-" flags(2 hex)
        let value = value.to_str().ok()?;
        let mut parts = value.split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let valid = hex(version, 2)
            && version != "ff"
            && hex(trace, 32)
            && trace != "0".repeat(32)
            && hex(parent, 16)
            && parent != "0".repeat(16)
            && hex(flags, 2);
        valid.then_some((trace, parent, flags))
    }

    /// A fresh random trace id.
    pub fn random() -> Self {
        Self(streaming_core::encoding::hex(&rand::random::<[u8; 16]>()))
    }
}

/// Middleware body: turns any [`ApiError`] response into the full problem
/// document with `instance` and `traceId` (the id `telemetry::observe` assigned).
pub async fn enrich_problems<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let mut res = next.call(req).await?.map_into_boxed_body();
    // Only error responses pay for the problem document (and its settings lookup).
    let problem = res.response().error().and_then(|e| e.as_error::<ApiError>()).cloned();
    if let Some(problem) = problem {
        let request = res.request();
        let type_base = request.app_data::<actix_web::web::Data<ProblemTypeBase>>();
        let type_base = type_base.map_or(ProblemTypeBase::DEFAULT, |base| base.0.as_str());
        let trace = request.extensions().get::<TraceId>().cloned().unwrap_or_else(TraceId::random);
        let document = problem.to_problem(type_base, request.path(), &trace.0);
        res = res.into_response(document);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_honoured_only_when_valid() {
        let valid = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            TraceId::parse_traceparent(&valid),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01"))
        );
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-<script>-00f067aa0ba902b7-01",
        ] {
            assert!(TraceId::parse_traceparent(&HeaderValue::from_static(bad)).is_none(), "{bad}");
        }
        assert_eq!(TraceId::random().0.len(), 32);
        assert_ne!(TraceId::random(), TraceId::random());
    }
}

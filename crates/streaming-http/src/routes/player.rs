//! The demo player: a page at `/` and its three files under `/player/`,
//! built into the binary. Served while demo mode is on (the page comes with
//! the demo token filled in); 404 otherwise.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::PagesState;
use crate::problem::ApiError;

const PAGE: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/player.js");
const STYLE: &str = include_str!("../../web/player.css");
/// hls.js, as its package publishes it (`web/package.json` names the version).
const HLS: &str = include_str!("../../web/vendor/hls.light.min.js");

/// Scripts and styles from this service only, no inline code; media and the
/// manifest's segments from wherever the signed URLs point.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
media-src * blob:; connect-src *; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'none'";

/// `"` `&` `<` `>` `'` escaped, for an attribute value.
fn attribute(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => escaped.push_str("&quot;"),
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// What `/` answers outside demo mode (the cinema service's root route).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Root {
    /// `streamgate`.
    service: &'static str,
    /// This build's version.
    version: &'static str,
    /// Always `running`.
    status: &'static str,
    /// Where the OpenAPI document is.
    openapi: &'static str,
}

/// The player page in demo mode; a short JSON description of the service otherwise.
#[utoipa::path(
    get,
    path = "/",
    tag = "player",
    responses(
        (status = 200, description = "In demo mode the player (HTML; `Cache-Control: no-store`: it carries the demo token); otherwise the service's name and version (JSON).", content(
            ("text/html"),
            (Root = "application/json"),
        )),
    ),
)]
pub async fn page(request: HttpRequest, state: web::Data<PagesState>) -> Result<HttpResponse, ApiError> {
    // The token goes only to a loopback client that asked for a loopback
    // name: a page reached through DNS rebinding (any name pointed at
    // 127.0.0.1) comes from a loopback client with a foreign `Host`.
    let token = state.demo_token.as_deref().filter(|_| from_loopback(&request));
    let Some(token) = token else {
        return Ok(HttpResponse::Ok().json(Root {
            service: "streamgate",
            version: env!("CARGO_PKG_VERSION"),
            status: "running",
            openapi: "/openapi.json",
        }));
    };
    let html = PAGE.replace("{{DEMO_TOKEN}}", &attribute(token));
    Ok(html_page(POLICY).insert_header((header::CACHE_CONTROL, "no-store")).body(html))
}

/// Whether the request came from a loopback address for a loopback name
/// (`localhost`, `127.0.0.1` or another 127/8 address, `[::1]`; any port).
fn from_loopback(request: &HttpRequest) -> bool {
    let peer = request.peer_addr().is_some_and(|peer| peer.ip().is_loopback());
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    peer && is_loopback_host(host)
}

/// Whether a `Host` header value names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]` or `[::1]:8080`.
        Some(rest) => match rest.split_once(']') {
            Some((address, port)) if port.is_empty() || valid_port(port) => address,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `:` and a port number.
fn valid_port(text: &str) -> bool {
    text.strip_prefix(':').is_some_and(|port| port.parse::<u16>().is_ok())
}

/// An HTML page's answer under `policy` (its Content-Security-Policy).
pub(super) fn html_page(policy: &'static str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    response
}

/// One of the player's files: `player.js`, `player.css` or `hls.light.min.js`.
#[utoipa::path(
    get,
    path = "/player/{file}",
    tag = "player",
    params(("file" = String, Path, description = "`player.js`, `player.css` or `hls.light.min.js`.")),
    responses(
        (status = 200, description = "The file (JavaScript or CSS, cached for an hour)."),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub async fn asset(file: web::Path<String>, state: web::Data<PagesState>) -> Result<HttpResponse, ApiError> {
    if state.demo_token.is_none() {
        return Err(ApiError::PlayerFileNotFound);
    }
    match file.as_str() {
        "player.js" => Ok(static_file(SCRIPT, JAVASCRIPT)),
        "player.css" => Ok(static_file(STYLE, CSS)),
        "hls.light.min.js" => Ok(static_file(HLS, JAVASCRIPT)),
        _ => Err(ApiError::PlayerFileNotFound),
    }
}

pub(super) const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
pub(super) const CSS: &str = "text/css; charset=utf-8";

/// A file built into the binary, cached by browsers for an hour.
pub(super) fn static_file(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:9", "127.1.2.3:80", "[::1]", "[::1]:8080"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "rebind.attacker.example",
            "rebind.attacker.example:8080",
            "127.0.0.1.nip.io",
            "localhost.evil",
            "localhost:99999",
            "localhost:",
            "[::1",
            "[::1]x",
            "10.0.0.1",
            "[::2]:80",
            "0.0.0.0:8080",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}

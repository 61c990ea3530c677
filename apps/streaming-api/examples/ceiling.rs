//! The framework ceiling for `cargo xtask bench`: the same actix-web server
//! (one worker per core, the service's request timeout) with no middleware,
//! no state and one handler that answers every `GET` and `POST` with a fixed
//! JSON body of a given size. What our routes reach is reported as a share
//! of what this reaches on the same machine.
//!
//! `cargo run --release -p streaming-api --example ceiling -- PORT BODY_BYTES`

// A benchmark fixture: its one line on stdout says where it listens.
#![allow(clippy::print_stdout)]

use std::net::TcpListener;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, App, HttpResponse, HttpServer};

/// A JSON object whose serialised form is exactly `size` bytes (at least 16).
fn fixed_body(size: usize) -> Bytes {
    let frame = r#"{"streamUrl":""}"#;
    let filler = size.saturating_sub(frame.len());
    Bytes::from(format!(r#"{{"streamUrl":"{}"}}"#, "x".repeat(filler)))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    let body = fixed_body(size);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("ceiling listening on {}", listener.local_addr()?);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move { HttpResponse::Ok().content_type("application/json").body(body) }
        }))
    })
    .client_request_timeout(Duration::from_millis(5_000))
    .listen(listener)?
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::fixed_body;

    #[test]
    fn the_body_has_the_asked_size_and_is_json() {
        for size in [16, 100, 512, 1_000] {
            let body = fixed_body(size);
            assert_eq!(body.len(), size);
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
        }
    }
}

//! `streaming-api`: see [`streaming_api::cli`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match streaming_api::cli::run(std::env::args()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streaming-api: {message}");
            ExitCode::FAILURE
        }
    }
}

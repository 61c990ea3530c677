//! `streaming-api`: see [`streaming_api::cli`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match streaming_api::cli::run(std::env::args()).await {
        Ok(()) => ExitCode::SUCCESS,
        // Help and the version on stdout with 0; a mistake on stderr with 2.
        Err(streaming_api::cli::CliError::Usage(usage)) => {
            let _ = usage.print();
            ExitCode::from(u8::try_from(usage.exit_code()).unwrap_or(2))
        }
        Err(message) => {
            eprintln!("streaming-api: {message}");
            ExitCode::FAILURE
        }
    }
}

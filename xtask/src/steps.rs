//! Named steps that say what they do before they start and how long they
//! took when they end, and a table of those times for the run's summary.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every step finished in this run, in order.
static TIMES: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

/// Runs `body` as the step `name`: a heading before, its time after.
pub fn timed<T>(name: &str, body: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    println!("==> {name}");
    let started = Instant::now();
    let result = body();
    let elapsed = started.elapsed();
    let outcome = if result.is_ok() { "done" } else { "failed" };
    println!("    {name}: {outcome} in {}", format_duration(elapsed));
    if let Ok(mut times) = TIMES.lock() {
        times.push((name.to_owned(), elapsed));
    }
    result
}

/// Runs `command` as the step `name`; a non-zero exit is an error.
pub fn run(name: &str, command: &mut Command) -> Result<(), String> {
    timed(name, || {
        let status = command.status().map_err(|e| format!("{name}: cannot run: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{name} failed ({status})"))
        }
    })
}

/// The steps so far with their times, and their sum.
pub fn print_summary(since: Instant) {
    println!("==> time per step");
    if let Ok(times) = TIMES.lock() {
        for (name, elapsed) in times.iter() {
            println!("    {:>8}  {name}", format_duration(*elapsed));
        }
    }
    println!("    {:>8}  in all so far", format_duration(since.elapsed()));
}

/// `42.0 s` below a minute, `7 min 05 s` above.
pub fn format_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < 60 {
        format!("{:.1} s", elapsed.as_secs_f64())
    } else {
        format!("{} min {:02} s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds_then_minutes() {
        assert_eq!(format_duration(Duration::from_millis(4_240)), "4.2 s");
        assert_eq!(format_duration(Duration::from_secs(59)), "59.0 s");
        assert_eq!(format_duration(Duration::from_secs(425)), "7 min 05 s");
    }
}

//! Where the machine's CPU went during a run: every process's user + system
//! time from `/proc`, grouped by program name. On a 2-core machine shared by
//! the load generator, the service and its dependencies, this says what
//! bounds a path. Processes that end during the run (the load generator
//! itself) are not seen; their share is what the others leave.

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Ticks used so far and the name, per process id.
pub struct Snapshot {
    ticks: BTreeMap<u32, (String, u64)>,
    at: Instant,
}

pub fn snapshot() -> Snapshot {
    let mut ticks = BTreeMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Some((name, used)) = fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse(&s))
            else {
                continue;
            };
            // Kernel threads rename themselves after their current work item.
            let name = if name.starts_with("kworker") { "kernel workers".to_owned() } else { name };
            ticks.insert(pid, (name, used));
        }
    }
    Snapshot { ticks, at: Instant::now() }
}

/// `(program, user + system ticks)` of one `/proc/PID/stat` line. The name
/// is in parentheses and may hold spaces; the times are the 12th and 13th
/// fields after it.
fn parse(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let mut rest = stat.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = rest.next()?.parse().ok()?;
    let system: u64 = rest.next()?.parse().ok()?;
    Some((name, user + system))
}

/// Cores each program used since `before`, busiest first, the idle ones left out.
pub fn since(before: &Snapshot) -> Vec<(String, f64)> {
    let now = snapshot();
    let seconds = now.at.duration_since(before.at).as_secs_f64().max(0.001);
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    for (pid, (name, ticks)) in &now.ticks {
        // A process born during the run counts from zero.
        let earlier = before.ticks.get(pid).map_or(0, |(_, ticks)| *ticks);
        *by_name.entry(name).or_insert(0) += ticks.saturating_sub(earlier);
    }
    let mut used: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(name, ticks)| (name.to_owned(), ticks as f64 / TICKS_PER_SECOND / seconds))
        .filter(|(_, cores)| *cores >= 0.05)
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    used
}

/// `streaming-api 1.21, wrk 0.52, …` (cores).
pub fn describe(used: &[(String, f64)]) -> String {
    used.iter().map(|(name, cores)| format!("{name} {cores:.2}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_the_times_after_a_name_with_spaces() {
        let stat = "4242 (tokio worker 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse(stat), Some(("tokio worker 1".to_owned(), 300)));
    }
}

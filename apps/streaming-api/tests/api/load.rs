//! A bounded load loop for fault tests: a few concurrent clients send
//! requests until told to stop, and every answer is counted by status and
//! by the phase of the run it came in (before, during and after an outage).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Before,
    During,
    After,
}

/// Answers counted by phase and status (0: no answer at all).
#[derive(Debug, Default)]
pub struct Outcomes {
    counts: Mutex<BTreeMap<(Phase, u16), u64>>,
    /// When the run entered [`Phase::After`] (the fault was mended), and
    /// when a request last failed (no answer, or 5xx) after that.
    mended: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Outcomes {
    /// How many answers of `status` came in `phase`.
    pub fn of(&self, phase: Phase, status: u16) -> u64 {
        self.counts.lock().unwrap().get(&(phase, status)).copied().unwrap_or(0)
    }

    /// How many requests were answered with anything but one of `statuses`.
    pub fn other_than(&self, statuses: &[u16]) -> u64 {
        self.counts.lock().unwrap().iter().filter(|((_, s), _)| !statuses.contains(s)).map(|(_, n)| n).sum()
    }

    /// How many requests were sent.
    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }

    /// How many requests got an answer (any status).
    pub fn answered(&self) -> u64 {
        self.total() - self.counts.lock().unwrap().iter().filter(|((_, s), _)| *s == 0).map(|(_, n)| n).sum::<u64>()
    }

    /// How many answers were 5xx.
    pub fn server_errors(&self) -> u64 {
        self.counts.lock().unwrap().iter().filter(|((_, s), _)| *s >= 500).map(|(_, n)| n).sum()
    }

    /// From the mend to the last failed request after it (zero without one).
    pub fn recovery(&self) -> Duration {
        match *self.mended.lock().unwrap() {
            (Some(mended), Some(failed)) => failed.saturating_duration_since(mended),
            _ => Duration::ZERO,
        }
    }

    /// Prints the fault's figures as `cargo xtask faults` collects them
    /// (`None`: the fault's load makes no such writes or events).
    pub fn report(&self, fault: &str, writes_lost: Option<u64>, events_lost: Option<u64>) {
        self.report_recovered_in(fault, writes_lost, events_lost, self.recovery());
    }

    /// [`Outcomes::report`] with the time to recover measured by the test.
    pub fn report_recovered_in(
        &self,
        fault: &str,
        writes_lost: Option<u64>,
        events_lost: Option<u64>,
        recovery: Duration,
    ) {
        let or_dash = |n: Option<u64>| n.map_or_else(|| "—".to_owned(), |n| n.to_string());
        println!(
            "FAULT|{fault}|{}|{}|{}|{}|{}|{:.2}|{}",
            self.total(),
            self.answered(),
            self.server_errors(),
            or_dash(writes_lost),
            or_dash(events_lost),
            recovery.as_secs_f64(),
            self.summary(),
        );
    }

    /// `before: 200×N; during: 200×N, 503×M; after: …`
    pub fn summary(&self) -> String {
        let counts = self.counts.lock().unwrap();
        [Phase::Before, Phase::During, Phase::After]
            .iter()
            .map(|phase| {
                let answers: Vec<String> = counts
                    .iter()
                    .filter(|((p, _), _)| p == phase)
                    .map(|((_, status), n)| format!("{status}×{n}"))
                    .collect();
                format!("{}: {}", format!("{phase:?}").to_lowercase(), answers.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Clients in a loop until [`Load::finish`].
pub struct Load {
    pub outcomes: Arc<Outcomes>,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` loops; client `i` sends its `n`-th request
    /// (from 1) as `request(i, n)`, which returns the status answered.
    pub fn start<F, Fut>(clients: usize, request: F) -> Self
    where
        F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = u16> + Send,
    {
        let request = Arc::new(request);
        let (outcomes, phase, stop) =
            (Arc::new(Outcomes::default()), Arc::new(AtomicU8::new(0)), Arc::new(AtomicBool::new(false)));
        let workers = (0..clients)
            .map(|client| {
                let (request, outcomes, phase, stop) = (request.clone(), outcomes.clone(), phase.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let status = request(client, n).await;
                        // The phase the answer came in: the test enters a
                        // phase before it breaks or mends anything, so an
                        // answer counted before an outage preceded it.
                        let answered_in = phase_of(phase.load(Ordering::Relaxed));
                        *outcomes.counts.lock().unwrap().entry((answered_in, status)).or_default() += 1;
                        if answered_in == Phase::After && (status == 0 || status >= 500) {
                            outcomes.mended.lock().unwrap().1 = Some(Instant::now());
                        }
                    }
                })
            })
            .collect();
        Self { outcomes, phase, stop, workers }
    }

    /// Requests answered from now on count in `phase`.
    pub fn enter(&self, phase: Phase) {
        if phase == Phase::After {
            self.outcomes.mended.lock().unwrap().0 = Some(Instant::now());
        }
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Stops the clients (a panic in one fails the test here) and returns the outcomes.
    pub async fn finish(self) -> Arc<Outcomes> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        self.outcomes
    }
}

fn phase_of(value: u8) -> Phase {
    match value {
        0 => Phase::Before,
        1 => Phase::During,
        _ => Phase::After,
    }
}

//! Log lines written in batches.
//!
//! Written one by one, every log line is a `write` system call on the
//! request path; at tens of thousands of requests a second that is a good
//! part of a core. [`BatchedWriter`] appends each line to a buffer in
//! memory and writes the buffer out when it passes [`FLUSH_AT`] bytes (on
//! the thread that filled it) or every interval (on a thread of its own),
//! in the order the lines were made. The price: a process killed with
//! SIGKILL loses at most the last interval of log lines; [`BatchedWriter::flush`]
//! (called on exit) writes what is left.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

/// Above this many buffered bytes the writing thread writes them out itself.
pub const FLUSH_AT: usize = 64 * 1024;

/// A [`tracing_subscriber::fmt::MakeWriter`] batching lines into `W`.
#[derive(Debug)]
pub struct BatchedWriter<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Write + Send + 'static> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

#[derive(Debug)]
struct Shared<W> {
    pending: Mutex<Vec<u8>>,
    /// Taken before `pending` is let go, so batches go out in order.
    output: Mutex<W>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write + Send + 'static> Shared<W> {
    /// Writes out what `pending` holds; a failed write is dropped (there is
    /// nowhere left to report it).
    fn write_out(&self, mut pending: MutexGuard<'_, Vec<u8>>) {
        if pending.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut *pending, Vec::with_capacity(FLUSH_AT));
        let mut output = locked(&self.output);
        drop(pending);
        let _ = output.write_all(&batch).and_then(|()| output.flush());
    }
}

impl<W: Write + Send + 'static> BatchedWriter<W> {
    /// Batches lines into `output`, written out at least every `interval`
    /// by a thread that ends when the last handle is dropped.
    ///
    /// # Errors
    /// When that thread cannot be started.
    pub fn start(output: W, interval: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared { pending: Mutex::new(Vec::with_capacity(FLUSH_AT)), output: Mutex::new(output) });
        let weak: Weak<Shared<W>> = Arc::downgrade(&shared);
        std::thread::Builder::new().name("log-writer".into()).spawn(move || loop {
            std::thread::sleep(interval);
            let Some(shared) = weak.upgrade() else { break };
            shared.write_out(locked(&shared.pending));
        })?;
        Ok(Self { shared })
    }

    /// Writes out every buffered line now.
    pub fn flush(&self) {
        self.shared.write_out(locked(&self.shared.pending));
    }
}

/// One line's writer.
#[derive(Debug)]
pub struct Line<'a, W: Write + Send + 'static>(&'a Shared<W>);

impl<W: Write + Send + 'static> Write for Line<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut pending = locked(&self.0.pending);
        pending.extend_from_slice(bytes);
        if pending.len() >= FLUSH_AT {
            self.0.write_out(pending);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // The batch goes out by size or interval, not per line.
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            locked(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(writer: &BatchedWriter<Captured>, text: &str) {
        use tracing_subscriber::fmt::MakeWriter as _;
        writer.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_wait_for_the_interval_or_a_flush() {
        let output = Captured::default();
        let writer = BatchedWriter::start(output.clone(), Duration::from_secs(3600)).unwrap();
        line(&writer, "one\n");
        line(&writer, "two\n");
        assert!(locked(&output.0).is_empty(), "buffered");
        writer.flush();
        assert_eq!(&*locked(&output.0), b"one\ntwo\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_filled_it() {
        let output = Captured::default();
        let writer = BatchedWriter::start(output.clone(), Duration::from_secs(3600)).unwrap();
        let long = "x".repeat(1023) + "\n";
        for _ in 0..64 {
            line(&writer, &long);
        }
        assert_eq!(locked(&output.0).len(), FLUSH_AT, "written at 64 KiB, in one piece");
    }

    #[test]
    fn the_interval_writes_without_a_flush() {
        let output = Captured::default();
        let writer = BatchedWriter::start(output.clone(), Duration::from_millis(10)).unwrap();
        line(&writer, "late\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while locked(&output.0).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*locked(&output.0), b"late\n");
    }

    #[test]
    fn lines_from_many_threads_stay_whole_and_in_order_per_thread() {
        let output = Captured::default();
        let writer = BatchedWriter::start(output.clone(), Duration::from_millis(1)).unwrap();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let writer = writer.clone();
                scope.spawn(move || {
                    for i in 0..2_000 {
                        line(&writer, &format!("{t} {i:05} {}\n", "y".repeat(40)));
                    }
                });
            }
        });
        writer.flush();
        let text = String::from_utf8(locked(&output.0).clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let seen: Vec<&str> = lines.iter().filter(|l| l.starts_with(&format!("{t} "))).copied().collect();
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            assert_eq!(seen, sorted, "thread {t}'s lines in order");
        }
    }
}

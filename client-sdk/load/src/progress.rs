//! The live progress line on stderr: on a terminal it is redrawn every second with the
//! elapsed time, requests answered and failed, the recent rate and the p50/p99 latency so
//! far; elsewhere (CI logs) it is a plain line every five seconds. `-q/--quiet` turns it
//! off entirely.
//!
//! The line reads the run through a closure, so it knows nothing of how the run is kept.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use crate::report::human_us;

/// What the line shows of a run at one moment.
pub struct Snapshot {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub failed: u64,
    /// Median latency so far.
    pub p50: Option<Duration>,
    /// 99th percentile so far.
    pub p99: Option<Duration>,
    /// Since the run started.
    pub elapsed: Duration,
}

/// A running progress line; [`Progress::stop`] clears it.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    terminal: bool,
}

impl Progress {
    /// Starts drawing `label`'s line from what `snapshot` returns.
    pub fn start(label: String, snapshot: impl Fn() -> Snapshot + Send + 'static) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal { Duration::from_secs(1) } else { Duration::from_secs(5) };
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at((Instant::now() + every).into(), every);
            let mut last = (0u64, Instant::now());
            loop {
                ticker.tick().await;
                let now = Instant::now();
                let line = line(&label, &snapshot(), &mut last, now);
                if terminal {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Self { task, terminal }
    }

    /// Stops and clears the line.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The text of one line; `last` is the previous (count, time), for the recent rate.
fn line(label: &str, s: &Snapshot, last: &mut (u64, Instant), now: Instant) -> String {
    let total = s.ok + s.failed;
    let seconds = now.duration_since(last.1).as_secs_f64();
    let recent = if seconds > 0.0 { total.saturating_sub(last.0) as f64 / seconds } else { 0.0 };
    *last = (total, now);
    let us = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| human_us(d.as_secs_f64() * 1e6));
    format!(
        "{label}: {:>6.1} s  {recent:.0} req/s  {} ok  {} failed  p50 {}  p99 {}",
        s.elapsed.as_secs_f64(),
        s.ok,
        s.failed,
        us(s.p50),
        us(s.p99)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_rate_percentiles_and_errors() {
        let t0 = Instant::now();
        let mut last = (0, t0);
        let snapshot = Snapshot {
            ok: 95,
            failed: 5,
            p50: Some(Duration::from_micros(1500)),
            p99: Some(Duration::from_millis(12)),
            elapsed: Duration::from_secs(2),
        };
        let text = line("encrypted", &snapshot, &mut last, t0 + Duration::from_secs(1));
        assert_eq!(text, "encrypted:    2.0 s  100 req/s  95 ok  5 failed  p50 1.50 ms  p99 12.00 ms");
        assert_eq!(last.0, 100);
        let empty = Snapshot { ok: 0, failed: 0, p50: None, p99: None, elapsed: Duration::ZERO };
        assert!(line("x", &empty, &mut (0, t0), t0).contains("p50 -  p99 -"));
    }
}

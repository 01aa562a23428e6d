//! Server-side cost of a run, read from `/proc` when the gateway runs on this machine
//! (`--server-pid`): CPU time (user + system, all threads, including threads that have
//! already exited) and resident memory, sampled right before and right after the measured
//! phase so warm-up and preflight are not counted.
//!
//! The same readings, taken every second during a run, give the time series' CPU % and
//! RSS ([`Sample::point_since`]).
//!
//! CPU per request is the number that says what encryption costs the server: the
//! encrypted run's figure minus the plaintext run's is the price of Oblivious HTTP.

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::timeseries::ServerPoint;

/// Clock ticks per second of the `utime`/`stime` fields: `USER_HZ`, which Linux fixes at
/// 100 for user space on every mainstream architecture (the kernel converts from its
/// internal `HZ`), so it is not looked up.
const USER_HZ: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    cpu: Duration,
    rss_kib: u64,
}

impl Sample {
    /// Reads `/proc/PID/stat` and `/proc/PID/status`.
    pub fn read(pid: u32) -> Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("--server-pid {pid}: reading /proc/{pid}/stat (is the gateway running here?)"))?;
        let cpu = cpu_of(&stat).with_context(|| format!("--server-pid {pid}: unexpected /proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("--server-pid {pid}: reading /proc/{pid}/status"))?;
        let rss_kib = rss_of(&status).with_context(|| format!("--server-pid {pid}: no VmRSS in /proc/{pid}/status"))?;
        Ok(Self { cpu, rss_kib })
    }

    /// The usage from `earlier` to this sample, `elapsed` apart, as one time-series point.
    pub fn point_since(&self, earlier: &Sample, elapsed: Duration) -> ServerPoint {
        let cpu = self.cpu.saturating_sub(earlier.cpu).as_secs_f64();
        let seconds = elapsed.as_secs_f64();
        ServerPoint { cpu_percent: if seconds > 0.0 { cpu / seconds * 100.0 } else { 0.0 }, rss_kib: self.rss_kib }
    }
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn cpu_of(stat: &str) -> Option<Duration> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) and stime (15) are 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
fn rss_of(status: &str) -> Option<u64> {
    status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
}

/// The server's cost over a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerUsage {
    /// CPU seconds (user + system) the gateway used during the run.
    pub cpu_s: f64,
    /// CPU microseconds per request answered (successes and failures).
    pub cpu_us_per_request: f64,
    /// Resident memory at the start, KiB.
    pub rss_start_kib: u64,
    /// Resident memory at the end, KiB.
    pub rss_end_kib: u64,
}

impl ServerUsage {
    /// The usage between two samples for `requests` requests.
    pub fn between(start: Sample, end: Sample, requests: u64) -> Self {
        let cpu_s = end.cpu.saturating_sub(start.cpu).as_secs_f64();
        Self {
            cpu_s,
            cpu_us_per_request: if requests > 0 { cpu_s * 1e6 / requests as f64 } else { f64::NAN },
            rss_start_kib: start.rss_kib,
            rss_end_kib: end.rss_kib,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_text_is_parsed() {
        let stat = "4242 (sealgate (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_of(stat), Some(Duration::from_secs(3)));
        assert_eq!(cpu_of("garbage"), None);
        assert_eq!(rss_of("Name:\tsealgate\nVmRSS:\t  123456 kB\nThreads: 9\n"), Some(123_456));
        assert_eq!(rss_of("Name: x\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = Sample::read(std::process::id()).unwrap();
        assert!(sample.rss_kib > 0);
        let usage = ServerUsage::between(sample, sample, 0);
        assert_eq!(usage.cpu_s, 0.0);
        assert!(usage.cpu_us_per_request.is_nan());
        let point = sample.point_since(&sample, Duration::from_secs(1));
        assert_eq!((point.cpu_percent, point.rss_kib), (0.0, sample.rss_kib));
    }
}

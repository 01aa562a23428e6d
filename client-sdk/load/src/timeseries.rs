//! The run second by second: requests sent, answered and failed (by kind), latency
//! percentiles of the requests due in that second, and the gateway's CPU and memory
//! (`--server-pid`), for the `--json` time series and the HTML report's charts.
//!
//! A request's latency belongs to the second it was due (open loop) or sent (closed
//! loop), as wrk2 and vegeta plot it, so a stall shows at the time it happened; its answer
//! is counted in the second it arrived, so throughput over time is what the gateway
//! delivered. Each second has its own small HdrHistogram (two significant digits, 1 µs to
//! one hour): enough for a plot, and a 35-minute soak stays within a few tens of MiB.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::target::ErrorKind;

/// The longest series kept (a week of seconds); later seconds are folded into the last.
const MAX_SECONDS: usize = 7 * 24 * 3600;

/// One second of the run, as it is being recorded.
struct Bucket {
    sent: u64,
    ok: u64,
    errors: BTreeMap<ErrorKind, u64>,
    latency: Histogram<u32>,
    server: Option<ServerPoint>,
}

impl Bucket {
    fn new() -> Self {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, two
        // significant figures), so this cannot fail.
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds");
        Self { sent: 0, ok: 0, errors: BTreeMap::new(), latency, server: None }
    }
}

/// The gateway's usage over one second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerPoint {
    /// CPU time used in the second, as a percentage of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Resident memory at the end of the second, KiB.
    pub rss_kib: u64,
}

/// Collects the per-second buckets of one run.
pub struct TimeSeries {
    /// Offset of the first bucket from the run's start, whole seconds (find-max steps
    /// continue one series across steps).
    first_second: u64,
    buckets: Vec<Bucket>,
}

/// One second, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds from the start of the run (find-max: of the search) to this second's start.
    pub t_s: u64,
    /// Requests due (open loop) or sent (closed loop) in this second.
    pub sent: u64,
    /// Successful answers that arrived in this second.
    pub ok: u64,
    /// Failures that arrived in this second, by kind (only kinds that occurred).
    pub errors: BTreeMap<&'static str, u64>,
    /// Median latency of the requests due in this second, µs (absent when none finished).
    pub p50_us: Option<f64>,
    /// 90th percentile, µs.
    pub p90_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// Largest, µs.
    pub max_us: Option<f64>,
    /// The gateway's CPU and memory in this second (`--server-pid`).
    pub server: Option<ServerPoint>,
}

impl TimeSeries {
    /// An empty series whose first second is `first_second` seconds into the run.
    pub fn starting_at(first_second: u64) -> Self {
        Self { first_second, buckets: Vec::new() }
    }

    fn bucket(&mut self, at: Duration) -> &mut Bucket {
        let index = usize::try_from(at.as_secs()).unwrap_or(usize::MAX).min(MAX_SECONDS);
        if self.buckets.len() <= index {
            self.buckets.resize_with(index + 1, Bucket::new);
        }
        // The resize above makes `index` valid.
        &mut self.buckets[index]
    }

    /// Records one request due (or sent) at `due` after the start that took `latency`.
    pub fn record(&mut self, due: Duration, latency: Duration, failure: Option<ErrorKind>) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        let sent = self.bucket(due);
        sent.sent += 1;
        sent.latency.saturating_record(micros);
        let answered = self.bucket(due + latency);
        match failure {
            None => answered.ok += 1,
            Some(kind) => *answered.errors.entry(kind).or_default() += 1,
        }
    }

    /// Notes the gateway's usage over the second that ended `at` after the start.
    pub fn server(&mut self, at: Duration, point: ServerPoint) {
        self.bucket(at.saturating_sub(Duration::from_millis(1))).server = Some(point);
    }

    /// The series as reported.
    pub fn seconds(&self) -> Vec<Second> {
        let us = |h: &Histogram<u32>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64);
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| Second {
                t_s: self.first_second + i as u64,
                sent: b.sent,
                ok: b.ok,
                errors: b.errors.iter().map(|(k, n)| (k.name(), *n)).collect(),
                p50_us: us(&b.latency, 0.5),
                p90_us: us(&b.latency, 0.9),
                p99_us: us(&b.latency, 0.99),
                max_us: (!b.latency.is_empty()).then(|| b.latency.max() as f64),
                server: b.server,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_seconds() {
        let mut series = TimeSeries::starting_at(10);
        let ms = Duration::from_millis;
        series.record(ms(100), ms(5), None);
        series.record(ms(900), ms(300), None);
        series.record(ms(2500), ms(1), Some(ErrorKind::Transport));
        series.server(Duration::from_secs(1), ServerPoint { cpu_percent: 50.0, rss_kib: 1000 });
        let seconds = series.seconds();
        assert_eq!(seconds.len(), 3);
        assert_eq!(seconds[0].t_s, 10);
        // Both requests were due in second 0; the slow one was answered in second 1.
        assert_eq!((seconds[0].sent, seconds[0].ok, seconds[1].ok), (2, 1, 1));
        let max = seconds[0].max_us.unwrap();
        assert!((max - 300_000.0).abs() < 3_000.0, "{max}");
        assert_eq!(seconds[1].p50_us, None, "nothing was due in second 1");
        assert_eq!(seconds[2].errors["transport"], 1);
        assert_eq!(seconds[0].server.map(|s| s.rss_kib), Some(1000));
        let json = serde_json::to_value(&seconds).unwrap();
        assert_eq!(json[2]["errors"]["transport"], 1);
    }
}

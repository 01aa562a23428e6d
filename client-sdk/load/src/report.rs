//! Recording a run and reporting it: HdrHistogram latencies, error counts by kind, the
//! human-readable report on stdout and the JSON one for machines (`--json`).
//!
//! Latencies are recorded in nanoseconds with three significant digits (0.1 % error), from
//! 1 ns to one hour; longer values are clamped rather than dropped, so a stuck request
//! still shows as the maximum. The JSON report uses microseconds as floating-point numbers
//! so scripts need no unit handling. Each run also carries its time series
//! ([`crate::timeseries`]) and its latency distribution (the HdrHistogram percentile plot's
//! points), which the HTML report draws.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::server_usage::ServerUsage;
use crate::target::{ErrorKind, Mode, Outcome};
use crate::timeseries::{Second, ServerPoint, TimeSeries};

/// Longest latency the histograms distinguish.
const MAX_TRACKED: Duration = Duration::from_secs(3600);

/// Collects the outcomes of one run.
pub struct Recorder {
    latency: Histogram<u64>,
    ok_latency: Histogram<u64>,
    crypto: Histogram<u64>,
    ok: u64,
    resent: u64,
    errors: BTreeMap<ErrorKind, ErrorTally>,
    max_schedule_lag: Option<Duration>,
    rows: Option<RowTally>,
    series: TimeSeries,
    /// Transport failures since the last answer of any kind (a gateway that went away).
    transport_streak: u64,
    /// When, from the start, the last answer (success or error status) arrived.
    last_answer: Option<Duration>,
    /// Requests that took longer than [`Recorder::slow_above`].
    slow: u64,
    slow_above: Duration,
}

/// Rows counted by a `--stream` comparison: streamed rows line by line, or plain requests
/// of a known number of rows.
struct RowTally {
    /// Rows per successful plain request (0 for streams, which carry their own counts).
    per_request: u64,
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    first_line: Histogram<u64>,
    line_latency: Histogram<u64>,
}

impl RowTally {
    fn new(per_request: u64) -> Self {
        Self { per_request, ok: 0, failed: 0, first_error: None, first_line: histogram(), line_latency: histogram() }
    }
}

/// Errors of one kind: how many, by status, and the first message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorTally {
    /// How many.
    pub count: u64,
    /// How many per HTTP status (outer for problems, inner for inference errors).
    pub by_status: BTreeMap<u16, u64>,
    /// The first message seen (SDK and gateway messages never hold request data).
    pub first_message: String,
}

fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // 3 significant figures), so this cannot fail.
    Histogram::new_with_bounds(1, MAX_TRACKED.as_nanos() as u64, 3).expect("valid histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            latency: histogram(),
            ok_latency: histogram(),
            crypto: histogram(),
            ok: 0,
            resent: 0,
            errors: BTreeMap::new(),
            max_schedule_lag: None,
            rows: None,
            series: TimeSeries::starting_at(0),
            transport_streak: 0,
            last_answer: None,
            slow: 0,
            slow_above: MAX_TRACKED,
        }
    }

    /// Puts this run's time series `first_second` seconds into a longer one (find-max
    /// steps) and counts requests slower than `slow_above` (the overload check).
    pub fn within_search(mut self, first_second: u64, slow_above: Duration) -> Self {
        self.series = TimeSeries::starting_at(first_second);
        self.slow_above = slow_above;
        self
    }

    /// A recorder that also counts rows: `per_request` for each successful plain request,
    /// and each stream's own counts.
    pub fn counting_rows(per_request: u64) -> Self {
        Self { rows: Some(RowTally::new(per_request)), ..Self::new() }
    }

    /// Records one request due (or sent) `due` after the start: its latency and outcome.
    pub fn record(&mut self, due: Duration, latency: Duration, outcome: Outcome) {
        self.latency.saturating_record(nanos(latency));
        let failure = match &outcome {
            Outcome::Failed { kind, .. } => Some(*kind),
            _ => None,
        };
        self.series.record(due, latency, failure);
        if latency > self.slow_above {
            self.slow += 1;
        }
        if failure == Some(ErrorKind::Transport) {
            self.transport_streak += 1;
        } else {
            self.transport_streak = 0;
            self.last_answer = self.last_answer.max(Some(due + latency));
        }
        match outcome {
            Outcome::Ok { crypto, resent } => {
                self.ok += 1;
                self.resent += u64::from(resent);
                self.ok_latency.saturating_record(nanos(latency));
                if let Some(crypto) = crypto {
                    self.crypto.saturating_record(nanos(crypto));
                }
                if let Some(rows) = &mut self.rows {
                    rows.ok += rows.per_request;
                }
            }
            Outcome::Streamed(stats) => {
                self.ok += 1;
                self.ok_latency.saturating_record(nanos(latency));
                let rows = self.rows.get_or_insert_with(|| RowTally::new(0));
                rows.ok += stats.rows_ok;
                rows.failed += stats.rows_failed;
                if rows.first_error.is_none() {
                    rows.first_error = stats.first_error;
                }
                if let Some(first) = stats.first_line {
                    rows.first_line.saturating_record(nanos(first));
                }
                for line in stats.line_latencies {
                    rows.line_latency.saturating_record(nanos(line));
                }
            }
            Outcome::Failed { kind, status, message } => {
                let tally = self.errors.entry(kind).or_default();
                tally.count += 1;
                if let Some(status) = status {
                    *tally.by_status.entry(status).or_default() += 1;
                }
                if tally.first_message.is_empty() {
                    tally.first_message = message;
                }
            }
        }
    }

    /// Notes how late the open-loop scheduler sent a request (the client falling behind).
    pub fn schedule_lag(&mut self, lag: Duration) {
        self.max_schedule_lag = self.max_schedule_lag.max(Some(lag));
    }

    /// Notes the gateway's usage over the second that ended `at` after the start.
    pub fn server_point(&mut self, at: Duration, point: ServerPoint) {
        self.series.server(at, point);
    }

    /// Transport failures in a row, and when the last answer arrived.
    pub fn transport_streak(&self) -> (u64, Option<Duration>) {
        (self.transport_streak, self.last_answer)
    }

    /// Requests slower than the bound given to [`Recorder::within_search`].
    pub fn slow(&self) -> u64 {
        self.slow
    }

    /// Latency quantile `q` of every request so far.
    pub fn latency_at(&self, q: f64) -> Option<Duration> {
        (!self.latency.is_empty()).then(|| Duration::from_nanos(self.latency.value_at_quantile(q)))
    }

    /// The first message of failures of `kind`, if any occurred.
    pub fn first_message(&self, kind: ErrorKind) -> Option<String> {
        self.errors.get(&kind).map(|t| t.first_message.clone())
    }

    /// Successful requests so far.
    pub fn ok(&self) -> u64 {
        self.ok
    }

    /// Failed requests so far.
    pub fn failed(&self) -> u64 {
        self.errors.values().map(|t| t.count).sum()
    }

    /// The result of a finished run that took `elapsed`.
    pub fn finish(&self, mode: Mode, elapsed: Duration) -> RunResult {
        let secs = elapsed.as_secs_f64();
        RunResult {
            mode: mode.name(),
            ok: self.ok,
            failed: self.failed(),
            resent: self.resent,
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.name(), self.errors.get(k).cloned().unwrap_or_default()))
                .collect(),
            elapsed_s: secs,
            throughput_rps: if secs > 0.0 { self.ok as f64 / secs } else { 0.0 },
            latency_us: Percentiles::of(&self.latency),
            ok_latency_us: (!self.ok_latency.is_empty()).then(|| Percentiles::of(&self.ok_latency)),
            client_crypto_us: (mode == Mode::Encrypted && !self.crypto.is_empty())
                .then(|| Percentiles::of(&self.crypto)),
            max_schedule_lag_us: self.max_schedule_lag.map(|d| d.as_secs_f64() * 1e6),
            rows: self.rows.as_ref().map(|rows| Rows {
                ok: rows.ok,
                failed: rows.failed,
                rows_per_s: if secs > 0.0 { rows.ok as f64 / secs } else { 0.0 },
                first_error: rows.first_error.clone(),
                first_line_us: (!rows.first_line.is_empty()).then(|| Percentiles::of(&rows.first_line)),
                line_latency_us: (!rows.line_latency.is_empty()).then(|| Percentiles::of(&rows.line_latency)),
            }),
            server: None,
            latency_distribution_us: distribution(&self.latency),
            timeseries: self.series.seconds(),
            halted: None,
        }
    }
}

/// One point of the HdrHistogram percentile plot.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DistributionPoint {
    /// The percentile, 0 to 100.
    pub percentile: f64,
    /// The latency at that percentile, µs.
    pub latency_us: f64,
}

/// The percentile plot's points: ten per decade of `1 / (1 - q)` from the minimum to
/// 99.999 %, then the maximum, as HdrHistogram's own plotter spaces them.
fn distribution(h: &Histogram<u64>) -> Vec<DistributionPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<DistributionPoint> = (0..=50)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / 10.0);
            DistributionPoint { percentile: q * 100.0, latency_us: h.value_at_quantile(q) as f64 / 1e3 }
        })
        .collect();
    points.push(DistributionPoint { percentile: 100.0, latency_us: h.max() as f64 / 1e3 });
    points
}

/// Rows of a `--stream` run (streamed) or of its plaintext comparison (batches).
#[derive(Debug, Clone, Serialize)]
pub struct Rows {
    /// Rows answered with an inference response.
    pub ok: u64,
    /// Rows answered with an error line (streams only).
    pub failed: u64,
    /// Successful rows per second of the measured run.
    pub rows_per_s: f64,
    /// The first error line's message.
    pub first_error: Option<String>,
    /// Per stream: from its start to its first answer line (streams only).
    pub first_line_us: Option<Percentiles>,
    /// Per line: from when it was sent to when its answer arrived (streams only).
    pub line_latency_us: Option<Percentiles>,
}

/// Summary of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Number of values.
    pub count: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1e3;
        Self {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1e3,
            count: h.len(),
        }
    }
}

/// One run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// `encrypted` or `plaintext`.
    pub mode: &'static str,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub failed: u64,
    /// Times a successful request had been sent again after an attempt got no answer
    /// (`--retries`; a failed request's attempts are not counted).
    pub resent: u64,
    /// Failures by kind (every kind present, zero or not).
    pub errors: BTreeMap<&'static str, ErrorTally>,
    /// Wall time of the measured run, seconds.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Whole-request latency (open loop: from the scheduled send time), every outcome.
    pub latency_us: Percentiles,
    /// The same for the successful requests alone: under overload, the latency of the
    /// requests the gateway admitted, apart from its fast 503s and 429s.
    pub ok_latency_us: Option<Percentiles>,
    /// Client-side HPKE time per successful request (encrypted runs only).
    pub client_crypto_us: Option<Percentiles>,
    /// Open loop: how late the scheduler sent its latest request.
    pub max_schedule_lag_us: Option<f64>,
    /// Rows (`--stream`): streamed rows and their line latencies, or the plaintext batches'
    /// rows.
    pub rows: Option<Rows>,
    /// The gateway's CPU and memory over the run (`--server-pid`).
    pub server: Option<ServerUsage>,
    /// The HdrHistogram percentile plot of `latency_us`.
    pub latency_distribution_us: Vec<DistributionPoint>,
    /// The run second by second.
    pub timeseries: Vec<Second>,
    /// Why the run stopped before its end, if it did (the report is then partial).
    pub halted: Option<String>,
}

/// Encrypted compared with plaintext.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratio {
    /// Encrypted throughput / plaintext throughput.
    pub throughput: f64,
    /// Encrypted median latency / plaintext median latency.
    pub p50_latency: f64,
    /// Encrypted p99 latency / plaintext p99 latency.
    pub p99_latency: f64,
    /// Encrypted minus plaintext median latency, microseconds.
    pub p50_added_us: f64,
    /// Streamed encrypted rows per second / plaintext batch rows per second (`--stream`).
    pub rows_per_s: Option<f64>,
}

impl Ratio {
    /// `encrypted` relative to `plaintext`.
    pub fn of(encrypted: &RunResult, plaintext: &RunResult) -> Self {
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        Self {
            throughput: div(encrypted.throughput_rps, plaintext.throughput_rps),
            p50_latency: div(encrypted.latency_us.p50, plaintext.latency_us.p50),
            p99_latency: div(encrypted.latency_us.p99, plaintext.latency_us.p99),
            p50_added_us: encrypted.latency_us.p50 - plaintext.latency_us.p50,
            rows_per_s: match (&encrypted.rows, &plaintext.rows) {
                (Some(e), Some(p)) => Some(div(e.rows_per_s, p.rows_per_s)),
                _ => None,
            },
        }
    }
}

/// The whole report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `sealgate-load`.
    pub tool: &'static str,
    /// Its version.
    pub version: &'static str,
    /// What was run.
    pub config: serde_json::Value,
    /// The encrypted run, then the plaintext one if asked for.
    pub runs: Vec<RunResult>,
    /// Encrypted relative to plaintext, with `--compare-plaintext`.
    pub ratio: Option<Ratio>,
    /// The `--find-max` searches, encrypted then plaintext.
    pub find_max: Vec<crate::find_max::Search>,
    /// Encrypted highest rate / plaintext highest rate (`--find-max --compare-plaintext`).
    pub find_max_ratio: Option<f64>,
    /// Why the tool stopped early, when it did: the report holds what was measured so far.
    pub error: Option<String>,
}

/// A duration in microseconds, printed with a unit that keeps three or four digits.
pub fn human_us(us: f64) -> String {
    if !us.is_finite() {
        "-".into()
    } else if us < 1e3 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn percentiles_line(label: &str, p: &Percentiles) -> String {
    format!(
        "  {label:<13} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        human_us(p.p50),
        human_us(p.p90),
        human_us(p.p99),
        human_us(p.p99_9),
        human_us(p.max)
    )
}

/// The human-readable text of one run.
pub fn run_text(run: &RunResult) -> String {
    let mut out = String::new();
    let streamed = run.rows.as_ref().is_some_and(|rows| rows.line_latency_us.is_some());
    let title = match run.mode {
        "encrypted" if streamed => "encrypted stream (chunked Oblivious HTTP, NDJSON lines inside)",
        "encrypted" => "encrypted (Oblivious HTTP, fresh HPKE encapsulation per request)",
        _ if run.rows.is_some() => "plaintext rows (benchmark path, no Oblivious HTTP)",
        _ => "plaintext (benchmark path, no Oblivious HTTP)",
    };
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "  {:<13} {} ok, {} failed in {:.2} s: {:.1} req/s",
        "requests", run.ok, run.failed, run.elapsed_s, run.throughput_rps
    );
    if run.resent > 0 {
        let _ = writeln!(out, "  {:<13} {} (sent again, sealed afresh, after no answer)", "resent", run.resent);
    }
    // In the order of `ErrorKind::ALL` (the map itself is sorted by name, for the JSON).
    let tallies: Vec<(&str, &ErrorTally)> =
        ErrorKind::ALL.iter().filter_map(|k| run.errors.get(k.name()).map(|t| (k.name(), t))).collect();
    let counts: Vec<String> = tallies.iter().map(|(kind, t)| format!("{kind} {}", t.count)).collect();
    let _ = writeln!(out, "  {:<13} {}", "errors", counts.join(", "));
    for (kind, tally) in tallies.into_iter().filter(|(_, t)| t.count > 0) {
        let statuses: Vec<String> = tally.by_status.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let statuses = if statuses.is_empty() { String::new() } else { format!(" [{}]", statuses.join(" ")) };
        let _ = writeln!(out, "    {kind}{statuses}: first: {}", tally.first_message);
    }
    let _ = writeln!(out, "{}", percentiles_line("latency", &run.latency_us));
    if let Some(ok) = run.ok_latency_us.as_ref().filter(|_| run.failed > 0) {
        let _ = writeln!(out, "{}", percentiles_line("answered", ok));
    }
    if let Some(rows) = &run.rows {
        let _ = writeln!(out, "  {:<13} {} ok, {} failed: {:.1} rows/s", "rows", rows.ok, rows.failed, rows.rows_per_s);
        if let Some(error) = &rows.first_error {
            let _ = writeln!(out, "    error lines: first: {error}");
        }
        if let Some(first) = &rows.first_line_us {
            let _ = writeln!(out, "{}", percentiles_line("first line", first));
        }
        if let Some(line) = &rows.line_latency_us {
            let _ = writeln!(out, "{}", percentiles_line("per line", line));
        }
    }
    if let Some(crypto) = &run.client_crypto_us {
        let _ = writeln!(out, "{}", percentiles_line("client HPKE", crypto));
    }
    if let Some(server) = &run.server {
        let _ = writeln!(
            out,
            "  {:<13} CPU {} per request ({:.2} s in all), RSS {:.1} → {:.1} MiB",
            "server",
            human_us(server.cpu_us_per_request),
            server.cpu_s,
            server.rss_start_kib as f64 / 1024.0,
            server.rss_end_kib as f64 / 1024.0
        );
    }
    if let Some(lag) = run.max_schedule_lag_us {
        let _ = writeln!(out, "  {:<13} the scheduler sent at most {} late", "schedule", human_us(lag));
    }
    out
}

/// The human-readable comparison.
pub fn ratio_text(ratio: &Ratio) -> String {
    let rows = ratio.rows_per_s.map_or(String::new(), |r| format!("  rows/s        {r:.3}× (streamed vs plaintext)\n"));
    rows + &format!(
        "encrypted vs plaintext\n  throughput    {:.3}×\n  p50 latency   {:.3}× ({}{})\n  p99 latency   {:.3}×\n",
        ratio.throughput,
        ratio.p50_latency,
        if ratio.p50_added_us >= 0.0 { "+" } else { "-" },
        human_us(ratio.p50_added_us.abs()),
        ratio.p99_latency
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_errors_are_recorded() {
        let mut r = Recorder::new();
        for ms in 1..=100 {
            r.record(
                Duration::ZERO,
                Duration::from_millis(ms),
                Outcome::Ok { crypto: Some(Duration::from_micros(50)), resent: 0 },
            );
        }
        r.record(
            Duration::ZERO,
            Duration::from_millis(5),
            Outcome::Failed { kind: ErrorKind::Inference, status: Some(404), message: "first".into() },
        );
        r.record(
            Duration::ZERO,
            Duration::from_millis(5),
            Outcome::Failed { kind: ErrorKind::Inference, status: Some(404), message: "second".into() },
        );
        let run = r.finish(Mode::Encrypted, Duration::from_secs(2));
        assert_eq!((run.ok, run.failed), (100, 2));
        assert!((run.throughput_rps - 50.0).abs() < 1e-9);
        assert!((run.latency_us.p50 - 49_000.0).abs() < 1_000.0, "{}", run.latency_us.p50);
        assert!((run.latency_us.max - 100_000.0).abs() < 100.0, "{}", run.latency_us.max);
        let crypto = run.client_crypto_us.unwrap();
        assert!((crypto.p50 - 50.0).abs() < 0.1);
        let inference = &run.errors["inference"];
        assert_eq!((inference.count, inference.by_status[&404]), (2, 2));
        assert_eq!(inference.first_message, "first");
        assert_eq!(run.errors["transport"].count, 0);
        let text = run_text(&run);
        assert!(text.contains("100 ok, 2 failed"), "{text}");
        assert!(text.contains("inference [404×2]: first: first"), "{text}");
        assert!(text.contains("client HPKE"), "{text}");
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["errors"]["inference"]["count"], 2);
    }

    #[test]
    fn streamed_rows_and_line_latencies_are_reported() {
        let mut r = Recorder::new();
        let stats = |first_ms, failed| crate::target::StreamStats {
            rows_ok: 10 - failed,
            rows_failed: failed,
            first_line: Some(Duration::from_millis(first_ms)),
            line_latencies: (1..=10).map(Duration::from_millis).collect(),
            first_error: (failed > 0).then(|| "line 3 failed (400): bad".to_owned()),
        };
        r.record(Duration::ZERO, Duration::from_millis(50), Outcome::Streamed(stats(2, 0)));
        r.record(Duration::ZERO, Duration::from_millis(50), Outcome::Streamed(stats(4, 1)));
        let run = r.finish(Mode::Encrypted, Duration::from_secs(1));
        let rows = run.rows.as_ref().unwrap();
        assert_eq!((run.ok, rows.ok, rows.failed), (2, 19, 1));
        assert!((rows.rows_per_s - 19.0).abs() < 1e-9);
        assert_eq!(rows.line_latency_us.unwrap().count, 20);
        assert!((rows.first_line_us.unwrap().max - 4000.0).abs() < 10.0);
        let text = run_text(&run);
        for needle in ["encrypted stream", "19 ok, 1 failed: 19.0 rows/s", "first line", "per line", "line 3 failed"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }

        let mut plain = Recorder::counting_rows(100);
        plain.record(Duration::ZERO, Duration::from_millis(5), Outcome::Ok { crypto: None, resent: 0 });
        let plain = plain.finish(Mode::Plaintext, Duration::from_secs(2));
        assert_eq!(plain.rows.as_ref().unwrap().ok, 100);
        assert!(run_text(&plain).contains("plaintext rows"));
        let ratio = Ratio::of(&run, &plain);
        assert!((ratio.rows_per_s.unwrap() - 19.0 / 50.0).abs() < 1e-9);
        assert!(ratio_text(&ratio).contains("rows/s        0.380×"));
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut r = Recorder::new();
        r.record(Duration::ZERO, Duration::from_secs(10_000), Outcome::Ok { crypto: None, resent: 0 });
        let run = r.finish(Mode::Plaintext, Duration::from_secs(1));
        assert!(run.latency_us.max >= 3.5e9);
        assert!(run.client_crypto_us.is_none());
    }

    #[test]
    fn units_follow_magnitude() {
        assert_eq!(human_us(61.23), "61.2 µs");
        assert_eq!(human_us(1234.0), "1.23 ms");
        assert_eq!(human_us(2_500_000.0), "2.50 s");
    }
}

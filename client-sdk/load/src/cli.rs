//! The command line of `sealgate-load`: every option with the help text `--help` prints,
//! and the small duration syntax (`30s`, `500ms`, `5m`) its time options take.
//!
//! Conflicting options (`--rate` with `--concurrency`, `--duration` with `--requests`,
//! `--http1` with `--http2`) are refused by clap itself, so the rest of the tool only ever
//! sees one consistent configuration: [`Cli::load`], [`Cli::stop`], [`Cli::http_version`].
//! The open-loop shapes (`--rate`, `--stages`, `--steps`, `--find-max`) are one group, so
//! at most one is given. Profile and SLO strings are parsed by the tool, not by clap, so a
//! malformed one is a one-line error with exit status 1 like every other bad input.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use sealgate_client::HttpVersion;

use crate::find_max::{SearchOptions, Slo};
use crate::profile::Profile;

/// Load generator for a Sealgate gateway: end-to-end encrypted (Oblivious HTTP) inference
/// requests over TLS 1.3, one fresh HPKE encapsulation per request.
#[derive(Debug, Parser)]
#[command(
    name = "sealgate-load",
    version,
    group(ArgGroup::new("open_loop").args(["rate", "stages", "steps", "find_max"])),
    after_help = "\
Closed loop (--concurrency N, the default with N = 1) keeps N requests in flight: it finds the \
gateway's maximum throughput. Open loop (--rate R) sends R requests per second on a fixed \
schedule whatever the answers; latency counts from each request's scheduled send time, so a \
stalled gateway shows as latency instead of as fewer requests (no coordinated omission).

The report gives throughput, errors by kind (transport, problem = outer 4xx/5xx before \
decryption, inference = the model's error inside the encryption, decryption/protocol, invalid \
response) and HdrHistogram percentiles of the whole request and of the client's own HPKE work.

Exit status: 0 when the run completed (errors are in the report), 1 when the run could not \
start (unreachable gateway, bad CA, unknown model, bad input) or no request succeeded, 2 for \
invalid options.

Profiles: --stages \"30s:100,1m:500,30s:0\" ramps the open-loop rate linearly from 0 to each stage's target over its duration (k6 style); --steps 100:100:1000 --step-duration 20s holds 100, 200, ... 1000 req/s for 20 s each.

Capacity: --find-max --slo p99=10ms,errors=0.1% doubles the open-loop rate from --start-rate, then bisects, each step --step-duration long, and reports the highest rate that meets the SLO (with --compare-plaintext for both paths, and their ratio). An overloaded step ends early; a gateway that goes away stops the search. --html writes a self-contained report with charts.

Examples:
  sealgate-load --model credit-risk --concurrency 8 --duration 30s --json report.json
  sealgate-load --model credit-risk --find-max --slo p99=10ms,errors=0.1% --compare-plaintext \
      --html report.html"
)]
pub struct Cli {
    /// Base URL of the gateway.
    #[arg(long, env = "SEALGATE_URL", default_value = "https://127.0.0.1:8443")]
    pub url: String,

    /// CA certificate (PEM) that signed the gateway's TLS certificate.
    #[arg(long, value_name = "PEM", default_value = ".sealgate/tls/ca.pem")]
    pub ca: PathBuf,

    /// Bearer token sent inside every request (never printed). Prefer --token-file: a
    /// token on the command line is visible to other users in the process list.
    #[arg(long, env = "SEALGATE_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,

    /// File holding the bearer token. Default: .sealgate/dev.token (which `sealgate serve`
    /// writes on first start) when it exists and --token is not given.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// The model to call (its newest version).
    #[arg(long)]
    pub model: String,

    /// The request body: a KServe V2 inference request (JSON), checked against the model's
    /// metadata. Default: random finite inputs generated from the metadata.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Rows per generated request (the first dimension of each input).
    #[arg(long, default_value_t = 1, conflicts_with = "input", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch: u64,

    /// Streaming: every request is one chunked OHTTP stream of N NDJSON lines (the input
    /// body, or the generated ones in turn, one per line), scored line by line; the report
    /// adds rows per second, the time to the first answer line and the latency of each line
    /// from when it was sent to when its answer arrived. With --compare-plaintext the
    /// plaintext run sends the same N lines' rows as one batch request per request.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub stream: Option<u64>,

    /// With --stream and --compare-plaintext: how the plaintext run sends the same rows,
    /// as one KServe batch request per stream (`batch`: one inference over all rows) or as
    /// one NDJSON request of the same N lines (`ndjson`: scored line by line like the
    /// stream, so the ratio is what the encryption costs).
    #[arg(long, value_name = "HOW", default_value = "batch", requires = "stream", value_parser = ["batch", "ndjson"])]
    pub plaintext_as: String,

    /// Closed loop: N requests in flight, each sent as soon as the previous answer arrives
    /// [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "open_loop", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub concurrency: Option<u32>,

    /// Open loop: R requests per second on a fixed schedule, latency measured from each
    /// request's scheduled send time.
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Open loop: the most requests in flight at once; later ones wait for a slot, and the
    /// wait counts as latency.
    #[arg(long, value_name = "N", default_value_t = 1024, requires = "open_loop", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight: u32,

    /// Open loop with a rate that changes: comma-separated DURATION:RATE stages, each
    /// ramping linearly from the previous target (0 at the start) to its own, such as
    /// "30s:100,1m:500,30s:0". The run lasts as long as the stages.
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<String>,

    /// Open loop in steps: START:STEP:MAX requests per second, each rate held for
    /// --step-duration, such as 100:100:1000.
    #[arg(long, value_name = "START:STEP:MAX")]
    pub steps: Option<String>,

    /// How long each --steps rate, and each --find-max step, is held.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub step_duration: Duration,

    /// Search the highest open-loop rate that meets --slo (doubling, then bisecting).
    #[arg(long, requires = "slo")]
    pub find_max: bool,

    /// The objective for --find-max: a latency percentile (p50, p90, p99, p99.9) and
    /// optionally the share of requests that may fail, such as p99=10ms,errors=0.1%
    /// (errors default to 0.1%).
    #[arg(long, value_name = "SLO", requires = "find_max")]
    pub slo: Option<String>,

    /// The first rate --find-max tries, requests per second.
    #[arg(long, value_name = "R", default_value = "50", value_parser = parse_rate, requires = "find_max")]
    pub start_rate: f64,

    /// The highest rate --find-max offers, requests per second.
    #[arg(long, value_name = "R", default_value = "100000", value_parser = parse_rate, requires = "find_max")]
    pub max_rate: f64,

    /// How long to measure, such as 30s, 500ms, 5m.
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = parse_duration, conflicts_with_all = ["requests", "stages", "steps", "find_max"])]
    pub duration: Duration,

    /// Measure this many requests instead of a duration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with_all = ["stages", "steps", "find_max"])]
    pub requests: Option<u64>,

    /// Load applied before measuring (opens connections, warms caches); not reported.
    #[arg(long, value_name = "TIME", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Speak HTTP/1.1 only (kept-alive, pooled connections). Default: negotiate with ALPN.
    #[arg(long, conflicts_with = "http2")]
    pub http1: bool,

    /// Speak HTTP/2 only (requests multiplexed on one connection).
    #[arg(long)]
    pub http2: bool,

    /// Time allowed for one request.
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Send a request that got no answer (connecting failed, the connection broke before
    /// the answer, or a relay answered 502 or 504) again, sealed afresh, up to N times, as
    /// the SDK does for applications. Default 0: a load test counts every failure. Resent
    /// requests are counted in the report (`resent`).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// Do every request's whole HPKE encapsulation when it is sent, instead of preparing
    /// the next one while a request travels (the SDK's default; `client HPKE` then counts
    /// only what is left on the critical path: the AEAD and the answer's decryption).
    #[arg(long)]
    pub no_precompute: bool,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write a self-contained HTML report to FILE: latency percentiles, throughput
    /// and errors over time, the latency distribution, encrypted beside plaintext, the
    /// gateway's CPU and memory (--server-pid) and the configuration. Written even when the
    /// run stops early, with what was measured.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// After the encrypted run, run the same load against the gateway's plaintext benchmark
    /// path (`sealgate serve --danger-plaintext-bench`, loopback only) and print both
    /// results and their ratio: what end-to-end encryption costs.
    #[arg(long)]
    pub compare_plaintext: bool,

    /// The gateway's process id, when it runs on this machine (Linux): report its CPU time
    /// per request and its memory, read from /proc before and after each measured run.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// No live progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How requests are offered.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// `concurrency` requests always in flight.
    Closed {
        /// Requests in flight.
        concurrency: u32,
    },
    /// `rate` requests per second on a fixed schedule.
    Open {
        /// Requests per second.
        rate: f64,
        /// The cap on requests in flight.
        max_in_flight: u32,
    },
    /// A rate that changes over time (`--stages`, `--steps`).
    Profiled {
        /// The rate over time.
        profile: Arc<Profile>,
        /// The cap on requests in flight.
        max_in_flight: u32,
    },
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long (requests in flight then still complete and count).
    After(Duration),
    /// After this many requests.
    Requests(u64),
}

impl Cli {
    /// The load model the options describe; a malformed `--stages` or `--steps` is a
    /// one-line error. (With `--find-max` this is the warm-up's load: its first rate.)
    pub fn load(&self) -> Result<Load, String> {
        let max_in_flight = self.max_in_flight;
        if let Some(stages) = &self.stages {
            return Ok(Load::Profiled { profile: Arc::new(Profile::stages(stages)?), max_in_flight });
        }
        if let Some(steps) = &self.steps {
            return Ok(Load::Profiled { profile: Arc::new(Profile::steps(steps, self.step_duration)?), max_in_flight });
        }
        if self.find_max {
            return Ok(Load::Open { rate: self.start_rate.min(self.max_rate), max_in_flight });
        }
        Ok(match self.rate {
            Some(rate) => Load::Open { rate, max_in_flight },
            None => Load::Closed { concurrency: self.concurrency.unwrap_or(1) },
        })
    }

    /// When the measured run ends: a profile lasts as long as it says.
    pub fn stop(&self, load: &Load) -> Stop {
        match (self.requests, load) {
            (_, Load::Profiled { profile, .. }) => Stop::After(profile.duration()),
            (Some(n), _) => Stop::Requests(n),
            (None, _) => Stop::After(self.duration),
        }
    }

    /// The `--find-max` objective and search settings, when asked for.
    pub fn find_max(&self) -> Result<Option<(Slo, SearchOptions)>, String> {
        let Some(slo) = self.slo.as_deref().filter(|_| self.find_max) else { return Ok(None) };
        let slo = Slo::parse(slo)?;
        if self.max_rate < self.start_rate {
            return Err(format!("--max-rate {} is below --start-rate {}", self.max_rate, self.start_rate));
        }
        if self.step_duration < Duration::from_millis(200) {
            return Err("--step-duration must be at least 200ms for --find-max".into());
        }
        let options = SearchOptions {
            start_rate: self.start_rate,
            max_rate: self.max_rate,
            step: self.step_duration,
            max_in_flight: self.max_in_flight,
            timeout: self.timeout,
            progress: !self.quiet,
            server_pid: self.server_pid,
        };
        Ok(Some((slo, options)))
    }

    /// The HTTP version to speak.
    pub fn http_version(&self) -> HttpVersion {
        match (self.http1, self.http2) {
            (true, _) => HttpVersion::Http1,
            (_, true) => HttpVersion::Http2,
            _ => HttpVersion::Negotiate,
        }
    }
}

/// Parses `30s`, `1.5s`, `500ms`, `250us`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("'{text}' is not a duration such as 30s, 500ms or 5m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit '{other}' in '{text}'; use us, ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' is out of range"))
}

/// Parses a positive, finite request rate.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1e6 => Ok(rate),
        _ => Err(format!("'{text}' is not a rate between 0 and 1000000 requests per second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "-1s", "1x", "1e400", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("250"), Ok(250.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "x", "2000000"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_resolve_to_one_configuration() {
        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m"]).unwrap();
        assert_eq!(cli.load(), Ok(Load::Closed { concurrency: 1 }));
        assert_eq!(cli.stop(&cli.load().unwrap()), Stop::After(Duration::from_secs(30)));
        assert_eq!(cli.http_version(), HttpVersion::Negotiate);

        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m", "--rate", "100", "--requests", "5", "--http1"])
            .unwrap();
        assert_eq!(cli.load(), Ok(Load::Open { rate: 100.0, max_in_flight: 1024 }));
        assert_eq!(cli.stop(&cli.load().unwrap()), Stop::Requests(5));
        assert_eq!(cli.http_version(), HttpVersion::Http1);
        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m", "--stream", "1000"]).unwrap();
        assert_eq!(cli.stream, Some(1000));

        for conflict in [
            &["--rate", "1", "--concurrency", "2"][..],
            &["--duration", "1s", "--requests", "2"],
            &["--http1", "--http2"],
            &["--input", "x.json", "--batch", "2"],
            &["--max-in-flight", "2"],
            &["--concurrency", "0"],
            &["--stream", "0"],
            &["--plaintext-as", "ndjson"],
            &["--stream", "5", "--plaintext-as", "lines"],
            &["--stages", "1s:1", "--rate", "5"],
            &["--stages", "1s:1", "--steps", "1:1:2"],
            &["--stages", "1s:1", "--concurrency", "2"],
            &["--stages", "1s:1", "--duration", "5s"],
            &["--steps", "1:1:2", "--requests", "5"],
            &["--find-max"],
            &["--slo", "p99=1ms"],
            &["--find-max", "--slo", "p99=1ms", "--rate", "5"],
            &["--start-rate", "5"],
        ] {
            let args = ["sealgate-load", "--model", "m"].iter().chain(conflict);
            assert!(Cli::try_parse_from(args).is_err(), "{conflict:?}");
        }
    }

    #[test]
    fn profiles_and_searches_resolve() {
        let cli =
            Cli::try_parse_from(["sealgate-load", "--model", "m", "--stages", "1s:10,2s:10", "--max-in-flight", "7"])
                .unwrap();
        let load = cli.load().unwrap();
        assert!(matches!(&load, Load::Profiled { profile, max_in_flight: 7 } if profile.total_requests() == 25));
        assert_eq!(cli.stop(&load), Stop::After(Duration::from_secs(3)));
        let cli =
            Cli::try_parse_from(["sealgate-load", "--model", "m", "--steps", "10:10:30", "--step-duration", "2s"])
                .unwrap();
        assert_eq!(cli.stop(&cli.load().unwrap()), Stop::After(Duration::from_secs(6)));
        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m", "--stages", "30s"]).unwrap();
        assert!(cli.load().unwrap_err().contains("'30s' is not DURATION:RATE"));

        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m", "--find-max", "--slo", "p99=5ms"]).unwrap();
        let (slo, options) = cli.find_max().unwrap().unwrap();
        assert_eq!(slo.latency, Duration::from_millis(5));
        assert_eq!((options.start_rate, options.step), (50.0, Duration::from_secs(10)));
        assert_eq!(cli.load(), Ok(Load::Open { rate: 50.0, max_in_flight: 1024 }));
        let cli = Cli::try_parse_from([
            "sealgate-load",
            "--model",
            "m",
            "--find-max",
            "--slo",
            "p99=5ms",
            "--start-rate",
            "100",
            "--max-rate",
            "10",
        ])
        .unwrap();
        assert!(cli.find_max().unwrap_err().contains("below --start-rate"));
        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m", "--find-max", "--slo", "p42=5ms"]).unwrap();
        assert!(cli.find_max().is_err());
    }

    #[test]
    fn help_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}

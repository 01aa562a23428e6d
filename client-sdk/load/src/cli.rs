//! The command line of `sealgate-load`: every option with the help text `--help` prints,
//! and the small duration syntax (`30s`, `500ms`, `5m`) its time options take.
//!
//! Conflicting options (`--rate` with `--concurrency`, `--duration` with `--requests`,
//! `--http1` with `--http2`) are refused by clap itself, so the rest of the tool only ever
//! sees one consistent configuration: [`Cli::load`], [`Cli::stop`], [`Cli::http_version`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sealgate_client::HttpVersion;

/// Load generator for a Sealgate gateway: end-to-end encrypted (Oblivious HTTP) inference
/// requests over TLS 1.3, one fresh HPKE encapsulation per request.
#[derive(Debug, Parser)]
#[command(
    name = "sealgate-load",
    version,
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

Example:
  sealgate-load --model credit-risk --concurrency 8 --duration 30s --json report.json"
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
    #[arg(long, value_name = "N", conflicts_with = "rate", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub concurrency: Option<u32>,

    /// Open loop: R requests per second on a fixed schedule, latency measured from each
    /// request's scheduled send time.
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Open loop: the most requests in flight at once; later ones wait for a slot, and the
    /// wait counts as latency.
    #[arg(long, value_name = "N", default_value_t = 1024, requires = "rate", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_in_flight: u32,

    /// How long to measure, such as 30s, 500ms, 5m.
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Duration,

    /// Measure this many requests instead of a duration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
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
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// The load model the options describe.
    pub fn load(&self) -> Load {
        match self.rate {
            Some(rate) => Load::Open { rate, max_in_flight: self.max_in_flight },
            None => Load::Closed { concurrency: self.concurrency.unwrap_or(1) },
        }
    }

    /// When the measured run ends.
    pub fn stop(&self) -> Stop {
        match self.requests {
            Some(n) => Stop::Requests(n),
            None => Stop::After(self.duration),
        }
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
fn parse_rate(text: &str) -> Result<f64, String> {
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
        assert_eq!(cli.load(), Load::Closed { concurrency: 1 });
        assert_eq!(cli.stop(), Stop::After(Duration::from_secs(30)));
        assert_eq!(cli.http_version(), HttpVersion::Negotiate);

        let cli = Cli::try_parse_from(["sealgate-load", "--model", "m", "--rate", "100", "--requests", "5", "--http1"])
            .unwrap();
        assert_eq!(cli.load(), Load::Open { rate: 100.0, max_in_flight: 1024 });
        assert_eq!(cli.stop(), Stop::Requests(5));
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
        ] {
            let args = ["sealgate-load", "--model", "m"].iter().chain(conflict);
            assert!(Cli::try_parse_from(args).is_err(), "{conflict:?}");
        }
    }

    #[test]
    fn help_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}

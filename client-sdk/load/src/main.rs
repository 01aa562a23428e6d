//! `sealgate-load`: a load generator for the encrypted inference endpoint.
//!
//! Operators load-test the gateway before they trust it with production traffic, and they
//! need to see the cost of end-to-end encryption itself. So every request goes through the
//! SDK exactly as an application's would (a fresh HPKE encapsulation per request, TLS 1.3,
//! pooled connections) while the tool records whole-request latency and, separately, the
//! client's own HPKE time; `--compare-plaintext` runs the same load against the gateway's
//! benchmark-only plaintext path and prints the ratio. `--stream N` makes every request one
//! chunked OHTTP stream of N NDJSON lines (`Client::infer_stream`) and reports rows per
//! second, the time to the first line and each line's latency, against plaintext batches of
//! the same rows.
//!
//! Before any load, a preflight turns every configuration mistake into one clear line and
//! exit status 1: unreachable gateway, unreadable or wrong CA, unknown model, input file
//! that is missing, not JSON or not what the model takes, and a missing plaintext path.
//!
//! Modules: [`cli`] (options), [`inputs`] (request bodies), [`target`] (encrypted and
//! plaintext endpoints, outcome classification), [`schedule`] (closed and open loop,
//! progress), [`server_usage`] (the gateway's CPU and memory from /proc), [`report`]
//! (histograms, text and JSON).

mod cli;
mod inputs;
mod report;
mod schedule;
mod server_usage;
mod target;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use sealgate_client::inference::ModelMetadata;
use sealgate_client::{Client, Error, ExchangeError};

use crate::cli::{Cli, Load, Stop};
use crate::report::{Ratio, Report, RunResult};
use crate::target::{Mode, Outcome, Settings, Target};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain; no backtrace: these are configuration errors.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let ca_pem = std::fs::read(&cli.ca).with_context(|| format!("--ca {}", cli.ca.display()))?;
    let dev_token = std::path::Path::new(".sealgate/dev.token");
    let token = match (&cli.token_file, &cli.token) {
        (Some(path), _) => Some(sealgate_client::read_token_file(path)?),
        (None, Some(token)) => Some(zeroize::Zeroizing::new(token.clone())),
        (None, None) if dev_token.is_file() => Some(sealgate_client::read_token_file(dev_token)?),
        (None, None) => None,
    };
    let settings = Settings {
        url: &cli.url,
        ca_pem: &ca_pem,
        token: token.as_deref().map(String::as_str),
        http_version: cli.http_version(),
        timeout: cli.timeout,
        retries: cli.retries,
        precompute: !cli.no_precompute,
    };
    let client = target::sdk_client(&settings).map_err(|e| match e {
        e @ Error::InvalidCaCertificate { .. } => {
            anyhow::anyhow!("--ca {}: {}", cli.ca.display(), sealgate_client::Report(&e))
        }
        e @ Error::InvalidUrl { .. } => anyhow::anyhow!("--url: {}", sealgate_client::Report(&e)),
        other => other.into(),
    })?;

    if let Some(pid) = cli.server_pid {
        server_usage::Sample::read(pid)?;
    }
    let metadata = preflight_metadata(&client, &cli).await?;
    let bodies = match &cli.input {
        Some(path) => vec![inputs::from_file(path, &metadata)?],
        None => inputs::generate(&metadata, cli.batch)?,
    };

    let mut targets = match cli.stream {
        Some(lines) => vec![Arc::new(Target::stream(client, &cli.model, &bodies, lines)?)],
        None => vec![Arc::new(Target::encrypted(client, &cli.model, &bodies))],
    };
    if cli.compare_plaintext {
        let plaintext = match cli.stream {
            // The same rows as the streams, as one batch request per stream.
            Some(lines) if cli.plaintext_as == "ndjson" => {
                let (body, rows) = target::ndjson_body(&bodies, lines)?;
                Target::plaintext(&settings, &cli.model, vec![body])?.sending_ndjson(lines).counting_rows(rows)
            }
            Some(lines) => {
                let (batch, rows) = target::batch_body(&bodies, lines)?;
                Target::plaintext(&settings, &cli.model, vec![batch])?.counting_rows(rows)
            }
            None => Target::plaintext(&settings, &cli.model, bodies)?,
        };
        targets.push(Arc::new(plaintext));
    }
    for target in &targets {
        preflight_request(target, &cli).await?;
    }

    print_header(&cli);
    let mut runs = Vec::new();
    for target in &targets {
        let mode = target.mode().name();
        if !cli.warmup.is_zero() {
            schedule::run(target.clone(), cli.load(), Stop::After(cli.warmup), &format!("{mode} warm-up"), !cli.quiet)
                .await;
        }
        let before = cli.server_pid.map(server_usage::Sample::read).transpose()?;
        let mut run = schedule::run(target.clone(), cli.load(), cli.stop(), mode, !cli.quiet).await;
        if let (Some(pid), Some(before)) = (cli.server_pid, before) {
            let after = server_usage::Sample::read(pid)?;
            run.server = Some(server_usage::ServerUsage::between(before, after, run.ok + run.failed));
        }
        print!("{}", report::run_text(&run));
        runs.push(run);
    }
    let ratio = match runs.as_slice() {
        [encrypted, plaintext] => Some(Ratio::of(encrypted, plaintext)),
        _ => None,
    };
    if let Some(ratio) = &ratio {
        print!("{}", report::ratio_text(ratio));
    }

    if let Some(path) = &cli.json {
        let report = Report {
            tool: "sealgate-load",
            version: env!("CARGO_PKG_VERSION"),
            config: config_json(&cli),
            runs: runs.clone(),
            ratio,
        };
        let text = serde_json::to_vec_pretty(&report).context("serializing the JSON report")?;
        std::fs::write(path, text).with_context(|| format!("--json {}", path.display()))?;
    }
    check_some_succeeded(&runs)
}

/// Fetches the model's metadata: the first encrypted exchange, so it also proves that the
/// gateway is reachable, its certificate is trusted and the model exists.
async fn preflight_metadata(client: &Client, cli: &Cli) -> Result<ModelMetadata> {
    match client.model_metadata(&cli.model).await {
        Ok(metadata) => Ok(metadata),
        Err(Error::Exchange(ExchangeError::Inference { status: 404, .. })) => {
            let served = match client.models().await {
                Ok(list) => list.models.into_iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
                Err(_) => "unknown".into(),
            };
            bail!("the gateway does not serve a model called '{}' (it serves: {served})", cli.model)
        }
        Err(Error::Exchange(ExchangeError::Inference { status: 401, .. })) => bail!(
            "the gateway answered 401: it needs a valid bearer token; pass --token-file (such as \
             .sealgate/dev.token, which `sealgate serve` writes) or --token"
        ),
        Err(Error::Exchange(ExchangeError::Inference { status: 403, .. })) => {
            bail!("the gateway answered 403: this token may not use model '{}'", cli.model)
        }
        Err(e @ Error::Transport(_)) => {
            let detail =
                std::error::Error::source(&e).map(|s| sealgate_client::Report(s).to_string()).unwrap_or_default();
            let hint = if detail.contains("certificate") || detail.contains("UnknownIssuer") {
                "; is --ca the CA that signed the gateway's certificate?"
            } else {
                ""
            };
            bail!("cannot reach the gateway at {}: {detail}{hint}", cli.url)
        }
        Err(Error::Timeout(_)) => bail!("the gateway at {} did not answer within {:?}", cli.url, cli.timeout),
        Err(e) => Err(anyhow::Error::new(e).context(format!("asking {} about model '{}'", cli.url, cli.model))),
    }
}

/// Sends one request to `target` before measuring, so a refused input or a missing
/// plaintext path is one clear error instead of a report full of identical failures.
async fn preflight_request(target: &Target, cli: &Cli) -> Result<()> {
    match (target.send(0).await, target.mode()) {
        (Outcome::Ok { .. }, _) => Ok(()),
        (Outcome::Streamed(stats), _) if stats.rows_ok > 0 || stats.rows_failed == 0 => Ok(()),
        (Outcome::Streamed(stats), _) => bail!(
            "every line of the first stream failed: {}",
            stats.first_error.unwrap_or_else(|| "no error line".into())
        ),
        (Outcome::Failed { status: Some(404), .. }, Mode::Plaintext) => bail!(
            "the gateway has no plaintext benchmark path; start it with `sealgate serve --danger-plaintext-bench` \
             (loopback addresses only) to use --compare-plaintext"
        ),
        (Outcome::Failed { message, .. }, mode) => {
            let input =
                cli.input.as_ref().map_or_else(|| "the generated input".to_owned(), |p| p.display().to_string());
            bail!("the first {} request with {input} failed: {message}", mode.name())
        }
    }
}

fn print_header(cli: &Cli) {
    let load = match cli.load() {
        Load::Closed { concurrency } => format!("closed loop, {concurrency} in flight"),
        Load::Open { rate, max_in_flight } => format!("open loop, {rate} req/s (at most {max_in_flight} in flight)"),
    };
    let stop = match cli.stop() {
        Stop::After(d) => format!("{:.1} s", d.as_secs_f64()),
        Stop::Requests(n) => format!("{n} requests"),
    };
    let mut input = match &cli.input {
        Some(path) => path.display().to_string(),
        None => format!("generated, batch {}", cli.batch),
    };
    if let Some(lines) = cli.stream {
        input.push_str(&format!(", streams of {lines} lines"));
    }
    println!(
        "sealgate-load {}: {} model {} ({input}), {load}, {stop} after {:.1} s warm-up, {}",
        env!("CARGO_PKG_VERSION"),
        cli.url,
        cli.model,
        cli.warmup.as_secs_f64(),
        match cli.http_version() {
            sealgate_client::HttpVersion::Http1 => "HTTP/1.1",
            sealgate_client::HttpVersion::Http2 => "HTTP/2",
            _ => "HTTP/2 or 1.1 by ALPN",
        }
    );
}

fn config_json(cli: &Cli) -> serde_json::Value {
    let (load, concurrency, rate) = match cli.load() {
        Load::Closed { concurrency } => ("closed", Some(concurrency), None),
        Load::Open { rate, .. } => ("open", None, Some(rate)),
    };
    let (duration_s, requests) = match cli.stop() {
        Stop::After(d) => (Some(d.as_secs_f64()), None),
        Stop::Requests(n) => (None, Some(n)),
    };
    serde_json::json!({
        "url": cli.url,
        "model": cli.model,
        "input": cli.input.as_ref().map(|p| p.display().to_string()),
        "batch": cli.input.is_none().then_some(cli.batch),
        "load": load,
        "concurrency": concurrency,
        "rate": rate,
        "duration_s": duration_s,
        "requests": requests,
        "warmup_s": cli.warmup.as_secs_f64(),
        "http": if cli.http1 { "1.1" } else if cli.http2 { "2" } else { "alpn" },
        "server_pid": cli.server_pid,
        "precompute": !cli.no_precompute,
        "retries": cli.retries,
        "stream": cli.stream,
        "plaintext_as": cli.stream.is_some().then_some(cli.plaintext_as.as_str()),
    })
}

/// A run in which nothing succeeded is a failed run, whatever the report says.
fn check_some_succeeded(runs: &[RunResult]) -> Result<()> {
    for run in runs {
        if run.ok == 0 && run.failed > 0 {
            let first = run.errors.iter().find(|(_, t)| t.count > 0).map(|(k, t)| format!("{k}: {}", t.first_message));
            bail!("no {} request succeeded ({} failed; {})", run.mode, run.failed, first.unwrap_or_default());
        }
    }
    Ok(())
}

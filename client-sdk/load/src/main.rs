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
//! For capacity planning, `--stages` and `--steps` shape the open-loop rate over time,
//! `--find-max --slo p99=10ms,errors=0.1%` searches the highest rate that meets an SLO
//! (for both paths with `--compare-plaintext`), and `--html` writes a self-contained
//! report with charts. When a run stops early (the gateway went away mid-run), the JSON
//! and HTML reports are still written with what was measured, and the tool exits 1 with
//! one line saying why.
//!
//! Modules: [`cli`] (options), [`inputs`] (request bodies), [`target`] (encrypted and
//! plaintext endpoints, outcome classification), [`profile`] (rates over time),
//! [`schedule`] (closed and open loop, the watch over a run), [`progress`] (the live
//! line), [`find_max`] (the SLO search), [`server_usage`] (the gateway's CPU and memory
//! from /proc), [`timeseries`] (the run second by second), [`report`] (histograms, text
//! and JSON), [`html`] (the HTML report).

mod cli;
mod find_max;
mod html;
mod inputs;
mod profile;
mod progress;
mod report;
mod schedule;
mod server_usage;
mod target;
mod timeseries;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use sealgate_client::inference::ModelMetadata;
use sealgate_client::{Client, Error, ExchangeError};

use crate::cli::{Cli, Load, Stop};
use crate::find_max::{SearchOptions, Slo};
use crate::report::{Ratio, Report, RunResult};
use crate::schedule::{Halt, RunOptions};
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
    let load = cli.load().map_err(anyhow::Error::msg)?;
    let search = cli.find_max().map_err(anyhow::Error::msg)?;
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

    print_header(&cli, &load);
    let mut report = Report {
        tool: "sealgate-load",
        version: env!("CARGO_PKG_VERSION"),
        config: config_json(&cli, &load),
        runs: Vec::new(),
        ratio: None,
        find_max: Vec::new(),
        find_max_ratio: None,
        error: None,
    };
    let measured = measure(&cli, &load, search.as_ref(), &targets, &mut report).await;
    if let Err(e) = &measured {
        report.error = Some(format!("{e:#}"));
    }
    // Written whatever happened, so a run that stopped early still leaves its data.
    write_reports(&cli, &report, search.as_ref().map(|(slo, _)| slo))?;
    measured?;
    check_some_succeeded(&report.runs)
}

/// Runs the load (or the searches) against every target, filling `report` as it goes so
/// that an error leaves what was measured before it.
async fn measure(
    cli: &Cli,
    load: &Load,
    search: Option<&(Slo, SearchOptions)>,
    targets: &[Arc<Target>],
    report: &mut Report,
) -> Result<()> {
    for target in targets {
        let mode = target.mode().name();
        if !cli.warmup.is_zero() {
            let options = RunOptions::new(format!("{mode} warm-up"), !cli.quiet);
            let (_, halt) = schedule::run(target.clone(), load.clone(), Stop::After(cli.warmup), &options).await;
            if let Some(halt @ Halt::Unreachable(_)) = halt {
                bail!("{mode} warm-up: {}", halt.describe());
            }
        }
        if let Some((slo, options)) = search {
            let outcome = find_max::search(target.clone(), slo, options).await;
            print!("{}", find_max::search_text(&outcome.search));
            report.find_max.push(outcome.search);
            if let Some(fatal) = outcome.fatal {
                bail!("{fatal}");
            }
            continue;
        }
        let before = cli.server_pid.map(server_usage::Sample::read).transpose()?;
        let options = RunOptions { server_pid: cli.server_pid, ..RunOptions::new(mode, !cli.quiet) };
        let (mut run, halt) = schedule::run(target.clone(), load.clone(), cli.stop(load), &options).await;
        if let (Some(pid), Some(before)) = (cli.server_pid, before) {
            // A gateway that has exited has no usage to report; the halt says why.
            if let Ok(after) = server_usage::Sample::read(pid) {
                run.server = Some(server_usage::ServerUsage::between(before, after, run.ok + run.failed));
            }
        }
        print!("{}", report::run_text(&run));
        let answered = run.ok;
        report.runs.push(run);
        if let Some(halt @ Halt::Unreachable(_)) = halt {
            bail!("{mode} run stopped: {} after {answered} successful requests", halt.describe());
        }
    }
    if let [encrypted, plaintext] = report.runs.as_slice() {
        let ratio = Ratio::of(encrypted, plaintext);
        print!("{}", report::ratio_text(&ratio));
        report.ratio = Some(ratio);
    }
    if let [encrypted, plaintext] = report.find_max.as_slice()
        && let (Some(e), Some(p)) = (encrypted.max_rate, plaintext.max_rate)
    {
        let ratio = e / p;
        println!("encrypted vs plaintext highest rate: {ratio:.3}×");
        report.find_max_ratio = Some(ratio);
    }
    if let Some(search) = report.find_max.iter().find(|s| s.max_rate.is_none()) {
        let lowest = search.steps.iter().min_by(|a, b| a.rate.total_cmp(&b.rate));
        let detail = lowest.map_or_else(String::new, |step| {
            format!(
                "; at {:.1} req/s, the lowest tried, latency was {} and {:.2} % failed",
                step.rate,
                report::human_us(step.latency_us),
                step.error_share * 100.0
            )
        });
        bail!("no rate meets the SLO {} on the {} path{detail}", search.slo, search.mode);
    }
    Ok(())
}

/// Writes `--json` and `--html`.
fn write_reports(cli: &Cli, report: &Report, slo: Option<&Slo>) -> Result<()> {
    if let Some(path) = &cli.json {
        let text = serde_json::to_vec_pretty(report).context("serializing the JSON report")?;
        std::fs::write(path, text).with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(path) = &cli.html {
        let page = html::render(report, slo.map(|slo| slo.latency.as_secs_f64() * 1e3));
        std::fs::write(path, page).with_context(|| format!("--html {}", path.display()))?;
    }
    Ok(())
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

fn print_header(cli: &Cli, load: &Load) {
    let stop = match cli.stop(load) {
        Stop::After(d) => format!("{:.1} s", d.as_secs_f64()),
        Stop::Requests(n) => format!("{n} requests"),
    };
    let (load, stop) = match load {
        _ if cli.find_max => (
            format!(
                "find-max {} from {} req/s, steps of {:.1} s",
                cli.slo.as_deref().unwrap_or_default(),
                cli.start_rate,
                cli.step_duration.as_secs_f64()
            ),
            "searching".to_owned(),
        ),
        Load::Closed { concurrency } => (format!("closed loop, {concurrency} in flight"), stop),
        Load::Open { rate, max_in_flight } => {
            (format!("open loop, {rate} req/s (at most {max_in_flight} in flight)"), stop)
        }
        Load::Profiled { profile, max_in_flight } => (
            format!(
                "open loop, {} ({} requests, at most {max_in_flight} in flight)",
                profile.description(),
                profile.total_requests()
            ),
            stop,
        ),
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

fn config_json(cli: &Cli, load: &Load) -> serde_json::Value {
    let (kind, concurrency, rate) = match load {
        _ if cli.find_max => ("find-max", None, None),
        Load::Closed { concurrency } => ("closed", Some(*concurrency), None),
        Load::Open { rate, .. } => ("open", None, Some(*rate)),
        Load::Profiled { .. } => ("profile", None, None),
    };
    let (duration_s, requests) = match cli.stop(load) {
        Stop::After(d) => (Some(d.as_secs_f64()), None),
        Stop::Requests(n) => (None, Some(n)),
    };
    serde_json::json!({
        "url": cli.url,
        "model": cli.model,
        "input": cli.input.as_ref().map(|p| p.display().to_string()),
        "batch": cli.input.is_none().then_some(cli.batch),
        "load": kind,
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
        "stages": cli.stages,
        "steps": cli.steps,
        "step_duration_s": (cli.steps.is_some() || cli.find_max).then_some(cli.step_duration.as_secs_f64()),
        "find_max": cli.find_max,
        "slo": cli.slo,
        "start_rate": cli.find_max.then_some(cli.start_rate),
        "max_rate": cli.find_max.then_some(cli.max_rate),
        "max_in_flight": matches!(load, Load::Open { .. } | Load::Profiled { .. }).then_some(cli.max_in_flight),
        "compare_plaintext": cli.compare_plaintext,
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

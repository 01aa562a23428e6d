//! `cargo xtask bench`: the end-to-end benchmark, in one command.
//!
//! It answers "what does end-to-end encryption cost the gateway?" on real binaries: it
//! builds `sealgate` and `sealgate-load` in release mode, makes the ~30 MB MLP benchmark
//! model (once, into `target/bench/`), seals it with the two demo models and the two real
//! models of `cargo xtask setup` (`seizure-risk`, `text-embedding`; `--models` picks some)
//! into a fresh data directory, and starts `sealgate serve --danger-plaintext-bench` on
//! 127.0.0.1. The real models get realistic requests written from the committed fixtures (a
//! 5-minute EEG spectrogram, a 128-token paragraph), the others random ones. Then, for
//! each model, it runs `sealgate-load --compare-plaintext --server-pid PID` three ways: the
//! same load against the encrypted endpoint and the plaintext benchmark path, with the
//! gateway's CPU time read from `/proc/PID/stat` around each measured run:
//!
//! - closed loop, concurrency 1: unloaded latency (the MLP latency target);
//! - closed loop, higher concurrency: maximum throughput;
//! - open loop at one fixed rate (half the encrypted maximum) for both paths: the server
//!   then sees the same arrival pattern either way, so "encrypted − plaintext" CPU per
//!   request is the work per request and not a difference in how often the gateway's
//!   threads go idle and wake up (which closed loops at different speeds also measure).
//!
//! The gateway runs pinned to the last core and `sealgate-load` to the others (`taskset -c`,
//! unless `--no-pin` or a single core), so neither takes the other's CPU, and every load is
//! measured as `--repeats` (default 3) interleaved encrypted/plaintext pairs: the table shows
//! each figure's median over the pairs, and the encrypted − plaintext deltas their median
//! and spread (min…max), so one disturbed run cannot make a result.
//!
//! The table puts server CPU per request next to throughput and latency. Last, the protocol
//! benchmark (`cargo bench -p sealgate-protocol --bench server_cost`, when it exists) gives
//! the per-request cost of the cryptography alone, and the targets of issue 5 are checked
//! against both.
//!
//! `--soak` adds the soak of issue 15 after the benchmark (`--soak-only` runs it alone): a
//! fresh gateway serving the MLP behind a real nginx relay, its maximum throughput through
//! nginx measured, then `--soak-minutes` (default 30) of open-loop load at 70 % of it with a
//! key rotation and a tenant token rotation at half time, the gateway's RSS, file
//! descriptors, threads and CPU time sampled every 5 s (see [`crate::soak`]). `--quick`
//! shortens every run to check the pipeline (figures from it are not worth quoting; the soak
//! then lasts one minute).
//!
//! `--stream` runs only the streaming benchmark (issue 11) instead: `sealgate-load --stream
//! 1000` (one chunked OHTTP request of 1,000 credit-risk NDJSON lines, closed loop, one in
//! flight) compared with the same rows sent as one plaintext batch and as one plaintext
//! NDJSON request, then one stream of 10 M rows (`--stream-rows`) with the gateway's RSS
//! sampled every 50 ms; it checks the three targets (rows/s ≥ 0.9x the plaintext batches,
//! time to first line under 5 ms, RSS within 64 MiB of idle) and writes `stream.json`.
//!
//! `--overload` runs only the admission-control experiment instead: a gateway with 2
//! sessions of `tests/models/slow.onnx` sized to about 10 ms per request, its capacity
//! measured closed-loop at concurrency 4 (both sessions busy and one request waiting for
//! each), then open-loop load at 70 % and at 300 % of it,
//! with the gateway's RSS sampled every 50 ms. It checks that every request ends with an
//! answer, a 503 or a 429, that the RSS stays within 10 % of idle plus the model size, and
//! that the p99 of the answered requests at 300 % stays within twice the p99 at 70 %.
//!
//! Everything (data directory, gateway log, JSON reports, `results.json`) stays in
//! `target/bench/run/` for inspection; the next run wipes it.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::process::{cargo, run, stdout_of, succeeds};
use crate::setup::{self, ORT_DYLIB_ENV};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Short runs (3 s each, a 1-minute soak) to check the pipeline; not figures to quote.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Also run the soak after the benchmark: the MLP through nginx at 70 % of its maximum
    /// throughput through nginx, with a key and a tenant token rotation at half time.
    #[arg(long)]
    soak: bool,
    /// Run only the soak (no other benchmark).
    #[arg(long)]
    soak_only: bool,
    /// Length of the soak in minutes (default 30, or 1 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) soak_minutes: Option<u64>,
    /// Closed-loop concurrency of the throughput runs.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: u32,
    /// Seconds per measured run (default 15, or 3 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Skip the criterion protocol benchmark.
    #[arg(long)]
    no_protocol: bool,
    /// Run only the overload experiment (2 sessions, 70 % and 300 % of capacity).
    #[arg(long)]
    overload: bool,
    /// Run only the streaming benchmark: streams of 1,000 credit-risk lines against the same
    /// rows as plaintext batches and as plaintext NDJSON, then one long stream with the
    /// gateway's RSS sampled.
    #[arg(long)]
    stream: bool,
    /// With --stream: rows in the long stream (default 10,000,000; 200,000 with --quick).
    #[arg(long)]
    stream_rows: Option<u64>,
    /// Encrypted/plaintext pairs per model and load, interleaved; the table shows their
    /// medians and spread (default 3, or 1 with --quick).
    #[arg(long)]
    pub(crate) repeats: Option<usize>,
    /// Do not pin the gateway and the load generator to separate cores.
    #[arg(long)]
    pub(crate) no_pin: bool,
    /// Only these models, separated by commas (default: every model below). The real models
    /// (`seizure-risk`, `text-embedding`) are measured when `cargo xtask setup` has installed
    /// them, which this command does when they are missing.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Run only the large-model benchmark: a generated model with external initializers
    /// (about 3 GiB; `--large-gib` to change) sealed, verified and served (see
    /// `bench_large`).
    #[arg(long)]
    large: bool,
    /// With --large: the model's size in GiB.
    #[arg(long, default_value_t = 3.0)]
    large_gib: f64,
}

/// Which cores the gateway and the load generator run on (`taskset -c`), so neither takes
/// the other's CPU: the gateway on the last core, the load generator on the others. `None`
/// on a single core, without `taskset`, or with `--no-pin`.
#[derive(Debug, Clone)]
pub(crate) struct Pinning {
    pub(crate) gateway: String,
    pub(crate) load: String,
}

impl Pinning {
    pub(crate) fn choose(no_pin: bool) -> Option<Self> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if no_pin || cores < 2 || !succeeds(Command::new("taskset").arg("--version")) {
            return None;
        }
        let load = if cores == 2 { "0".to_owned() } else { format!("0-{}", cores - 2) };
        Some(Self { gateway: (cores - 1).to_string(), load })
    }

    /// `program` run under `taskset -c cores`, or as it is without pinning.
    pub(crate) fn command(pin: Option<&str>, program: &Path) -> Command {
        match pin {
            Some(cores) => {
                let mut command = Command::new("taskset");
                command.args(["-c", cores]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// The models measured: the two demo models, the benchmark MLP and the two real models of
/// `cargo xtask setup` (a seizure-probability CNN + BiLSTM and all-MiniLM-L6-v2 in int8).
const MODELS: [&str; 5] = ["breast-cancer", "credit-risk", "mlp-30mb", "seizure-risk", "text-embedding"];

/// The real models, whose encryption cost issue 13 bounds in percent of latency and throughput.
const REAL: [&str; 2] = ["seizure-risk", "text-embedding"];

/// Spectrogram columns of a 5-minute segment for `seizure-risk` (about two per second, as
/// the package's preprocessing makes them; see `client-sdk/examples/eeg.rs`).
const EEG_COLUMNS: usize = 600;

/// Tokens per `text-embedding` request: a paragraph of the committed sentences.
const TEXT_TOKENS: usize = 128;

/// The model the soak test and the latency target use.
pub(crate) const MLP: &str = "mlp-30mb";

/// Runs the whole benchmark.
pub fn run_all(root: &Path, args: &BenchArgs) -> Result<()> {
    let seconds = args.seconds.unwrap_or(if args.quick { 3 } else { 15 });
    let warmup = if args.quick { "1s" } else { "3s" };
    let library = setup::onnxruntime(root)?;
    let bench_dir = root.join("target").join("bench");
    let work = bench_dir.join("run");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    eprintln!("==> building release binaries");
    run(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "sealgate-server",
        "-p",
        "sealgate-load",
        "--bins",
    ]))?;
    let release = root.join("target").join("release");
    let sealgate = release.join("sealgate");
    let load = release.join("sealgate-load");
    if args.large {
        return crate::bench_large::run_large(root, &library, &sealgate, args.large_gib);
    }
    if args.overload {
        return overload(root, &library, &sealgate, &load, &work, args.seconds.unwrap_or(30));
    }
    if args.stream {
        let rows = args.stream_rows.unwrap_or(if args.quick { 200_000 } else { 10_000_000 });
        return stream(root, &library, &sealgate, &load, &work, seconds, warmup, rows);
    }
    let soak_tools = crate::soak::Tools { root, library: &library, sealgate: &sealgate, load: &load, work: &work };
    if args.soak_only {
        let soak = crate::soak::run(&soak_tools, args, seconds, warmup)?;
        let results = serde_json::json!({
            "machine": machine(),
            "date": utc_now(),
            "soak": soak.report,
        });
        let results_path = work.join("results.json");
        fs::write(&results_path, serde_json::to_vec_pretty(&results)?)
            .with_context(|| format!("writing {}", results_path.display()))?;
        println!("reports: {}", results_path.display());
        return soak.check();
    }

    let chosen = choose_models(&args.models)?;
    let mlp = if chosen.contains(&MLP) { Some(ensure_mlp(root, &bench_dir)?) } else { None };
    if chosen.iter().any(|m| REAL.contains(m)) {
        setup::real_models(root)?;
    }
    let data = work.join("data");
    let models = work.join("models");
    seal_models(root, &sealgate, &data, &models, &chosen, mlp.as_deref())?;
    let inputs = real_model_inputs(root, &work, &chosen)?;

    let machine = machine();
    let load_before = loadavg();
    let pinning = Pinning::choose(args.no_pin);
    let repeats = args.repeats.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let pinned = pinning.as_ref().map_or_else(
        || "not pinned".to_owned(),
        |p| format!("gateway pinned to core {}, sealgate-load to core(s) {}", p.gateway, p.load),
    );
    eprintln!("==> {machine}; load average {load_before}; {pinned}; {repeats} pair(s) per load");
    let server = Server::start_pinned(&sealgate, &library, &data, &models, &work, &[], pinning.clone())?;
    eprintln!("==> gateway pid {} at {}", server.pid(), server.url);

    let mut reports = Vec::new();
    let mut pairs: Vec<Vec<Row>> = Vec::new();
    for &model in &chosen {
        let input: Vec<String> = inputs
            .iter()
            .find(|(name, _)| *name == model)
            .map(|(_, path)| vec!["--input".to_owned(), path.display().to_string()])
            .unwrap_or_default();
        let repeat = |label: &str, load_args: &[&str], reports: &mut Vec<Value>| -> Result<Vec<Row>> {
            // Each repeat is one `--compare-plaintext` run: encrypted, then plaintext, so
            // the pairs interleave and drift on the machine hits both modes alike.
            let load_args: Vec<&str> = input.iter().map(String::as_str).chain(load_args.iter().copied()).collect();
            let mut runs = Vec::new();
            for _ in 0..repeats {
                let report = server.compare(&load, model, &load_args, seconds, warmup)?;
                runs.extend(Row::from_report(model, label, &report)?);
                reports.push(report);
            }
            Ok(runs)
        };
        for concurrency in [1, args.concurrency] {
            pairs.push(repeat(
                &format!("c={concurrency}"),
                &["--concurrency", &concurrency.to_string()],
                &mut reports,
            )?);
        }
        let max = pairs
            .iter()
            .flatten()
            .filter(|r| r.model == model && r.mode == "encrypted")
            .map(|r| r.throughput)
            .fold(0.0_f64, f64::max);
        let rate = (max * 0.5).round().max(1.0);
        pairs.push(repeat(&format!("{rate}/s"), &["--rate", &format!("{rate}")], &mut reports)?);
    }
    let load_after = loadavg();
    let rows: Vec<Row> = pairs.iter().flat_map(|runs| Row::medians(runs)).collect();
    println!();
    println!("{machine}; load average before {load_before}, after {load_after}; {pinned}");
    println!("medians of {repeats} interleaved encrypted/plaintext pair(s) per load (spread: min–max)");
    print_table(&rows, &pairs);

    drop(server);
    // A fresh gateway of its own, behind nginx: the soak's memory curve starts from the
    // MLP alone, the same with and without the benchmark before it.
    let soak = if args.soak { Some(crate::soak::run(&soak_tools, args, seconds, warmup)?) } else { None };

    let results = serde_json::json!({
        "machine": machine,
        "date": utc_now(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds_per_run": seconds,
        "pinning": pinned,
        "repeats": repeats,
        "runs": reports,
        "soak": soak.as_ref().map(|s| &s.report),
    });
    let results_path = work.join("results.json");
    fs::write(&results_path, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", results_path.display()))?;
    println!("reports: {}", results_path.display());

    let protocol_us = if args.no_protocol { None } else { protocol_bench(root, &library, args.quick)? };
    println!();
    print_targets(&rows, protocol_us);
    if let Some(soak) = soak {
        soak.print_verdicts();
        soak.check()?;
    }
    Ok(())
}

/// Makes `target/bench/mlp-30mb.onnx` with the project's model script unless it exists.
pub(crate) fn ensure_mlp(root: &Path, bench_dir: &Path) -> Result<PathBuf> {
    let mlp = bench_dir.join("mlp-30mb.onnx");
    if mlp.is_file() {
        eprintln!("==> {} present", mlp.display());
        return Ok(mlp);
    }
    let make = root.join("models").join("make");
    let probe = "import numpy, onnx, onnxruntime, sklearn, skl2onnx";
    if !succeeds(Command::new("python3").args(["-c", probe])) {
        eprintln!("==> installing the model script's Python packages");
        run(Command::new("python3")
            .args(["-m", "pip", "install", "-r"])
            .arg(make.join("requirements.txt"))
            // As in setup: a Debian-managed Python refuses pip installs without this.
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1"))
        .context("installing models/make/requirements.txt")?;
    }
    eprintln!("==> making {}", mlp.display());
    fs::create_dir_all(bench_dir).with_context(|| format!("creating {}", bench_dir.display()))?;
    run(Command::new("python3").arg(make.join("make_demo_models.py")).args(["--no-demo", "--mlp-30mb"]).arg(&mlp))?;
    Ok(mlp)
}

/// The models of `--models` in the order of [`MODELS`] (all of them when none is named).
fn choose_models(named: &[String]) -> Result<Vec<&'static str>> {
    if let Some(unknown) = named.iter().find(|n| !MODELS.contains(&n.as_str())) {
        bail!("--models: unknown model '{unknown}'; the benchmark knows {}", MODELS.join(", "));
    }
    Ok(MODELS.into_iter().filter(|m| named.is_empty() || named.iter().any(|n| n == m)).collect())
}

/// Creates the local KMS key `default` in a fresh data directory and seals the chosen models
/// into `models`: the gateway serves only sealed artifacts.
fn seal_models(
    root: &Path,
    sealgate: &Path,
    data: &Path,
    models: &Path,
    chosen: &[&str],
    mlp: Option<&Path>,
) -> Result<()> {
    let demo = root.join("models").join("demo");
    let real = setup::real_models_dir(root);
    let mut sources: Vec<(&str, PathBuf)> = Vec::new();
    for &model in chosen {
        let source = match (model, mlp) {
            (MLP, Some(mlp)) => mlp.to_path_buf(),
            (MLP, None) => bail!("the MLP was not made"),
            _ if REAL.contains(&model) => real.join(format!("{model}.onnx")),
            _ => demo.join(format!("{model}.onnx")),
        };
        sources.push((model, source));
    }
    seal(sealgate, data, models, &sources)
}

/// Request bodies for the real models, written into `work`: `seizure-risk` gets the
/// spectrogram of a 5-minute segment (the committed reference preprocessing's first row,
/// its columns repeated to [`EEG_COLUMNS`]), `text-embedding` a paragraph of the committed
/// sentences' token ids ([`TEXT_TOKENS`] tokens, `[CLS]` … `[SEP]`, all attended). Random
/// inputs would not do: a random token id is outside the vocabulary.
fn real_model_inputs(root: &Path, work: &Path, chosen: &[&str]) -> Result<Vec<(&'static str, PathBuf)>> {
    let fixtures = root.join("client-sdk").join("examples").join("fixtures");
    let mut inputs = Vec::new();
    if chosen.contains(&"seizure-risk") {
        let reference = read_json(&fixtures.join("eeg-preprocessing.reference.json"))?;
        let shape: Vec<usize> = serde_json::from_value(reference["shape"].clone()).context("reference shape")?;
        let data: Vec<f64> = serde_json::from_value(reference["data"].clone()).context("reference data")?;
        let (bins, columns) = match shape[..] {
            [_, bins, columns] if bins * columns > 0 && data.len() >= bins * columns => (bins, columns),
            _ => bail!("the EEG reference tensor has shape {shape:?}; expected [rows, bins, columns]"),
        };
        // Row 0, bin by bin, each bin's columns repeated to `EEG_COLUMNS`.
        let tensor: Vec<f64> =
            data.chunks(columns).take(bins).flat_map(|bin| bin.iter().copied().cycle().take(EEG_COLUMNS)).collect();
        let body = serde_json::json!({"inputs": [
            {"name": "x", "shape": [1, bins, EEG_COLUMNS], "datatype": "FP32", "data": tensor}
        ]});
        inputs.push(("seizure-risk", write_input(work, "seizure-risk", &body)?));
    }
    if chosen.contains(&"text-embedding") {
        let fixture = read_json(&fixtures.join("sentences.tokens.json"))?;
        let sentences = fixture["sentences"].as_array().context("sentences.tokens.json: no sentences")?;
        // Each sentence's ids without its own [CLS] (first) and [SEP] (last).
        let words: Vec<i64> = sentences
            .iter()
            .filter_map(|s| s["input_ids"].as_array())
            .flat_map(|ids| ids.iter().skip(1).take(ids.len().saturating_sub(2)).filter_map(Value::as_i64))
            .collect();
        ensure!(!words.is_empty(), "sentences.tokens.json has no token ids");
        let (cls, sep) = (101, 102);
        let ids: Vec<i64> = std::iter::once(cls)
            .chain(words.iter().copied().cycle().take(TEXT_TOKENS - 2))
            .chain(std::iter::once(sep))
            .collect();
        let shape = [1, TEXT_TOKENS];
        let body = serde_json::json!({"inputs": [
            {"name": "input_ids", "shape": shape, "datatype": "INT64", "data": ids},
            {"name": "attention_mask", "shape": shape, "datatype": "INT64", "data": vec![1; TEXT_TOKENS]},
            {"name": "token_type_ids", "shape": shape, "datatype": "INT64", "data": vec![0; TEXT_TOKENS]},
        ]});
        inputs.push(("text-embedding", write_input(work, "text-embedding", &body)?));
    }
    Ok(inputs)
}

fn write_input(work: &Path, model: &str, body: &Value) -> Result<PathBuf> {
    let path = work.join(format!("{model}.input.json"));
    fs::write(&path, serde_json::to_vec(body)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// A fresh data directory with its local KMS key `default`, `sources` (name, ONNX file)
/// sealed into `models`, and a tenant `bench` allowed every model whose token is written to
/// `DATA_DIR/bench.token` (the gateway serves only sealed artifacts, to tenants).
pub(crate) fn seal(sealgate: &Path, data: &Path, models: &Path, sources: &[(&str, PathBuf)]) -> Result<()> {
    let names: Vec<&str> = sources.iter().map(|(name, _)| *name).collect();
    eprintln!("==> sealing {} into {}", names.join(", "), models.display());
    // A fresh data directory makes its local key `default` itself (it wraps the audit key);
    // older gateways did not.
    let keys = stdout_of(Command::new(sealgate).args(["kms", "list", "--data-dir"]).arg(data))?;
    if !keys.lines().any(|l| l.split_whitespace().next() == Some("default")) {
        run(Command::new(sealgate).args(["kms", "create", "default", "--data-dir"]).arg(data).stdout(Stdio::null()))?;
    }
    fs::create_dir_all(models).with_context(|| format!("creating {}", models.display()))?;
    for (model, source) in sources {
        run(Command::new(sealgate)
            .args(["seal", "--data-dir"])
            .arg(data)
            .args(["--model", model, "--version", "1"])
            .arg(source)
            .arg("-o")
            .arg(models.join(format!("{model}.sealed")))
            .stdout(Stdio::null()))?;
    }
    let token =
        stdout_of(Command::new(sealgate).args(["tenants", "add", "bench", "--models", "*", "--data-dir"]).arg(data))?;
    let path = data.join("bench.token");
    fs::write(&path, token.trim()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The gateway under test; killed when dropped.
pub(crate) struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    work: PathBuf,
    url: String,
    ca: PathBuf,
    token: PathBuf,
    pinning: Option<Pinning>,
}

impl Server {
    /// Starts `sealgate serve --danger-plaintext-bench` on a free loopback port and waits
    /// until it prints its address. Its log goes to `work/gateway.log`.
    fn start(sealgate: &Path, library: &Path, data: &Path, models: &Path, work: &Path, extra: &[&str]) -> Result<Self> {
        Self::start_pinned(sealgate, library, data, models, work, extra, None)
    }

    /// [`Server::start`] with the gateway and every later `sealgate-load` pinned to their
    /// cores (`taskset` execs the program, so the pid is the gateway's own).
    fn start_pinned(
        sealgate: &Path,
        library: &Path,
        data: &Path,
        models: &Path,
        work: &Path,
        extra: &[&str],
        pinning: Option<Pinning>,
    ) -> Result<Self> {
        let args: Vec<&str> = std::iter::once("--danger-plaintext-bench").chain(extra.iter().copied()).collect();
        Self::launch(sealgate, library, data, models, work, &args, pinning)
    }

    /// `sealgate serve` on free loopback ports with `args` and nothing else added (no
    /// plaintext benchmark path): the gateway as an operator runs it. Pinned like
    /// [`Server::start_pinned`]; its log goes to `work/gateway.log`.
    pub(crate) fn launch(
        sealgate: &Path,
        library: &Path,
        data: &Path,
        models: &Path,
        work: &Path,
        args: &[&str],
        pinning: Option<Pinning>,
    ) -> Result<Self> {
        let log_path = work.join("gateway.log");
        let log = fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Pinning::command(pinning.as_ref().map(|p| p.gateway.as_str()), sealgate)
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .arg("--models")
            .arg(models)
            .args(args)
            .env(ORT_DYLIB_ENV, library)
            .env("NO_COLOR", "1")
            .env_remove("SEALGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", sealgate.display()))?;
        let stdout = child.stdout.take().context("the gateway's stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut url = String::new();
        let mut line = String::new();
        // Until the last start-up line, or end of file when the gateway exits.
        while stdout.read_line(&mut line).context("reading the gateway's stdout")? > 0 {
            if let Some(rest) = line.strip_prefix("sealgate listening on ") {
                url = rest.trim().to_owned();
            }
            if line.starts_with("models: ") {
                break;
            }
            line.clear();
        }
        // Kept open (not read further): closing it would make any later print fail.
        let server = Self {
            child,
            _stdout: stdout,
            work: work.to_path_buf(),
            url,
            ca: data.join("tls").join("ca.pem"),
            token: data.join("bench.token"),
            pinning,
        };
        if server.url.is_empty() {
            bail!("the gateway did not start; see {}", log_path.display());
        }
        Ok(server)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `https://127.0.0.1:PORT`, where the gateway listens.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The CA certificate of the gateway's development TLS certificate.
    pub(crate) fn ca(&self) -> &Path {
        &self.ca
    }

    /// Runs `sealgate-load --compare-plaintext` with `load_args` (the load model) and
    /// returns its JSON report (also left in the work folder).
    fn compare(&self, load: &Path, model: &str, load_args: &[&str], seconds: u64, warmup: &str) -> Result<Value> {
        let name: String = load_args.join("").chars().filter(char::is_ascii_alphanumeric).collect();
        let mut json = self.work.join(format!("{model}-{name}.json"));
        for repeat in 2.. {
            if !json.exists() {
                break;
            }
            json = self.work.join(format!("{model}-{name}-{repeat}.json"));
        }
        let mut command = self.load_command(load, model);
        command
            .args(load_args)
            .args(["--duration", &format!("{seconds}s"), "--warmup", warmup, "--compare-plaintext", "--json"])
            .arg(&json);
        run(&mut command)?;
        read_json(&json)
    }

    /// `sealgate-load` aimed at this gateway and `model`, with its CPU measured.
    fn load_command(&self, load: &Path, model: &str) -> Command {
        self.load_command_via(load, model, &self.url, &self.token)
    }

    /// `sealgate-load` aimed at `model` through `url` (this gateway's, or a relay's in front
    /// of it whose certificate the same CA signed) with the token in `token`, the gateway's
    /// CPU measured.
    pub(crate) fn load_command_via(&self, load: &Path, model: &str, url: &str, token: &Path) -> Command {
        let mut command = Pinning::command(self.pinning.as_ref().map(|p| p.load.as_str()), load);
        command
            .args(["--url", url, "--model", model, "--quiet", "--server-pid", &self.pid().to_string()])
            .arg("--ca")
            .arg(&self.ca)
            .arg("--token-file")
            .arg(token);
        command
    }

    /// `sealgate-load` with `load_args` against `model` for `seconds`; its JSON report.
    fn measure(&self, load: &Path, model: &str, name: &str, load_args: &[&str], seconds: u64) -> Result<Value> {
        let json = self.work.join(format!("{name}.json"));
        let mut command = self.load_command(load, model);
        command.args(load_args).args(["--duration", &format!("{seconds}s"), "--warmup", "2s", "--json"]).arg(&json);
        run(&mut command)?;
        read_json(&json)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

/// One line of the table: a model, a load (`c=N` or `R/s`), a mode.
struct Row {
    model: &'static str,
    load: String,
    mode: String,
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
    crypto_p50_us: Option<f64>,
    server_cpu_us: f64,
    errors: u64,
}

impl Row {
    fn from_report(model: &'static str, load: &str, report: &Value) -> Result<Vec<Row>> {
        let runs = report["runs"].as_array().context("a sealgate-load report without runs")?;
        runs.iter()
            .map(|run| {
                let number = |v: &Value| v.as_f64().with_context(|| format!("missing figure in {run}"));
                Ok(Row {
                    model,
                    load: load.to_owned(),
                    mode: run["mode"].as_str().unwrap_or("?").to_owned(),
                    throughput: number(&run["throughput_rps"])?,
                    p50_us: number(&run["latency_us"]["p50"])?,
                    p99_us: number(&run["latency_us"]["p99"])?,
                    crypto_p50_us: run["client_crypto_us"]["p50"].as_f64(),
                    server_cpu_us: run["server"]["cpu_us_per_request"].as_f64().unwrap_or(f64::NAN),
                    errors: run["failed"].as_u64().unwrap_or(0),
                })
            })
            .collect()
    }

    /// Per mode, the median of each figure over `runs` (all of one model and load).
    fn medians(runs: &[Row]) -> Vec<Row> {
        ["encrypted", "plaintext"]
            .iter()
            .filter_map(|mode| {
                let of: Vec<&Row> = runs.iter().filter(|r| r.mode == *mode).collect();
                let first = of.first()?;
                let median = |f: &dyn Fn(&Row) -> f64| median(of.iter().map(|r| f(r)).collect());
                Some(Row {
                    model: first.model,
                    load: first.load.clone(),
                    mode: (*mode).to_owned(),
                    throughput: median(&|r| r.throughput),
                    p50_us: median(&|r| r.p50_us),
                    p99_us: median(&|r| r.p99_us),
                    crypto_p50_us: first.crypto_p50_us.map(|_| median(&|r| r.crypto_p50_us.unwrap_or(f64::NAN))),
                    server_cpu_us: median(&|r| r.server_cpu_us),
                    errors: of.iter().map(|r| r.errors).sum(),
                })
            })
            .collect()
    }
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median and the spread (min–max) of a figure over the pairs of one model and load.
fn spread(values: Vec<f64>) -> String {
    let (min, max) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let median = median(values);
    format!("{median:+.1} ({min:+.1}…{max:+.1})")
}

fn print_table(rows: &[Row], pairs: &[Vec<Row>]) {
    println!(
        "{:<14} {:>8} {:<10} {:>9} {:>10} {:>10} {:>12} {:>16} {:>7}",
        "model", "load", "mode", "req/s", "p50", "p99", "client HPKE", "server CPU/req", "errors"
    );
    for r in rows {
        println!(
            "{:<14} {:>8} {:<10} {:>9.1} {:>10} {:>10} {:>12} {:>16} {:>7}",
            r.model,
            r.load,
            r.mode,
            r.throughput,
            us(r.p50_us),
            us(r.p99_us),
            r.crypto_p50_us.map_or_else(|| "-".to_owned(), us),
            us(r.server_cpu_us),
            r.errors
        );
    }
    println!();
    println!("encrypted − plaintext per pair, median (min…max) over the pairs, per model and load:");
    for runs in pairs {
        // Each report is one pair: encrypted then plaintext.
        let pair_list: Vec<(&Row, &Row)> = runs
            .chunks(2)
            .filter_map(|p| match p {
                [enc, plain] if enc.mode == "encrypted" && plain.mode == "plaintext" => Some((enc, plain)),
                _ => None,
            })
            .collect();
        let Some((first, _)) = pair_list.first() else { continue };
        let figure = |f: &dyn Fn(&Row, &Row) -> f64| spread(pair_list.iter().map(|(e, p)| f(e, p)).collect());
        println!(
            "  {:<14} {:>8}  server CPU {} µs/request   p50 {} %   p99 {} %   throughput ratio {}",
            first.model,
            first.load,
            figure(&|e, p| e.server_cpu_us - p.server_cpu_us),
            figure(&|e, p| (e.p50_us / p.p50_us - 1.0) * 100.0),
            figure(&|e, p| (e.p99_us / p.p99_us - 1.0) * 100.0),
            // In hundredths, so the one-decimal format shows two.
            figure(&|e, p| e.throughput / p.throughput * 100.0),
        );
    }
    println!("  (throughput ratio in % of plaintext)");
}

/// The targets of issue 5 that these runs measure, each with its figure and verdict.
fn print_targets(rows: &[Row], protocol_us: Option<f64>) {
    println!("targets (issues 5 and 13):");
    let pair = |model: &str, load: &dyn Fn(&str) -> bool| {
        let enc = rows.iter().find(|r| r.model == model && load(&r.load) && r.mode == "encrypted")?;
        let plain = rows.iter().find(|r| r.model == model && load(&r.load) && r.mode == "plaintext")?;
        Some((enc, plain))
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    for model in MODELS {
        let Some((enc, plain)) = pair(model, &|l: &str| l.ends_with("/s")) else { continue };
        let delta = enc.server_cpu_us - plain.server_cpu_us;
        match protocol_us {
            Some(protocol) => println!(
                "  server CPU, encrypted − plaintext at {}, {model}: {delta:.1} µs = {:.2}× the protocol's {protocol:.1} µs \
                 (target ≤ 1.2×): {}",
                enc.load,
                delta / protocol,
                verdict(delta <= 1.2 * protocol)
            ),
            None => println!(
                "  server CPU, encrypted − plaintext at {}, {model}: {delta:.1} µs (no protocol figure to compare with)",
                enc.load
            ),
        }
    }
    if let Some((enc, plain)) = pair("credit-risk", &|l: &str| l.starts_with("c=") && l != "c=1") {
        let ratio = enc.throughput / plain.throughput;
        println!(
            "  credit-risk closed loop at {}: encrypted {:.0} req/s = {ratio:.3}× plaintext {:.0} req/s (issue 13 target \
             ≥ 0.65× with the gateway pinned to one core): {}",
            enc.load,
            enc.throughput,
            plain.throughput,
            verdict(ratio >= 0.65)
        );
    }
    if let Some((enc, plain)) = pair(MLP, &|l: &str| l == "c=1") {
        let added = (enc.p50_us / plain.p50_us - 1.0) * 100.0;
        println!(
            "  {MLP} batch 1, unloaded (c=1): encryption adds {added:+.2} % to the median ({} → {}) (target ≤ 3 %): {}",
            us(plain.p50_us),
            us(enc.p50_us),
            verdict(added <= 3.0)
        );
    }
    for model in REAL {
        if let Some((enc, plain)) = pair(model, &|l: &str| l.ends_with("/s")) {
            let p50 = (enc.p50_us / plain.p50_us - 1.0) * 100.0;
            let p99 = (enc.p99_us / plain.p99_us - 1.0) * 100.0;
            println!(
                "  {model} at {} (half the maximum): encryption adds {p50:+.2} % to the median ({} → {}) (target ≤ 1 %): \
                 {}; {p99:+.2} % to p99 ({} → {}) (target ≤ 2 %): {}",
                enc.load,
                us(plain.p50_us),
                us(enc.p50_us),
                verdict(p50 <= 1.0),
                us(plain.p99_us),
                us(enc.p99_us),
                verdict(p99 <= 2.0)
            );
        }
        if let Some((enc, plain)) = pair(model, &|l: &str| l.starts_with("c=") && l != "c=1") {
            let ratio = enc.throughput / plain.throughput;
            println!(
                "  {model} closed loop at {}: encrypted {:.1} req/s = {ratio:.3}× plaintext {:.1} req/s (target ≥ 0.97×): {}",
                enc.load,
                enc.throughput,
                plain.throughput,
                verdict(ratio >= 0.97)
            );
        }
    }
}

pub(crate) fn us(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value < 1e3 {
        format!("{value:.1} µs")
    } else if value < 1e6 {
        format!("{:.2} ms", value / 1e3)
    } else {
        format!("{:.2} s", value / 1e6)
    }
}

/// The CPU model and count, for the record.
pub(crate) fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU")
        .to_owned();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{model}, {cpus} CPUs")
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The criterion benchmark of the protocol's per-request server cost, when it exists.
/// Returns the median of `server/x25519/sealgate-aws-lc-rs` (the backend the gateway uses)
/// in microseconds, read from criterion's `estimates.json`.
fn protocol_bench(root: &Path, library: &Path, quick: bool) -> Result<Option<f64>> {
    if !root.join("protocol").join("benches").join("server_cost.rs").is_file() {
        eprintln!("==> protocol benchmark: protocol/benches/server_cost.rs does not exist yet; skipped");
        return Ok(None);
    }
    eprintln!("==> protocol benchmark (criterion)");
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["bench", "-p", "sealgate-protocol", "--bench", "server_cost"])
        .env(ORT_DYLIB_ENV, library);
    if quick {
        command.args(["--", "--warm-up-time", "1", "--measurement-time", "2"]);
    }
    run(&mut command)?;
    let estimates = root.join("target/criterion/server_x25519/sealgate-aws-lc-rs/new/estimates.json");
    let median = read_json(&estimates).ok().and_then(|e| e["median"]["point_estimate"].as_f64());
    if median.is_none() {
        eprintln!("==> no median in {}; the protocol figure is not compared", estimates.display());
    }
    Ok(median.map(|ns| ns / 1e3))
}

/// Repeats of the slow test model per request: about 10 ms of one core here.
const OVERLOAD_REPEATS: u64 = 150;

/// The admission-control experiment (`--overload`): see the module documentation.
fn overload(root: &Path, library: &Path, sealgate: &Path, load: &Path, work: &Path, seconds: u64) -> Result<()> {
    let model = root.join("tests").join("models").join("slow.onnx");
    let model_bytes = fs::metadata(&model).with_context(|| format!("{}", model.display()))?.len();
    let data = work.join("data");
    let models = work.join("models");
    seal(sealgate, &data, &models, &[("slow", model.clone())])?;
    let input = work.join("slow-input.json");
    let request = serde_json::json!({"inputs": [
        {"name": "x", "shape": [1, 256], "datatype": "FP32", "data": vec![0.01; 256]},
        {"name": "repeats", "shape": [2], "datatype": "INT64", "data": [OVERLOAD_REPEATS, 1]},
    ]});
    fs::write(&input, serde_json::to_vec(&request)?).with_context(|| format!("writing {}", input.display()))?;
    let input = input.display().to_string();

    let machine = machine();
    eprintln!("==> {machine}; load average {}", loadavg());
    let server = Server::start(sealgate, library, &data, &models, work, &["--sessions-per-model", "2"])?;
    let pid = server.pid();
    eprintln!(
        "==> gateway pid {pid} at {} (2 sessions, default --max-in-flight, --max-queue-delay, --burst-queue-delay and --queue-timeout)",
        server.url
    );

    let capacity_report = server.measure(load, "slow", "capacity", &["--input", &input, "--concurrency", "4"], 10)?;
    let capacity = capacity_report["runs"][0]["throughput_rps"].as_f64().context("capacity throughput")?;
    ensure!(capacity > 0.0, "the capacity run answered nothing");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle_rss = rss_kib(pid)?;
    eprintln!("==> capacity {capacity:.1} req/s; idle RSS {:.1} MiB", idle_rss as f64 / 1024.0);

    let mut results = Vec::new();
    for (name, factor) in [("70-percent", 0.7), ("300-percent", 3.0)] {
        let rate = format!("{:.1}", capacity * factor);
        let sampler = RssSampler::start(pid);
        let report = server.measure(load, "slow", name, &["--input", &input, "--rate", &rate], seconds)?;
        let peak = sampler.stop();
        results.push((name, factor, report, peak));
    }
    drop(server);

    println!();
    println!(
        "{machine}; capacity (closed loop, concurrency 4) {capacity:.1} req/s; idle RSS {:.1} MiB; model {model_bytes} bytes",
        idle_rss as f64 / 1024.0
    );
    println!(
        "{:<12} {:>9} {:>8} {:>8} {:>9} {:>8} {:>11} {:>11} {:>10}",
        "load", "rate", "ok", "503/429", "other err", "ok p50", "ok p99", "all p99", "peak RSS"
    );
    let mut p99 = Vec::new();
    let mut verdicts = Vec::new();
    for (name, factor, report, peak) in &results {
        let run = &report["runs"][0];
        let count = |kind: &str| run["errors"][kind]["count"].as_u64().unwrap_or(0);
        let refused = count("overloaded") + count("busy") + count("rate_limited");
        let other = run["failed"].as_u64().unwrap_or(0) - refused;
        let ok_p99 = run["ok_latency_us"]["p99"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{name:<12} {:>7.1}/s {:>8} {:>8} {:>9} {:>8} {:>11} {:>11} {:>7.1} MiB",
            capacity * factor,
            run["ok"].as_u64().unwrap_or(0),
            refused,
            other,
            us(run["ok_latency_us"]["p50"].as_f64().unwrap_or(f64::NAN)),
            us(ok_p99),
            us(run["latency_us"]["p99"].as_f64().unwrap_or(f64::NAN)),
            *peak as f64 / 1024.0
        );
        p99.push(ok_p99);
        verdicts.push((format!("{name}: every request answered, 503 or 429"), other == 0));
        let bound = idle_rss as f64 * 1.1 + model_bytes as f64 / 1024.0;
        verdicts.push((
            format!(
                "{name}: peak RSS {:.1} MiB <= 1.1 x idle + model = {:.1} MiB",
                *peak as f64 / 1024.0,
                bound / 1024.0
            ),
            (*peak as f64) <= bound,
        ));
    }
    let ratio = p99[1] / p99[0];
    verdicts.push((format!("answered p99 at 300 % / at 70 % = {ratio:.2} <= 2"), ratio <= 2.0));
    print_verdicts(&verdicts);
    let summary = serde_json::json!({
        "machine": machine,
        "date": utc_now(),
        "capacity_rps": capacity,
        "idle_rss_kib": idle_rss,
        "model_bytes": model_bytes,
        "runs": results.iter().map(|(name, factor, report, peak)| serde_json::json!({
            "name": name, "factor": factor, "peak_rss_kib": peak, "report": report,
        })).collect::<Vec<_>>(),
        "p99_ratio": ratio,
    });
    let path = work.join("overload.json");
    fs::write(&path, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    println!("report: {}", path.display());
    Ok(())
}

/// The streaming benchmark (`--stream`): see the module documentation.
#[allow(clippy::too_many_arguments)]
fn stream(
    root: &Path,
    library: &Path,
    sealgate: &Path,
    load: &Path,
    work: &Path,
    seconds: u64,
    warmup: &str,
    long_rows: u64,
) -> Result<()> {
    const MODEL: &str = "credit-risk";
    const LINES: &str = "1000";
    let demo = root.join("models").join("demo");
    let data = work.join("data");
    let models = work.join("models");
    seal(sealgate, &data, &models, &[(MODEL, demo.join(format!("{MODEL}.onnx")))])?;
    let input_path = demo.join(format!("{MODEL}.example.json"));
    let example = read_json(&input_path)?;
    let rows_per_line = example["inputs"][0]["shape"][0].as_u64().context("the example's first dimension")?.max(1);
    let input = input_path.display().to_string();

    let machine = machine();
    let load_before = loadavg();
    eprintln!("==> {machine}; load average {load_before}");
    let server = Server::start(sealgate, library, &data, &models, work, &[])?;
    let pid = server.pid();
    eprintln!("==> gateway pid {pid} at {} (defaults)", server.url);

    let mut compared = Vec::new();
    for how in ["batch", "ndjson"] {
        let args = ["--stream", LINES, "--input", &input, "--concurrency", "1", "--plaintext-as", how];
        compared.push((how, server.compare(load, MODEL, &args, seconds, warmup)?));
    }

    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle_rss = rss_kib(pid)?;
    let lines = long_rows.div_ceil(rows_per_line);
    eprintln!(
        "==> one stream of {lines} lines ({} rows); idle RSS {:.1} MiB",
        lines * rows_per_line,
        idle_rss as f64 / 1024.0
    );
    let json = work.join("long-stream.json");
    let sampler = RssSampler::start(pid);
    let mut command = server.load_command(load, MODEL);
    command
        .args(["--stream", &lines.to_string(), "--input", &input, "--concurrency", "1"])
        .args(["--duration", "1s", "--warmup", "0s", "--json"])
        .arg(&json);
    let outcome = run(&mut command);
    let peak_rss = sampler.stop();
    outcome?;
    let long = read_json(&json)?;
    drop(server);
    let load_after = loadavg();

    println!();
    println!("{machine}; load average before {load_before}, after {load_after}");
    println!(
        "{:<22} {:>12} {:>12} {:>7} {:>14} {:>14} {:>18}",
        "run", "stream rows/s", "plain rows/s", "ratio", "first line p50", "first line p99", "server CPU/request"
    );
    let mut verdicts = Vec::new();
    for (how, report) in &compared {
        let (streamed, plain) = (&report["runs"][0], &report["runs"][1]);
        let rate = |run: &Value| run["rows"]["rows_per_s"].as_f64().unwrap_or(f64::NAN);
        let ratio = report["ratio"]["rows_per_s"].as_f64().unwrap_or(f64::NAN);
        let first = |q: &str| streamed["rows"]["first_line_us"][q].as_f64().unwrap_or(f64::NAN);
        let cpu = |run: &Value| us(run["server"]["cpu_us_per_request"].as_f64().unwrap_or(f64::NAN));
        println!(
            "{:<22} {:>12.0} {:>12.0} {:>6.3}x {:>14} {:>14} {:>8} / {:<8}",
            format!("vs plaintext {how}"),
            rate(streamed),
            rate(plain),
            ratio,
            us(first("p50")),
            us(first("p99")),
            cpu(streamed),
            cpu(plain)
        );
        if *how == "batch" {
            verdicts.push((format!("streamed rows/s {ratio:.3}x plaintext batches >= 0.9x"), ratio >= 0.9));
            verdicts.push((format!("time to first line p50 {} < 5 ms", us(first("p50"))), first("p50") < 5000.0));
        }
    }
    let long_run = &long["runs"][0];
    let long_ok = long_run["rows"]["ok"].as_u64().unwrap_or(0);
    let growth = peak_rss.saturating_sub(idle_rss) as f64 / 1024.0;
    println!(
        "long stream: {long_ok} rows in {:.1} s ({:.0} rows/s); gateway RSS {:.1} MiB idle, {:.1} MiB peak (+{growth:.1} MiB)",
        long_run["elapsed_s"].as_f64().unwrap_or(f64::NAN),
        long_run["rows"]["rows_per_s"].as_f64().unwrap_or(f64::NAN),
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    verdicts
        .push((format!("long stream: all {} rows answered", lines * rows_per_line), long_ok == lines * rows_per_line));
    verdicts.push((format!("gateway RSS +{growth:.1} MiB while streaming <= 64 MiB"), growth <= 64.0));
    print_verdicts(&verdicts);
    let summary = serde_json::json!({
        "machine": machine,
        "date": utc_now(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds_per_run": seconds,
        "compared": compared.iter().map(|(how, report)| serde_json::json!({"plaintext_as": how, "report": report})).collect::<Vec<_>>(),
        "long_stream": {"rows": lines * rows_per_line, "idle_rss_kib": idle_rss, "peak_rss_kib": peak_rss, "report": long},
    });
    let path = work.join("stream.json");
    fs::write(&path, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    println!("report: {}", path.display());
    Ok(())
}

/// Prints each target's verdict, one line each.
pub(crate) fn print_verdicts(verdicts: &[(String, bool)]) {
    for (text, ok) in verdicts {
        println!("  {} {text}", if *ok { "met    " } else { "NOT MET" });
    }
}

/// The time now, UTC, as `date -u` writes it in ISO 8601.
pub(crate) fn utc_now() -> String {
    stdout_of(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])).unwrap_or_default().trim().to_owned()
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Samples a process's RSS every 50 ms on a thread until stopped; returns the peak.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            peak
        });
        Self { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

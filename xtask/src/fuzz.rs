//! `cargo xtask fuzz`: the fuzz campaigns of docs/FUZZING.md, with the figures they report.
//!
//! The targets live in the `fuzz/` cargo-fuzz workspace (outside the main workspace: they
//! need a nightly toolchain and libFuzzer). This task installs cargo-fuzz when it is
//! missing, builds every target once, then runs each for `--minutes` with
//! `cargo +nightly fuzz run TARGET corpus/TARGET -- -max_total_time=...`, up to
//! `--parallel` at a time (each libFuzzer process keeps one core busy), growing the
//! committed corpus in place. libFuzzer's own log of each run goes to
//! `target/fuzz/logs/TARGET.log`; its final statistics and last status line become one row
//! of the table printed at the end and written to `target/fuzz-report.md`: executions,
//! executions per second, edges covered (`cov`), features (`ft`), corpus files, crashes.
//!
//! A crash, a timeout, an out-of-memory or a leak is a finding: libFuzzer writes the input to
//! `fuzz/artifacts/TARGET/`, and the task fails naming every such file once all targets have
//! run. Replay one with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/FILE`, fix the
//! parser, and commit the input under `fuzz/regressions/TARGET/` so that the crate's stable
//! `fuzz_regressions` test replays it from then on.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process::{cargo, describe, run, stdout_of, succeeds};

/// Every fuzz target, in the order a campaign runs them (`fuzz/Cargo.toml`).
pub const TARGETS: [&str; 7] = ["key_config", "decapsulate", "chunked", "bhttp", "artifact", "onnx_scan", "kserve"];

/// Flags every run gets besides the time limit: the final statistics (parsed below), a
/// per-input time limit well above any target's slowest input, and a memory limit well above
/// what the bounded parsers may allocate.
const LIBFUZZER_FLAGS: [&str; 3] = ["-print_final_stats=1", "-timeout=20", "-rss_limit_mb=2048"];

/// Arguments of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Minutes each target runs (fractions allowed, such as 0.5).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Run only this target (repeatable); all seven by default.
    #[arg(long = "target", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
    /// How many targets run at once; each keeps one core busy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    parallel: u32,
    /// First write each target's seed inputs into fuzz/corpus/ (the crates' ignored
    /// `write_seeds` tests).
    #[arg(long)]
    seeds: bool,
    /// After its run, minimize each target's corpus in place (`cargo fuzz cmin`).
    #[arg(long)]
    minimize: bool,
    /// Further libFuzzer flags, after `--` (for example `-- -max_len=8192`).
    #[arg(last = true)]
    libfuzzer: Vec<String>,
}

/// What one run reported.
#[derive(Debug, Default, Clone, PartialEq)]
struct Figures {
    seconds: Option<u64>,
    executions: Option<u64>,
    exec_per_sec: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    corpus_files: usize,
    /// Inputs libFuzzer wrote as findings (crash, timeout, oom, leak).
    findings: Vec<String>,
}

/// A target that is running.
struct Running {
    target: &'static str,
    child: Child,
    started: Instant,
    log: PathBuf,
}

/// Runs the campaign; fails if any target found something or did not run.
pub fn run_all(root: &Path, args: &FuzzArgs) -> Result<()> {
    if !(args.minutes > 0.0 && args.minutes.is_finite()) {
        bail!("--minutes must be a positive number of minutes");
    }
    let targets: Vec<&'static str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        TARGETS.into_iter().filter(|t| args.targets.iter().any(|a| a == t)).collect()
    };
    let fuzz_dir = root.join("fuzz");
    let nightly = nightly_version()?;
    ensure_cargo_fuzz()?;

    if args.seeds {
        eprintln!("==> writing seed inputs into fuzz/corpus/");
        run(cargo().current_dir(root).args([
            "test",
            "-p",
            "sealgate-protocol",
            "-p",
            "sealgate-models",
            "--test",
            "fuzz_regressions",
            "--",
            "--ignored",
            "--exact",
            "write_seeds",
        ]))?;
    }

    // One build of every target first, so that the timed runs do not include it and parallel
    // runs do not wait for each other's build.
    eprintln!("==> building the fuzz targets (nightly, AddressSanitizer, coverage instrumentation)");
    let mut build = nightly_cargo(&fuzz_dir);
    build.args(["fuzz", "build"]);
    if targets.len() == 1 {
        build.args(&targets);
    }
    run(&mut build)?;

    let logs = root.join("target").join("fuzz").join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let seconds = (args.minutes * 60.0).round().max(1.0) as u64;
    let mut queue = targets.clone();
    queue.reverse();
    let mut running: Vec<Running> = Vec::new();
    let mut results: Vec<(&'static str, Result<Figures>)> = Vec::new();
    eprintln!("==> fuzzing {} target(s) for {} each, {} at a time", targets.len(), humanize(seconds), args.parallel);
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < args.parallel as usize
            && let Some(target) = queue.pop()
        {
            running.push(start(&fuzz_dir, &logs, target, seconds, &args.libfuzzer)?);
        }
        std::thread::sleep(Duration::from_secs(1));
        let mut still = Vec::new();
        for mut r in running {
            match r.child.try_wait() {
                Ok(None) if r.started.elapsed() > Duration::from_secs(seconds + 900) => {
                    // libFuzzer stops itself at -max_total_time; a run this late is stuck.
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    results.push((r.target, Err(anyhow::anyhow!("stuck; killed (log: {})", r.log.display()))));
                }
                Ok(None) => still.push(r),
                Ok(Some(status)) => {
                    let figures = finish(&fuzz_dir, &r, status.success(), args.minimize);
                    match &figures {
                        Ok(f) => eprintln!("    {}: {}", r.target, summary(f)),
                        Err(e) => eprintln!("    {}: {e:#}", r.target),
                    }
                    results.push((r.target, figures));
                }
                Err(e) => results.push((r.target, Err(anyhow::Error::new(e).context("waiting for the fuzzer")))),
            }
        }
        running = still;
    }
    results.sort_by_key(|(t, _)| TARGETS.iter().position(|x| x == t));

    let report = report(&results, args, seconds, &nightly);
    println!("{report}");
    let path = root.join("target").join("fuzz-report.md");
    fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report written to {}", path.display());

    let mut problems = Vec::new();
    for (target, result) in &results {
        match result {
            Ok(f) if f.findings.is_empty() => {}
            Ok(f) => problems.push(format!("{target} found {}", f.findings.join(", "))),
            Err(e) => problems.push(format!("{target}: {e:#}")),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// `cargo +nightly` in `dir`, with the toolchain pinned for every cargo and rustc that
/// cargo-fuzz starts in turn (the variables `cargo xtask` itself runs under name stable's).
fn nightly_cargo(dir: &Path) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .current_dir(dir)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env("RUSTUP_TOOLCHAIN", "nightly");
    command
}

/// The nightly toolchain's `rustc --version`, or how to install it.
fn nightly_version() -> Result<String> {
    let mut command = Command::new("rustc");
    command.arg("+nightly").arg("--version").env_remove("RUSTUP_TOOLCHAIN");
    stdout_of(&mut command)
        .map(|v| v.trim().to_owned())
        .context("fuzzing needs a nightly toolchain: `rustup toolchain install nightly`")
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    if succeeds(Command::new("cargo").args(["fuzz", "--version"]).env_remove("CARGO")) {
        return Ok(());
    }
    eprintln!("==> installing cargo-fuzz");
    run(cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// Starts one campaign, libFuzzer's output into its log.
fn start(fuzz_dir: &Path, logs: &Path, target: &'static str, seconds: u64, extra: &[String]) -> Result<Running> {
    let corpus = Path::new("corpus").join(target);
    fs::create_dir_all(fuzz_dir.join(&corpus)).with_context(|| format!("creating fuzz/{}", corpus.display()))?;
    let log = logs.join(format!("{target}.log"));
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = nightly_cargo(fuzz_dir);
    command
        .args(["fuzz", "run", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(LIBFUZZER_FLAGS)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    eprintln!("    {target}: `{}` (log: {})", describe(&command), log.display());
    let child = command.spawn().with_context(|| format!("could not start `{}`", describe(&command)))?;
    Ok(Running { target, child, started: Instant::now(), log })
}

/// Reads a finished run's figures (and minimizes its corpus when asked).
fn finish(fuzz_dir: &Path, r: &Running, success: bool, minimize: bool) -> Result<Figures> {
    let text = fs::read_to_string(&r.log).with_context(|| format!("reading {}", r.log.display()))?;
    let mut figures = parse(&text);
    if !success && figures.findings.is_empty() {
        bail!("the fuzzer failed without writing a finding; see {}", r.log.display());
    }
    if minimize && figures.findings.is_empty() {
        let corpus = Path::new("corpus").join(r.target);
        let mut cmin = nightly_cargo(fuzz_dir);
        cmin.args(["fuzz", "cmin", r.target]).arg(&corpus).stdout(Stdio::null()).stderr(Stdio::null());
        run(&mut cmin)?;
    }
    figures.corpus_files = count_files(&fuzz_dir.join("corpus").join(r.target));
    Ok(figures)
}

/// Parses libFuzzer's log: the final statistics, the last status line and any finding.
fn parse(log: &str) -> Figures {
    let mut figures = Figures::default();
    let number = |s: &str| s.trim().parse::<u64>().ok();
    for line in log.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            figures.executions = number(v);
        } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
            figures.exec_per_sec = number(v);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 123456 runs in 600 second(s)"
            figures.seconds = rest.split_whitespace().nth(3).and_then(number);
        } else if line.starts_with('#') && line.contains(" cov: ") {
            // "#123456	DONE   cov: 1234 ft: 5678 corp: 90/12Kb ..." (the last one wins).
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                match word {
                    "cov:" => figures.cov = words.next().and_then(number),
                    "ft:" => figures.ft = words.next().and_then(number),
                    _ => {}
                }
            }
        }
        // "artifact_prefix='...'; Test unit written to ./artifacts/x/crash-..."
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            figures.findings.push(path.trim().trim_start_matches("./").to_owned());
        }
    }
    figures
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map(|entries| entries.filter_map(|e| e.ok()).filter(|e| e.path().is_file()).count()).unwrap_or(0)
}

fn humanize(seconds: u64) -> String {
    if seconds.is_multiple_of(60) { format!("{} min", seconds / 60) } else { format!("{seconds} s") }
}

fn show(value: Option<u64>) -> String {
    value.map_or_else(|| "?".into(), |v| v.to_string())
}

fn summary(f: &Figures) -> String {
    format!(
        "{} executions ({}/s), cov {}, ft {}, {} corpus files, {} finding(s)",
        show(f.executions),
        show(f.exec_per_sec),
        show(f.cov),
        show(f.ft),
        f.corpus_files,
        f.findings.len()
    )
}

/// The Markdown report: the command, the machine, and one row per target.
fn report(results: &[(&'static str, Result<Figures>)], args: &FuzzArgs, seconds: u64, nightly: &str) -> String {
    let mut out = String::new();
    let mut line = format!("cargo xtask fuzz --minutes {} --parallel {}", args.minutes, args.parallel);
    for t in &args.targets {
        let _ = write!(line, " --target {t}");
    }
    for (flag, on) in [(" --seeds", args.seeds), (" --minimize", args.minimize)] {
        if on {
            line.push_str(flag);
        }
    }
    if !args.libfuzzer.is_empty() {
        let _ = write!(line, " -- {}", args.libfuzzer.join(" "));
    }
    let uname = stdout_of(Command::new("uname").arg("-srm")).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "Fuzz campaign: `{line}` ({} per target)", humanize(seconds));
    let _ = writeln!(out, "Toolchain: {nightly}; cargo-fuzz, libFuzzer with AddressSanitizer");
    let _ = writeln!(out, "Machine: {}, {cores} cores", uname.trim());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| target | minutes | executions | exec/s | cov (edges) | ft (features) | corpus files | crashes |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (target, result) in results {
        match result {
            Ok(f) => {
                let minutes = f.seconds.map_or_else(|| "?".into(), |s| format!("{:.1}", s as f64 / 60.0));
                let crashes = if f.findings.is_empty() {
                    "0".to_owned()
                } else {
                    format!("{} ({})", f.findings.len(), f.findings.join(", "))
                };
                let _ = writeln!(
                    out,
                    "| {target} | {minutes} | {} | {} | {} | {} | {} | {crashes} |",
                    show(f.executions),
                    show(f.exec_per_sec),
                    show(f.cov),
                    show(f.ft),
                    f.corpus_files
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {target} | - | - | - | - | - | - | did not run: {e:#} |");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
INFO: Seed: 1234
#2\tINITED cov: 310 ft: 311 corp: 18/20Kb exec/s: 0 rss: 40Mb
#4096\tpulse  cov: 400 ft: 900 corp: 40/30Kb lim: 4096 exec/s: 2048 rss: 60Mb
#98765\tDONE   cov: 512 ft: 1700 corp: 77/50Kb lim: 4096 exec/s: 1646 rss: 80Mb
Done 98765 runs in 60 second(s)
stat::number_of_executed_units: 98765
stat::average_exec_per_sec:     1646
stat::new_units_added:          59
";

    #[test]
    fn final_statistics_and_the_last_status_line_are_read() {
        let f = parse(LOG);
        assert_eq!(f.executions, Some(98765));
        assert_eq!(f.exec_per_sec, Some(1646));
        assert_eq!((f.cov, f.ft), (Some(512), Some(1700)));
        assert_eq!(f.seconds, Some(60));
        assert!(f.findings.is_empty());
    }

    #[test]
    fn a_crash_names_its_input() {
        let log = format!(
            "{LOG}==123== ERROR: libFuzzer: deadly signal\nartifact_prefix='/w/fuzz/artifacts/bhttp/'; Test unit written to \
             /w/fuzz/artifacts/bhttp/crash-0a1b\n"
        );
        assert_eq!(parse(&log).findings, ["/w/fuzz/artifacts/bhttp/crash-0a1b"]);
    }
}

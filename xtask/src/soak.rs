//! The soak of issue 15 (`cargo xtask bench --soak`, or `--soak-only` without the rest of the
//! benchmark): does the gateway run for half an hour behind nginx, through a key rotation and
//! a tenant token rotation, without an error and without growing?
//!
//! It seals the MLP of the benchmark into a data directory of its own and starts the gateway
//! as an operator would (release build, no plaintext benchmark path), with Debian's nginx in
//! front of it as the Oblivious HTTP relay of `deploy/nginx/relay.conf.template` (nginx
//! terminates the client's TLS and forwards each request over kept-alive TLS 1.3 to the
//! gateway), through `sealgate-test-support`'s nginx harness. The gateway is pinned to the last
//! core, nginx and `sealgate-load` to the others, as in the benchmark. Then:
//!
//! 1. the maximum throughput through nginx: closed loop at `--concurrency` (default 4),
//!    `--repeats` runs (default 3), their median;
//! 2. open-loop load at 70 % of that maximum for `--soak-minutes` (default 30; 1 with
//!    `--quick`), every request counted (no warm-up excluded). At half time `sealgate keys
//!    rotate` and `sealgate tenants rotate-token` run against the data directory, as an
//!    operator runs them beside a live gateway, which picks both up within a second. The
//!    load keeps its old token (and its cached key configuration) for a minute more, which
//!    the product allows for the grace period, then hands over to a second `sealgate-load`
//!    started with the new token: a caller switching tokens. `sealgate-load` reads its token
//!    once, so the switch is two processes back to back (well under a second apart). Both
//!    graces are 10 minutes, so in the 30-minute soak they end under load: the gateway then
//!    drops the old keys and the old token while the second process runs, and after the
//!    soak one request with the old token must be refused.
//! 3. all along, every 5 s, the gateway's RSS (`VmRSS`), open file descriptors (entries of
//!    `/proc/PID/fd`), threads and CPU time (utime + stime) into
//!    `target/bench/run/soak-samples.csv`.
//!
//! The verdict: no failed request; RSS growth under 5 %, comparing the median of the first
//! two minutes after a one-minute warm-up with the median of the last two minutes (medians
//! of 24 samples, so one sample taken during an allocation burst moves neither); no growth
//! of file descriptors or threads beyond 2 between the same windows (see [`FD_TOLERANCE`]);
//! the offered rate delivered; both rotations picked up. It is printed, written to
//! `target/bench/run/soak.json` (and into `results.json`), with the samples every minute as
//! a Markdown table for docs/PERFORMANCE.md (`soak-table.md`, which adds the machine's load
//! average and the requests the gateway shed, counted from its log, so errors can be set
//! against what else ran); a target not met makes the command fail, naming it.

use std::cell::RefCell;
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use sealgate_test_support::nginx::{Nginx, NginxConfig, deploy_template, render};
use serde_json::{Value, json};

use crate::bench::{self, BenchArgs, MLP, Pinning, Server, median, read_json, us};
use crate::process::{describe, find_in_path, stdout_of};

/// What the soak uses of `cargo xtask bench`'s setup.
pub struct Tools<'a> {
    pub root: &'a Path,
    pub library: &'a Path,
    pub sealgate: &'a Path,
    pub load: &'a Path,
    /// `target/bench/run/`.
    pub work: &'a Path,
}

/// The fraction of the measured maximum the soak offers.
const RATE_FRACTION: f64 = 0.7;

/// How often the gateway is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The RSS growth target of issue 15, in percent.
const RSS_GROWTH_LIMIT: f64 = 5.0;

/// File descriptors the end window may hold beyond the baseline. The gateway's descriptors
/// are its listeners, its log and key files, the runtime's epoll and event fds, and one
/// socket per TLS connection from nginx. nginx opens an upstream connection per request in
/// flight and keeps up to 64 idle ones (`keepalive 64`); the gateway closes an HTTP/1
/// connection left unused for `--header-read-timeout` (10 s). So a burst of overlapping
/// requests (a stall of the shared core) leaves a few extra sockets for about 10 s, and a
/// median of 24 samples may still sit one or two above the baseline's. A leak grows with the
/// requests served (hundreds of thousands here), so it shows as hundreds, not as two.
const FD_TOLERANCE: f64 = 2.0;

/// Threads the end window may hold beyond the baseline: tokio's blocking pool (inference,
/// the key and tenant file checks) starts a thread when all are busy and lets it go after
/// 10 s idle, so the count follows the load's short-term overlap; a leak only grows.
const THREAD_TOLERANCE: f64 = 2.0;

/// The answered share of the offered rate below which the gateway did not keep up (then the
/// soak measured an overloaded machine, not 70 % load).
const DELIVERED_FRACTION: f64 = 0.95;

/// The grace of both rotations: at least the key list's max-age plus the request timeout
/// (330 s by default, which `keys rotate` enforces), and short enough to end within the
/// 30-minute soak.
const GRACE: Duration = Duration::from_secs(600);

/// `/proc/PID/stat`'s clock ticks per second (USER_HZ, fixed at 100 for user space).
const USER_HZ: f64 = 100.0;

/// What the gateway logs when it serves a new key set, and when it reloaded the tenants.
const KEYS_SERVED: &str = "serving a new set of HPKE keys";
const TENANTS_RELOADED: &str = "reloaded the tenant file";
/// What the gateway logs (throttled) when admission control sheds requests
/// (`--max-in-flight`, `--max-queue-delay`).
const SHED: &str = "shedding load: 503";

/// The tenant `bench::seal` creates.
const TENANT: &str = "bench";

/// When things happen in a soak of `total`.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    total: Duration,
    /// The rotations.
    rotate_at: Duration,
    /// The second `sealgate-load`, with the new token, takes over.
    switch_at: Duration,
    /// Samples before this are not compared (the load's connections and pools settle).
    warmup: Duration,
    /// The length of the baseline and end windows.
    window: Duration,
}

impl Timeline {
    fn new(minutes: u64) -> Self {
        let total = Duration::from_secs(minutes * 60);
        let rotate_at = total / 2;
        Self {
            total,
            rotate_at,
            switch_at: rotate_at + (total / 4).min(Duration::from_secs(60)),
            warmup: (total / 6).min(Duration::from_secs(60)),
            window: (total / 5).min(Duration::from_secs(120)),
        }
    }
}

/// The outcome of a soak: its JSON report and verdicts.
pub struct Soak {
    pub report: Value,
    verdicts: Vec<(String, bool)>,
}

impl Soak {
    /// Prints the verdicts, one line each.
    pub fn print_verdicts(&self) {
        println!("soak targets (issue 15):");
        bench::print_verdicts(&self.verdicts);
    }

    /// Fails, naming them, when targets were not met.
    pub fn check(&self) -> Result<()> {
        let failed: Vec<&str> = self.verdicts.iter().filter(|(_, ok)| !ok).map(|(text, _)| text.as_str()).collect();
        if failed.is_empty() {
            return Ok(());
        }
        bail!("soak: {} target(s) not met: {}", failed.len(), failed.join("; "))
    }
}

/// Runs the soak (see the module documentation); `seconds` and `warmup` are those of each
/// maximum-throughput run.
pub fn run(tools: &Tools, args: &BenchArgs, seconds: u64, warmup: &str) -> Result<Soak> {
    ensure!(
        find_in_path("nginx").is_some(),
        "nginx is not installed (or not on PATH): `cargo xtask setup` installs it (apt-get install -y nginx)"
    );
    let minutes = args.soak_minutes.unwrap_or(if args.quick { 1 } else { 30 });
    let timeline = Timeline::new(minutes);
    let repeats = args.repeats.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let dir = tools.work.join("soak");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mlp = bench::ensure_mlp(tools.root, &tools.root.join("target").join("bench"))?;
    let data = dir.join("data");
    bench::seal(tools.sealgate, &data, &dir.join("models"), &[(MLP, mlp)])?;

    let machine = bench::machine();
    let load_before = bench::loadavg();
    let pinning = Pinning::choose(args.no_pin);
    let server = Server::launch(tools.sealgate, tools.library, &data, &dir.join("models"), &dir, &[], pinning.clone())?;
    let pid = server.pid();
    let relay = Relay::start(&server, &data, pinning.as_ref().map(|p| p.load.as_str()))?;
    let pinned = pinning.as_ref().map_or_else(
        || "not pinned".to_owned(),
        |p| format!("gateway pinned to core {}, nginx and sealgate-load to core(s) {}", p.gateway, p.load),
    );
    eprintln!(
        "==> soak: gateway pid {pid} at {}, nginx relay (pid {}) at {}; {machine}; load average {load_before}; {pinned}",
        server.url(),
        relay.master,
        relay.url
    );

    let old_token = data.join(format!("{TENANT}.token"));
    let mut maxima = Vec::new();
    let mut max_reports = Vec::new();
    for repeat in 1..=repeats {
        let json = dir.join(format!("max-{repeat}.json"));
        let mut command = server.load_command_via(tools.load, MLP, &relay.url, &old_token);
        command
            .args(["--concurrency", &args.concurrency.to_string(), "--duration", &format!("{seconds}s")])
            .args(["--warmup", warmup, "--json"])
            .arg(&json);
        crate::process::run(&mut command)?;
        let report = read_json(&json)?;
        let run = &report["runs"][0];
        maxima.push(run["throughput_rps"].as_f64().context("the maximum run's throughput")?);
        if run["failed"].as_u64() != Some(0) {
            eprintln!(
                "==> warning: {} request(s) of the maximum run {repeat} failed; see {}",
                run["failed"],
                json.display()
            );
        }
        max_reports.push(report);
    }
    let max = median(maxima.clone());
    ensure!(max > 0.0, "the maximum-throughput runs through nginx answered nothing");
    let rate = RATE_FRACTION * max;
    eprintln!(
        "==> maximum through nginx {max:.1} req/s (median of {maxima:.1?}); soak at {rate:.1} req/s for {minutes} min, \
         rotations at {:?}, new token from {:?}",
        timeline.rotate_at, timeline.switch_at
    );

    let csv = tools.work.join("soak-samples.csv");
    let nginx_rss_start = relay.worker_rss_kib();
    let started = Instant::now();
    let started_wall = SystemTime::now();
    let sampler = Sampler::start(pid, started, &csv)?;
    let new_token = data.join(format!("{TENANT}-rotated.token"));
    let phase = |token: &Path, duration: Duration, n: usize| -> Result<(Child, PathBuf, String)> {
        let json = dir.join(format!("soak-phase-{n}.json"));
        let mut command = server.load_command_via(tools.load, MLP, &relay.url, token);
        command
            .args(["--rate", &format!("{rate:.3}"), "--duration", &format!("{}ms", duration.as_millis())])
            .args(["--warmup", "0s", "--json"])
            .arg(&json);
        let line = describe(&command);
        let child = command.spawn().with_context(|| format!("could not start `{line}`"))?;
        Ok((child, json, line))
    };

    let (mut first, first_json, first_line) = phase(&old_token, timeline.switch_at, 1)?;
    while started.elapsed() < timeline.rotate_at {
        if let Some(status) = first.try_wait()? {
            bail!("`{first_line}` ended before the rotation ({status})");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let rotation = match rotate(tools.sealgate, &data, &new_token, &dir.join("gateway.log"), started) {
        Ok(rotation) => rotation,
        Err(e) => {
            // Kill fails only when it has ended already.
            let _ = first.kill();
            let _ = first.wait();
            return Err(e);
        }
    };
    wait(first, &first_line)?;
    let switched_at = started.elapsed();
    let (second, second_json, second_line) =
        phase(&new_token, timeline.total.saturating_sub(switched_at).max(Duration::from_secs(1)), 2)?;
    wait(second, &second_line)?;
    let ended_at = started.elapsed();
    let samples = sampler.stop()?;
    let nginx_rss_end = relay.worker_rss_kib();
    let load_after = bench::loadavg();

    // After the grace the old token must be refused (the 30-minute soak gets there; a short
    // one ends inside the grace and does not check it).
    let old_token_refused = if ended_at.saturating_sub(rotation.at) > GRACE + Duration::from_secs(2) {
        let mut command = server.load_command_via(tools.load, MLP, &relay.url, &old_token);
        command.args(["--requests", "1", "--warmup", "0s"]).stdout(Stdio::null());
        let output = command.output().context("running sealgate-load with the old token")?;
        Some(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("401"))
    } else {
        None
    };
    let keys_after = stdout_of(Command::new(tools.sealgate).args(["keys", "list", "--data-dir"]).arg(&data))?;
    relay.keep_error_log(&dir.join("nginx-error.log"));
    drop(relay);
    drop(server);

    let phases = [read_json(&first_json)?, read_json(&second_json)?];
    let figures = Figures::of(&samples, &timeline)?;
    let mut verdicts = Vec::new();
    let runs: Vec<&Value> = phases.iter().map(|p| &p["runs"][0]).collect();
    let count = |key: &str| runs.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum::<u64>();
    let (ok, failed) = (count("ok"), count("failed"));
    let answered: f64 = runs.iter().map(|r| r["throughput_rps"].as_f64().unwrap_or(0.0)).fold(f64::INFINITY, f64::min);
    let p = |q: &str| runs.iter().map(|r| us(r["latency_us"][q].as_f64().unwrap_or(f64::NAN))).collect::<Vec<_>>();
    let kinds: Vec<String> = runs
        .iter()
        .filter_map(|r| r["errors"].as_object())
        .flat_map(|errors| errors.iter())
        .fold(Vec::<(String, u64)>::new(), |mut kinds, (kind, tally)| {
            let n = tally["count"].as_u64().unwrap_or(0);
            match kinds.iter_mut().find(|(k, _)| k == kind) {
                Some((_, total)) => *total += n,
                None => kinds.push((kind.clone(), n)),
            }
            kinds
        })
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let kinds = if kinds.is_empty() { String::new() } else { format!(": {}", kinds.join(", ")) };
    verdicts.push((format!("no errors: {ok} answered, {failed} failed{kinds} (target 0)"), failed == 0 && ok > 0));
    verdicts.push((
        format!(
            "the offered {rate:.1} req/s was delivered: the slower phase answered {answered:.1} req/s (≥ {:.0} %)",
            DELIVERED_FRACTION * 100.0
        ),
        answered >= DELIVERED_FRACTION * rate,
    ));
    verdicts.push((
        format!(
            "RSS {:.1} → {:.1} MiB, {:+.2} % (medians of the windows; target < {RSS_GROWTH_LIMIT} %)",
            figures.rss.0 / 1024.0,
            figures.rss.1 / 1024.0,
            figures.rss_growth()
        ),
        figures.rss_growth() < RSS_GROWTH_LIMIT,
    ));
    verdicts.push((
        format!(
            "file descriptors {} → {} ({:+}; last − first after warm-up {:+}; range {}–{}; target ≤ +{FD_TOLERANCE})",
            figures.fds.0,
            figures.fds.1,
            figures.fds.1 - figures.fds.0,
            figures.fds_last_first,
            figures.fds_range.0,
            figures.fds_range.1
        ),
        figures.fds.1 - figures.fds.0 <= FD_TOLERANCE,
    ));
    verdicts.push((
        format!(
            "threads {} → {} ({:+}; range {}–{}; target ≤ +{THREAD_TOLERANCE})",
            figures.threads.0,
            figures.threads.1,
            figures.threads.1 - figures.threads.0,
            figures.threads_range.0,
            figures.threads_range.1
        ),
        figures.threads.1 - figures.threads.0 <= THREAD_TOLERANCE,
    ));
    verdicts.push((
        format!(
            "the gateway served the rotated keys ({}) and reloaded the tenants ({}) after the rotations at {:.0} s",
            rotation.keys_picked_up.map_or_else(|| "not seen".to_owned(), |s| format!("{s:.1} s later")),
            rotation.tenants_picked_up.map_or_else(|| "not seen".to_owned(), |s| format!("{s:.1} s later")),
            rotation.at.as_secs_f64()
        ),
        rotation.keys_picked_up.is_some() && rotation.tenants_picked_up.is_some(),
    ));
    if let Some(refused) = old_token_refused {
        verdicts.push(("the old token is refused (401) after its grace".to_owned(), refused));
    }

    let shed = sheds(&dir.join("gateway.log"), started_wall);
    let table = markdown_table(&samples, &shed, &timeline);
    let table_path = tools.work.join("soak-table.md");
    fs::write(&table_path, &table).with_context(|| format!("writing {}", table_path.display()))?;
    println!();
    println!(
        "soak: {MLP} through nginx (OHTTP relay) at {rate:.1} req/s = 70 % of {max:.1} req/s for {:.1} min; \
         {machine}; load average before {load_before}, after {load_after}; {pinned}",
        ended_at.as_secs_f64() / 60.0
    );
    println!(
        "  phase 1 (old token, 0 → {:.0} s): p50 {}, p99 {}, max {}; phase 2 (new token, → {:.0} s): p50 {}, p99 {}, max {}",
        switched_at.as_secs_f64(),
        p("p50")[0],
        p("p99")[0],
        p("max")[0],
        ended_at.as_secs_f64(),
        p("p50")[1],
        p("p99")[1],
        p("max")[1],
    );
    println!(
        "  nginx worker RSS {:.1} → {:.1} MiB; samples: {}; table: {}",
        nginx_rss_start as f64 / 1024.0,
        nginx_rss_end as f64 / 1024.0,
        csv.display(),
        table_path.display()
    );
    println!();
    print!("{table}");
    let soak = Soak {
        report: json!({
            "date": bench::utc_now(),
            "machine": machine,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "pinning": pinned,
            "model": MLP,
            "through": "nginx, deploy/nginx/relay.conf.template (OHTTP relay, TLS terminated)",
            "minutes": minutes,
            "elapsed_s": ended_at.as_secs_f64(),
            "max_rps": max,
            "max_runs_rps": maxima,
            "max_runs": max_reports,
            "rate_rps": rate,
            "timeline_s": {
                "rotations": rotation.at.as_secs_f64(),
                "new_token_from": switched_at.as_secs_f64(),
                "warmup": timeline.warmup.as_secs_f64(),
                "window": timeline.window.as_secs_f64(),
                "grace": GRACE.as_secs(),
            },
            "rotation": {
                "keys_before": rotation.keys_before,
                "keys_after_rotation": rotation.keys_after,
                "keys_after_soak": keys_after,
                "keys_picked_up_s": rotation.keys_picked_up,
                "tenants_picked_up_s": rotation.tenants_picked_up,
                "old_token_refused_after_grace": old_token_refused,
            },
            "phases": phases,
            "verdict": {
                "requests": ok + failed,
                "ok": ok,
                "failed": failed,
                "rss_kib": [figures.rss.0, figures.rss.1],
                "rss_growth_percent": figures.rss_growth(),
                "fds": [figures.fds.0, figures.fds.1],
                "fds_last_minus_first": figures.fds_last_first,
                "fds_range": [figures.fds_range.0, figures.fds_range.1],
                "threads": [figures.threads.0, figures.threads.1],
                "threads_range": [figures.threads_range.0, figures.threads_range.1],
                "nginx_worker_rss_kib": [nginx_rss_start, nginx_rss_end],
                "targets": verdicts.iter().map(|(text, met)| json!({"target": text, "met": met})).collect::<Vec<_>>(),
            },
            "samples_csv": csv.display().to_string(),
            "table_markdown": table,
        }),
        verdicts,
    };
    let path = tools.work.join("soak.json");
    fs::write(&path, serde_json::to_vec_pretty(&soak.report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("soak report: {}", path.display());
    soak.print_verdicts();
    Ok(soak)
}

/// Waits for a `sealgate-load` and fails unless it completed its run (it exits 0 then, its
/// errors being in its report).
fn wait(mut child: Child, line: &str) -> Result<()> {
    let status = child.wait().with_context(|| format!("waiting for `{line}`"))?;
    ensure!(status.success(), "`{line}` failed ({status})");
    Ok(())
}

/// When the gateway shed requests (outer 503 of admission control), from its log: (seconds
/// since the soak's start, requests). The message is throttled, each line counting itself
/// and the ones suppressed since the previous line, so a count is placed at most a few
/// seconds late.
fn sheds(log: &Path, started: SystemTime) -> Vec<(f64, u64)> {
    let start = started.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()) % 86_400.0;
    let Ok(file) = fs::File::open(log) else { return Vec::new() };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| line.contains(SHED))
        .filter_map(|line| {
            // `2026-12-03T09:02:47.775888Z ... suppressed=N`: the time of day, UTC.
            let clock = line.get(11..line.find('Z')?)?;
            let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
            let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
            let mut t = h * 3600.0 + m * 60.0 + s - start;
            if t < -43_200.0 {
                t += 86_400.0; // past midnight
            }
            let suppressed = line.split("suppressed=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((t, suppressed + 1))
        })
        .collect()
}

/// What the rotations at half time did.
struct Rotation {
    /// When they ran, from the soak's start.
    at: Duration,
    keys_before: String,
    keys_after: String,
    /// Seconds from the rotation until the gateway logged the new key set / tenant file.
    keys_picked_up: Option<f64>,
    tenants_picked_up: Option<f64>,
}

/// `sealgate keys rotate` and `sealgate tenants rotate-token`, as an operator runs them beside
/// the live gateway; the new token goes to `new_token` (mode 0600, never printed). Waits up
/// to 10 s for the gateway to log that it picked both up.
fn rotate(sealgate: &Path, data: &Path, new_token: &Path, log: &Path, started: Instant) -> Result<Rotation> {
    // Only what the gateway logs from now on is read: by half time the log holds a line per
    // request, hundreds of megabytes that reading ten times a second would cost the machine.
    let offset = fs::metadata(log).map_or(0, |m| m.len());
    let lines_with = |text: &str| {
        let mut tail = String::new();
        if let Ok(mut file) = fs::File::open(log) {
            // A read that fails leaves the text short: the wait then just goes on.
            let _ = file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_to_string(&mut tail));
        }
        tail.lines().filter(|l| l.contains(text)).count()
    };
    let grace = format!("{}s", GRACE.as_secs());
    let keys_list = || stdout_of(Command::new(sealgate).args(["keys", "list", "--data-dir"]).arg(data));
    let keys_before = keys_list()?;
    let at = started.elapsed();
    let rotated = Instant::now();
    stdout_of(Command::new(sealgate).args(["keys", "rotate", "--grace", &grace, "--data-dir"]).arg(data))?;
    let token = stdout_of(
        Command::new(sealgate).args(["tenants", "rotate-token", TENANT, "--grace", &grace, "--data-dir"]).arg(data),
    )?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(new_token)
        .with_context(|| format!("creating {}", new_token.display()))?;
    file.write_all(token.trim().as_bytes()).with_context(|| format!("writing {}", new_token.display()))?;
    let keys_after = keys_list()?;
    eprintln!("==> rotated the HPKE keys and the token of '{TENANT}' at {:.1} s (grace {grace})", at.as_secs_f64());
    let (mut keys_picked_up, mut tenants_picked_up) = (None, None);
    while rotated.elapsed() < Duration::from_secs(10) && (keys_picked_up.is_none() || tenants_picked_up.is_none()) {
        if keys_picked_up.is_none() && lines_with(KEYS_SERVED) > 0 {
            keys_picked_up = Some(rotated.elapsed().as_secs_f64());
        }
        if tenants_picked_up.is_none() && lines_with(TENANTS_RELOADED) > 0 {
            tenants_picked_up = Some(rotated.elapsed().as_secs_f64());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(Rotation { at, keys_before, keys_after, keys_picked_up, tenants_picked_up })
}

/// nginx as the OHTTP relay in front of the gateway, from the shipped template; stopped,
/// workers included, when dropped (by the harness).
struct Relay {
    nginx: Nginx,
    url: String,
    master: u32,
    workers: Vec<u32>,
}

impl Relay {
    /// Starts nginx with `deploy/nginx/relay.conf.template` forwarding to `server`, the
    /// gateway's development certificate serving as the relay's too (so clients trust one
    /// CA), and pins its processes to `pin`.
    fn start(server: &Server, data: &Path, pin: Option<&str>) -> Result<Self> {
        let upstream = server.url().rsplit_once(':').map(|(_, port)| port).context("the gateway's port")?;
        let upstream: u16 = upstream.trim_end_matches('/').parse().context("the gateway's port")?;
        let template = deploy_template("relay.conf.template");
        let tls = |name: &str| data.join("tls").join(name).display().to_string();
        let nginx_dir = RefCell::new(None);
        let nginx = Nginx::start(|port, dir| {
            *nginx_dir.borrow_mut() = Some(dir.to_path_buf());
            NginxConfig {
                top_level: String::new(),
                http: render(
                    &template,
                    &[
                        ("SEALGATE_LISTEN", &format!("127.0.0.1:{port}")),
                        ("SEALGATE_UPSTREAM_SERVERS", &format!("server 127.0.0.1:{upstream};")),
                        ("SEALGATE_RELAY_CERT", &tls("server.pem")),
                        ("SEALGATE_RELAY_KEY", &tls("server.key")),
                        ("SEALGATE_GATEWAY_CA", &server.ca().display().to_string()),
                        ("SEALGATE_GATEWAY_NAME", "localhost"),
                        // Nothing per request on disk during half an hour at hundreds a second.
                        ("SEALGATE_ACCESS_LOG", "/dev/null"),
                    ],
                ),
            }
        });
        let dir = nginx_dir.into_inner().context("nginx's directory")?;
        let pid_file = dir.join("nginx.pid");
        let master: u32 = fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?
            .trim()
            .parse()
            .with_context(|| format!("{} holds no pid", pid_file.display()))?;
        let children = fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
        let workers: Vec<u32> = children.split_whitespace().filter_map(|pid| pid.parse().ok()).collect();
        if let Some(cores) = pin {
            for pid in std::iter::once(master).chain(workers.iter().copied()) {
                crate::process::run(
                    Command::new("taskset").args(["-a", "-c", "-p", cores, &pid.to_string()]).stdout(Stdio::null()),
                )?;
            }
        }
        Ok(Self { url: nginx.url(), nginx, master, workers })
    }

    /// The RSS of nginx's workers together, KiB (0 when unreadable).
    fn worker_rss_kib(&self) -> u64 {
        self.workers.iter().filter_map(|&pid| ProcessSample::read(pid, 0.0).ok()).map(|s| s.rss_kib).sum()
    }

    /// Copies nginx's error log (in its temporary directory, gone on drop) to `path`.
    fn keep_error_log(&self, path: &Path) {
        if let Err(e) = fs::write(path, self.nginx.error_log()) {
            eprintln!("==> warning: could not keep nginx's error log in {}: {e}", path.display());
        }
    }
}

/// One reading of the gateway.
#[derive(Debug, Clone, Copy)]
struct ProcessSample {
    /// Seconds since the soak started.
    t_s: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    /// utime + stime, all threads (those that ended included).
    cpu_s: f64,
    /// The machine's 1-minute load average (others' work on the shared cores shows here).
    load1: f64,
}

impl ProcessSample {
    fn read(pid: u32, t_s: f64) -> Result<Self> {
        let status =
            fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        let stat =
            fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The command name (field 2) may hold spaces and parentheses: count after its last
        // `)`, where field 3 is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| -> Result<f64> {
            fields.get(i).and_then(|f| f.parse::<u64>().ok()).map(|t| t as f64).context("unexpected /proc/PID/stat")
        };
        let fds = fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("listing /proc/{pid}/fd"))?.count();
        Ok(Self {
            t_s,
            rss_kib: field("VmRSS:")?,
            fds: fds as u64,
            threads: field("Threads:")?,
            cpu_s: (ticks(11)? + ticks(12)?) / USER_HZ,
            load1: fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .unwrap_or(f64::NAN),
        })
    }
}

/// Samples the gateway every [`SAMPLE_EVERY`] on a thread, on a fixed schedule from the
/// soak's start, each sample appended to the CSV as it is taken (a soak cut short keeps its
/// curve).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<ProcessSample>>>>,
}

impl Sampler {
    fn start(pid: u32, started: Instant, csv: &Path) -> Result<Self> {
        let mut file = fs::File::create(csv).with_context(|| format!("creating {}", csv.display()))?;
        writeln!(file, "time_s,rss_kib,fds,threads,cpu_s")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let csv = csv.to_path_buf();
        let thread = thread::spawn(move || {
            let mut samples = Vec::new();
            for k in 0u32.. {
                let due = started + SAMPLE_EVERY * k;
                loop {
                    if flag.load(Ordering::Relaxed) {
                        return Ok(samples);
                    }
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    thread::sleep((due - now).min(Duration::from_millis(100)));
                }
                let sample = ProcessSample::read(pid, started.elapsed().as_secs_f64())?;
                writeln!(
                    file,
                    "{:.1},{},{},{},{:.2}",
                    sample.t_s, sample.rss_kib, sample.fds, sample.threads, sample.cpu_s
                )
                .with_context(|| format!("writing {}", csv.display()))?;
                samples.push(sample);
            }
            Ok(samples)
        });
        Ok(Self { stop, thread: Some(thread) })
    }

    fn stop(mut self) -> Result<Vec<ProcessSample>> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().context("the sampler was stopped before")?;
        match thread.join() {
            Ok(samples) => samples.context("sampling the gateway"),
            Err(_) => bail!("the sampling thread panicked"),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The compared figures: (baseline, end) medians of the two windows.
struct Figures {
    rss: (f64, f64),
    fds: (f64, f64),
    threads: (f64, f64),
    fds_last_first: i64,
    fds_range: (u64, u64),
    threads_range: (u64, u64),
}

impl Figures {
    fn of(samples: &[ProcessSample], timeline: &Timeline) -> Result<Self> {
        let warmup = timeline.warmup.as_secs_f64();
        let window = timeline.window.as_secs_f64();
        let last = samples.last().context("no samples")?.t_s;
        let after: Vec<&ProcessSample> = samples.iter().filter(|s| s.t_s >= warmup).collect();
        let baseline: Vec<&ProcessSample> = after.iter().copied().filter(|s| s.t_s < warmup + window).collect();
        let end: Vec<&ProcessSample> = after.iter().copied().filter(|s| s.t_s > last - window).collect();
        ensure!(
            !baseline.is_empty() && !end.is_empty() && last - window >= warmup + window,
            "too few samples to compare ({} in all, last at {last:.0} s)",
            samples.len()
        );
        let medians = |f: &dyn Fn(&ProcessSample) -> f64| {
            (median(baseline.iter().map(|s| f(s)).collect()), median(end.iter().map(|s| f(s)).collect()))
        };
        let range = |f: &dyn Fn(&ProcessSample) -> u64| {
            (after.iter().map(|s| f(s)).min().unwrap_or(0), after.iter().map(|s| f(s)).max().unwrap_or(0))
        };
        let (first, final_sample) = (after.first().context("no samples")?, after.last().context("no samples")?);
        Ok(Self {
            rss: medians(&|s| s.rss_kib as f64),
            fds: medians(&|s| s.fds as f64),
            threads: medians(&|s| s.threads as f64),
            fds_last_first: final_sample.fds as i64 - first.fds as i64,
            fds_range: range(&|s| s.fds),
            threads_range: range(&|s| s.threads),
        })
    }

    fn rss_growth(&self) -> f64 {
        (self.rss.1 / self.rss.0 - 1.0) * 100.0
    }
}

/// The samples at every minute (every 10 s in a soak of 5 minutes or less), with the
/// gateway's CPU over the interval before each, as Markdown.
fn markdown_table(samples: &[ProcessSample], shed: &[(f64, u64)], timeline: &Timeline) -> String {
    let step = if timeline.total <= Duration::from_secs(300) { 10.0 } else { 60.0 };
    let nearest = |t: f64| {
        samples
            .iter()
            .min_by(|a, b| (a.t_s - t).abs().total_cmp(&(b.t_s - t).abs()))
            .filter(|s| (s.t_s - t).abs() < 3.0)
    };
    let events = [
        (timeline.rotate_at.as_secs_f64(), "keys and token rotated"),
        (timeline.switch_at.as_secs_f64(), "load switches to the new token"),
        ((timeline.rotate_at + GRACE).as_secs_f64(), "graces end: old keys and token dropped"),
    ];
    let mut table = String::from(
        "| time | RSS (MiB) | fds | threads | gateway CPU (% of one core) | load average | shed (503) | |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let last = samples.last().map_or(0.0, |s| s.t_s);
    let mut t = 0.0;
    while t <= last + 2.5 {
        if let Some(sample) = nearest(t) {
            let cpu = nearest(t - step).filter(|before| sample.t_s > before.t_s).map_or_else(
                || "–".to_owned(),
                |before| format!("{:.0}", (sample.cpu_s - before.cpu_s) / (sample.t_s - before.t_s) * 100.0),
            );
            let within = |at: f64| at > t - step && at <= t;
            let note: Vec<&str> = events.iter().filter(|(at, _)| within(*at)).map(|(_, what)| *what).collect();
            let shed: u64 = shed.iter().filter(|(at, _)| within(*at)).map(|(_, n)| n).sum();
            table.push_str(&format!(
                "| {}:{:02} | {:.1} | {} | {} | {cpu} | {:.2} | {shed} | {} |\n",
                t as u64 / 60,
                t as u64 % 60,
                sample.rss_kib as f64 / 1024.0,
                sample.fds,
                sample.threads,
                sample.load1,
                note.join("; ")
            ));
        }
        t += step;
    }
    table
}

//! Faults injected into the gateway's dependencies and into its own writes, through the real
//! binary (issue 15):
//!
//! - **The KMS goes away after start** (moto behind a [`FaultProxy`] that is cut, so moto
//!   keeps its keys for when it comes back): serving continues on the keys unwrapped at
//!   start; `sealgate keys rotate` fails with a clear error and changes nothing; the
//!   scheduled rotation fails, is logged and audited, and succeeds by itself once the KMS is
//!   back (the retry backs off from 2 s). The KMS down at start (backoff, then a clear
//!   failure) is `kms_providers_cli::aws_kms_through_moto_then_a_missing_kms_stops_start_up`.
//! - **The audit log's disk full** (a small tmpfs): fail closed for changes, fail open for
//!   serving. Every command that would write an audit entry refuses before changing
//!   anything, the scheduled rotation is refused and retried, and requests are still
//!   answered (they write no audit entries). Once there is room, everything works again
//!   and the chain is intact.
//! - **SIGKILL at every write** of `sealgate tenants add`, `keys rotate` and `kms rotate`:
//!   strace's fault injection kills the command at the n-th call of each of `write`,
//!   `fsync`, `fdatasync`, `rename*` and `unlink*`, for every n the command reaches. After
//!   each kill the data dir must be consistent: the lists parse, the audit chain verifies
//!   (an append killed between its line and its head is completed, not taken for
//!   tampering), the command runs to completion when run again, and a gateway starts on
//!   every distinct state the kills left.
//! - **Redis killed under load** (shared replay window): every request gets an answer or an
//!   outer 503 while Redis is gone, and a request answered before the kill, replayed after
//!   Redis came back empty, is refused (the replicas' epoch shows the store lost its memory).
//! - **A replica whose clock is 2 minutes off** (libfaketime): its refusals are the date
//!   problem with its own `Date`, and the SDK corrects its clock from it and retries once.
//!
//! SIGTERM under load is in `shutdown`; nginx reloaded under load is in the load tool's
//! `load_balancer` tests.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sealgate_protocol::{Aead, media_type};
use sealgate_test_support::moto::Moto;
use sealgate_test_support::proxy::FaultProxy;
use sealgate_test_support::redis::Redis;
use sealgate_test_support::{
    CliOutput, Gateway, GatewayOptions, assert_audit_intact, audit_entries, copy_data_dir, encapsulate,
    example_request, sealgate_command,
};

use crate::SEALGATE;
use crate::shared_replay::credit_risk_request;

/// Longest any wait for a log line may take.
const STEP: Duration = Duration::from_secs(30);

fn run(data: &Path, args: &[&str], env: &[(&'static str, String)]) -> CliOutput {
    sealgate_command(SEALGATE, args.iter().copied())
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .run()
}

/// Waits until the gateway's log has a line with every one of `needles`; returns it.
fn wait_for_line(gateway: &Gateway, needles: &[&str]) -> String {
    wait_for_lines(gateway, needles, 1)
}

/// Lines of the gateway's log with every one of `needles`.
fn lines_with(gateway: &Gateway, needles: &[&str]) -> Vec<String> {
    gateway.logs().lines().filter(|l| needles.iter().all(|n| l.contains(n))).map(str::to_owned).collect()
}

/// Waits until the gateway's log has `count` lines with every one of `needles`; returns the
/// last.
fn wait_for_lines(gateway: &Gateway, needles: &[&str], count: usize) -> String {
    let started = Instant::now();
    loop {
        let lines = lines_with(gateway, needles);
        if lines.len() >= count {
            return lines.last().cloned().unwrap_or_default();
        }
        assert!(started.elapsed() < STEP, "no log line with {needles:?} within {STEP:?}:\n{}", gateway.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn assert_answers(gateway: &Gateway) {
    let config = gateway.fetch_key_config().await;
    let answer = gateway.exchange(&config, &credit_risk_request(gateway)).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kms_going_away_after_start_stops_rotation_not_serving_and_rotation_resumes_when_it_is_back() {
    let moto = Moto::start();
    let mut kms = FaultProxy::start(moto.endpoint.trim_start_matches("http://"));
    let env: Vec<(&'static str, String)> =
        moto.env().into_iter().map(|(k, v)| if k == "AWS_ENDPOINT_URL" { (k, kms.url()) } else { (k, v) }).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created = sealgate_command(SEALGATE, ["kms", "--data-dir", data.to_str().unwrap(), "create"])
        .args(["--provider", "aws-kms", "sealgate faults"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .run();
    created.assert_success();
    let key_id = created.stdout.trim().rsplit(' ').next().unwrap().to_owned();
    let hpke_kms = format!("aws-kms:{key_id}");
    let options = env.iter().fold(GatewayOptions::new(SEALGATE).data_dir(&data), |o, (k, v)| o.env(*k, v.as_str()));
    let gateway = Gateway::start(options.args([
        "--aws-kms",
        "--hpke-key-kms",
        hpke_kms.as_str(),
        "--rotate-keys-every",
        "20s",
        "--key-cache-max-age",
        "1s",
        "--request-timeout-secs",
        "1",
    ]));
    assert_answers(&gateway).await;
    let keys_json = data.join("keys/keys.json");
    let before = std::fs::read(&keys_json).unwrap();

    kms.cut();
    assert_answers(&gateway).await;
    let rotate = run(&data, &["keys", "rotate", "--aws-kms", "--hpke-key-kms", &hpke_kms, "--grace", "5m"], &env);
    rotate.assert_failure("the KMS is unavailable");
    assert_eq!(std::fs::read(&keys_json).unwrap(), before, "a failed rotation changes nothing");
    let failed = wait_for_line(&gateway, &["the scheduled key rotation failed", "retry_in_s=2"]);
    assert!(failed.contains("unavailable"), "the reason is named: {failed}");
    assert_answers(&gateway).await;

    kms.restore();
    wait_for_line(&gateway, &["rotated the HPKE keys on schedule"]);
    wait_for_line(&gateway, &["serving a new set of HPKE keys", "keys=[3, 4, 1, 2]"]);
    assert_answers(&gateway).await;
    gateway.stop();
    let refused = audit_entries(&data)
        .into_iter()
        .filter(|e| e["provider"] == "aws-kms" && e["result"].as_str().unwrap_or("").contains("unavailable"))
        .count();
    assert!(refused >= 2, "the refused wraps (the command's and the gateway's) are audited");
    assert_audit_intact(SEALGATE, &data);
}

/// A tmpfs of `size` at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let output =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(path).output();
        let output = output.expect("running mount");
        assert!(
            output.status.success(),
            "this test mounts a small tmpfs to fill a disk, which needs root (CI runs as root): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with one file, until writing fails.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.write_all(&[0]);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_refuses_every_change_and_keeps_serving() {
    let first = Gateway::start(GatewayOptions::new(SEALGATE));
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "64m");
    let data = disk.0.join("data");
    copy_data_dir(&first.data_dir(), &data);
    drop(first);
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data).args([
        "--rotate-keys-every",
        "8s",
        "--key-cache-max-age",
        "1s",
        "--request-timeout-secs",
        "1",
    ]));
    assert_answers(&gateway).await;
    let entries = assert_audit_intact(SEALGATE, &data);
    let watched = ["tenants.json", "keys/keys.json", "kms/keyring.json"];
    let snapshot = || watched.map(|f| std::fs::read(data.join(f)).ok());
    let before = snapshot();

    let filler = fill(&disk.0);
    for args in [
        &["tenants", "add", "late", "--models", "*"][..],
        &["tenants", "rotate-token", "dev"],
        &["keys", "rotate", "--grace", "5m"],
        &["kms", "rotate", "default"],
    ] {
        let refused = run(&data, args, &[]);
        refused.assert_failure("an audited change needs: nothing was changed");
        assert!(refused.stderr.contains("audit.log"), "the error names the audit log: {}", refused.text());
        assert!(refused.stdout.is_empty(), "no token printed: {}", refused.text());
    }
    assert_eq!(snapshot(), before, "nothing changed");
    let failed = wait_for_line(&gateway, &["the scheduled key rotation failed", "bytes free"]);
    assert!(failed.contains("audit.log"), "{failed}");
    assert_answers(&gateway).await;
    assert!(gateway.is_running(), "the gateway keeps serving:\n{}", gateway.logs());

    let rotated = lines_with(&gateway, &["rotated the HPKE keys on schedule"]).len();
    std::fs::remove_file(filler).unwrap();
    wait_for_lines(&gateway, &["rotated the HPKE keys on schedule"], rotated + 1);
    run(&data, &["tenants", "add", "late", "--models", "*"], &[]).assert_success();
    assert_answers(&gateway).await;
    gateway.stop();
    assert!(assert_audit_intact(SEALGATE, &data) > entries);
}

/// The system calls a kill is injected at, each on its own: every file change goes through
/// one of them.
const KILL_POINTS: [&str; 8] = ["write", "fsync", "fdatasync", "rename", "renameat", "renameat2", "unlink", "unlinkat"];

/// A stopped gateway's data dir (embedded default: demo models, the `dev` tenant, two HPKE
/// keys, the local keyring), to copy for every kill.
fn template() -> (tempfile::TempDir, PathBuf) {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    gateway.stop();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_data_dir(&gateway.data_dir(), &data);
    (dir, data)
}

/// Runs `sealgate ARGS --data-dir DATA` under strace, SIGKILLed at the `n`-th call of
/// `syscall`. Returns false when the command finished first (it makes fewer calls).
fn killed_at(data: &Path, args: &[&str], syscall: &str, n: usize) -> bool {
    let output = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("trace={syscall}")])
        .arg("-e")
        .arg(format!("inject={syscall}:signal=KILL:when={n}"))
        .arg(SEALGATE)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("strace (cargo xtask setup installs it)");
    if output.status.signal() == Some(9) || output.status.code() == Some(137) {
        return true;
    }
    assert!(
        output.status.success(),
        "{args:?} failed without being killed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

/// What a gateway start depends on in `data`: file names and contents, but not the audit
/// log (it only grows).
fn state_of(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![data.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(data).unwrap().display().to_string();
            if path.is_dir() {
                if name != "models" {
                    stack.push(path);
                }
            } else if !name.starts_with("audit.") && !name.ends_with(".lock") {
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Kills `args` at every call of every [`KILL_POINTS`] system call it makes, on a fresh copy
/// of the template each time; after each kill runs `check`, then the command again to
/// completion, and checks the audit chain. A gateway starts on each distinct state left.
fn every_kill_leaves_a_consistent_data_dir(args: &[&str], check: impl Fn(&Path)) {
    let (_template_dir, template) = template();
    let mut kills = 0;
    let mut states = BTreeSet::new();
    let mut to_start = Vec::new();
    for syscall in KILL_POINTS {
        for n in 1.. {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            copy_data_dir(&template, &data);
            if !killed_at(&data, args, syscall, n) {
                break;
            }
            kills += 1;
            let verified = sealgate_command(SEALGATE, ["audit", "verify", "--data-dir"]).arg(&data).run();
            assert!(verified.success(), "killed at {syscall} #{n}: the audit chain is broken: {}", verified.text());
            check(&data);
            if states.insert(state_of(&data)) {
                to_start.push((format!("{syscall} #{n}"), dir));
            }
            let again = run(&data, args, &[]);
            assert!(
                again.success() || again.stderr.contains("already exists"),
                "killed at {syscall} #{n}: running {args:?} again failed: {}",
                again.text()
            );
            check(&data);
            assert_audit_intact(SEALGATE, &data);
            assert!(n < 1000, "{args:?} never finished");
        }
    }
    assert!(kills >= 5, "only {kills} kill points were reached: is strace's injection working?");
    for (at, dir) in &to_start {
        let gateway = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(dir.path().join("data")));
        assert!(gateway.is_running(), "killed at {at}");
        gateway.stop();
    }
    eprintln!("{args:?}: {kills} kills, {} distinct states, a gateway started on each", to_start.len());
}

fn listed(data: &Path, args: &[&str]) -> String {
    let output = run(data, args, &[]);
    output.assert_success();
    output.stdout
}

#[test]
fn sigkill_at_any_write_of_tenants_add_leaves_a_consistent_data_dir() {
    every_kill_leaves_a_consistent_data_dir(&["tenants", "add", "killed", "--models", "*"], |data| {
        let list = listed(data, &["tenants", "list"]);
        assert!(list.lines().filter(|l| l.starts_with("killed\t")).count() <= 1, "{list}");
        assert!(list.lines().any(|l| l.starts_with("dev\t")), "the other tenants are kept: {list}");
    });
}

#[test]
fn sigkill_at_any_write_of_keys_rotate_leaves_a_consistent_data_dir() {
    every_kill_leaves_a_consistent_data_dir(&["keys", "rotate", "--grace", "10m"], |data| {
        let list = listed(data, &["keys", "list"]);
        assert!(list.lines().filter(|l| l.contains("\tactive\t")).count() == 2, "one active key per KEM: {list}");
    });
}

#[test]
fn sigkill_at_any_write_of_kms_rotate_leaves_a_consistent_data_dir() {
    every_kill_leaves_a_consistent_data_dir(&["kms", "rotate", "default"], |data| {
        listed(data, &["kms", "list"]);
    });
}

/// Sends `credit-risk` requests on `clients` tasks until `stop`; returns every outer status.
async fn load(gateway: Arc<Gateway>, stop: Arc<AtomicBool>) -> Vec<u16> {
    let config = gateway.fetch_key_config().await;
    let mut statuses = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let inner = credit_risk_request(&gateway).encode();
        let (sealed, _) = encapsulate(&config, Aead::Aes128Gcm, &inner);
        statuses.push(gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed).await.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_closed_and_no_request_is_answered_twice() {
    let mut redis = Redis::start();
    let gateway = Arc::new(Gateway::start(GatewayOptions::new(SEALGATE).args([
        "--replay-store",
        &redis.url(),
        "--replay-window",
        "10s",
    ])));
    let config = gateway.fetch_key_config().await;
    // A request answered before the kill, captured by someone on the path.
    let (captured, _) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(&gateway).encode());
    let first = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), captured.clone()).await;
    assert_eq!(first.status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..3).map(|_| tokio::spawn(load(gateway.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut statuses = Vec::new();
    for load in loads {
        statuses.extend(load.await.unwrap());
    }
    assert!(statuses.iter().all(|s| [200, 503].contains(s)), "only answers and 503s: {statuses:?}");
    assert!(statuses.contains(&200) && statuses.contains(&503), "{statuses:?}");

    // Redis came back empty: the captured request's enc is forgotten there, but not answered.
    let replayed = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), captured.clone()).await;
    replayed.assert_problem(503, "about:blank");
    wait_for_line(&gateway, &["the replay store lost its memory"]);
    // Once the window has passed, new requests are answered again and the capture is too old.
    let started = Instant::now();
    loop {
        let (fresh, _) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(&gateway).encode());
        let status = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), fresh).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(started.elapsed() < Duration::from_secs(20), "never served again:\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let late = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), captured).await;
    assert_eq!(late.status, 200, "the outer layer answers; inside, the capture is refused for its date");
    let metrics = gateway.scrape();
    assert!(metrics.contains("sealgate_requests_refused_total{reason=\"replay-store\"}"), "{metrics}");
}

/// libfaketime's preload library (Debian's `libfaketime`; `cargo xtask setup` installs it).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_is_two_minutes_ahead_names_the_date_and_the_sdk_corrects_and_retries() {
    assert!(Path::new(FAKETIME).exists(), "{FAKETIME} is missing: run `cargo xtask setup`");
    // The data dir (its TLS certificate included) made by a replica with a correct clock.
    let (_template_dir, data) = template();
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .data_dir(&data)
            .env("LD_PRELOAD", FAKETIME)
            .env("FAKETIME", "+120s")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_DONT_RESET", "1"),
    );
    // A request dated by a correct clock: refused with the date problem and the replica's Date.
    let config = gateway.fetch_key_config().await;
    let answer = gateway.exchange(&config, &credit_risk_request(&gateway)).await;
    assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(&answer.body));
    let problem: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(problem["type"], "https://iana.org/assignments/http-problem-types#date", "{problem}");
    let date = answer.header("date").map(|d| String::from_utf8_lossy(d).into_owned()).expect("the replica's Date");
    let replica = httpdate::parse_http_date(&date).unwrap();
    let ahead = replica.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(ahead > Duration::from_secs(100), "the replica's clock is 2 minutes ahead: {date}");

    // The SDK reads that answer, dates the request by the replica's clock and sends it once more.
    let client = gateway.client();
    let scored = client.infer("credit-risk", &example_request("credit-risk")).await.expect("the SDK's retry");
    assert!(!scored.outputs.is_empty());
    let refusals = "sealgate_replay_refusals_total{reason=\"date\"}";
    assert!(gateway.scrape().lines().any(|l| l.starts_with(refusals)), "{}", gateway.scrape());
}

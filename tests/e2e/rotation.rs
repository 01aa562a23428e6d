//! HPKE key rotation through the real binary: `sealgate keys list|rotate|retire` against a
//! running gateway, which picks each change up without a restart.
//!
//! Under load: `sealgate-load` at a fixed rate for 60 s through the SDK while the keys are
//! rotated twice and the oldest retired must report 0 failed requests. A client holding a
//! retired configuration refetches it exactly once, however many of its requests were
//! refused at the same moment (the gateway logs each `GET` of the key list at debug level,
//! which is what is counted), and a client that pinned the retired configuration gets an
//! error instead of silently moving to another key. Bad inputs to the commands are refused
//! with clear errors, and every change is in the audit log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealgate_test_support::{Gateway, GatewayOptions, assert_audit_intact, audit_entries, sealgate, sealgate_command};

use crate::SEALGATE;

/// What the gateway logs for each `GET` of the key list (with `sealgate::gateway=debug`).
const KEY_LIST_SERVED: &str = "served the key configurations";

/// One row of `sealgate keys list`.
#[derive(Debug, Clone)]
struct Row {
    key_id: u8,
    kem: String,
    state: String,
}

fn keys_list(data: &Path) -> Vec<Row> {
    let output = sealgate(SEALGATE, ["keys", "list", "--data-dir", data.to_str().unwrap()]);
    output.assert_success();
    output
        .stdout
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            assert_eq!(cells.len(), 6, "six columns: {line}");
            assert_eq!(cells[5].len(), 64, "a SHA-256: {line}");
            Row { key_id: cells[0].parse().unwrap(), kem: cells[1].into(), state: cells[2].into() }
        })
        .collect()
}

fn keys(data: &Path, args: &[&str]) -> sealgate_test_support::CliOutput {
    sealgate_command(SEALGATE, ["keys"]).args(args).arg("--data-dir").arg(data).run()
}

/// Waits (up to 20 s) until the gateway logged serving a key set whose ids are `ids`.
fn wait_for_key_set(gateway: &Gateway, ids: &[u8]) {
    let wanted = format!("keys={ids:?}");
    let started = Instant::now();
    while !gateway.logs().lines().any(|l| l.contains("serving a new set of HPKE keys") && l.contains(&wanted)) {
        assert!(started.elapsed() < Duration::from_secs(20), "the gateway never served {wanted}:\n{}", gateway.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ids of the accepted keys in advertised order, from `keys list` (which is in creation
/// order): active keys, then retiring ones; by KEM (X25519 first), newest first.
fn advertised(rows: &[Row]) -> Vec<u8> {
    let mut ids = Vec::new();
    for state in ["active", "retiring"] {
        for kem in ["x25519", "x-wing"] {
            ids.extend(rows.iter().rev().filter(|r| r.state == state && r.kem == kem).map(|r| r.key_id));
        }
    }
    ids
}

fn key_list_fetches(gateway: &Gateway) -> usize {
    gateway.logs().lines().filter(|l| l.contains(KEY_LIST_SERVED)).count()
}

fn debug_gateway() -> Gateway {
    Gateway::start(GatewayOptions::new(SEALGATE).env("SEALGATE_LOG", "info,sealgate::gateway=debug"))
}

#[test]
fn a_client_holding_a_retired_config_refetches_exactly_once() {
    let gateway = debug_gateway();
    let data = gateway.data_dir();
    let rows = keys_list(&data);
    assert_eq!(
        rows.iter().map(|r| (r.kem.as_str(), r.state.as_str())).collect::<Vec<_>>(),
        [("x25519", "active"), ("x-wing", "active")]
    );
    let rt = runtime();
    let client = gateway.client();
    let held = rt.block_on(client.key_config()).unwrap();
    assert_eq!(held.key_id(), rows[0].key_id);
    let pinned = gateway.client_builder().pin_key_config_sha256(held.sha256()).build().unwrap();
    rt.block_on(pinned.models()).expect("the pinned configuration is served");
    rt.block_on(client.models()).expect("a first call");
    let before = key_list_fetches(&gateway);
    assert_eq!(before, 2, "one fetch per client:\n{}", gateway.logs());

    keys(&data, &["rotate"]).assert_success();
    keys(&data, &["retire", &held.key_id().to_string()]).assert_success();
    let rows = keys_list(&data);
    assert_eq!(rows.iter().find(|r| r.key_id == held.key_id()).unwrap().state, "retired");
    wait_for_key_set(&gateway, &advertised(&rows));

    // Eight requests refused at once with the ohttp-key problem: one refetch between them.
    let answers = rt.block_on(async {
        let calls: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn({
                    let client = client.clone();
                    async move { client.models().await }
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        answers
    });
    for answer in answers {
        answer.expect("every request succeeds after the one refetch");
    }
    assert_eq!(key_list_fetches(&gateway), before + 1, "exactly one refetch:\n{}", gateway.logs());
    assert_ne!(rt.block_on(client.key_config()).unwrap().key_id(), held.key_id());
    rt.block_on(client.models()).unwrap();
    assert_eq!(key_list_fetches(&gateway), before + 1, "the new configuration is cached");

    // The pinned client may not move to another key: an error, after its one refetch.
    let e = rt.block_on(pinned.models()).expect_err("a pinned configuration that was retired is an error");
    assert!(e.to_string().contains("pin"), "{e}");

    let ops: Vec<String> = audit_entries(&data).iter().map(|e| e["op"].as_str().unwrap().to_owned()).collect();
    for op in ["ohttp-key-create", "ohttp-key-retiring", "ohttp-key-retire"] {
        assert!(ops.iter().any(|o| o == op), "{op} audited: {ops:?}");
    }
    assert_audit_intact(SEALGATE, &data);
}

#[test]
fn key_commands_refuse_bad_input_clearly() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).args(["--key-cache-max-age", "10s"]));
    let data = gateway.data_dir();
    let rows = keys_list(&data);
    let active = rows[0].key_id.to_string();
    keys(&data, &["rotate", "--grace", "30s"])
        .assert_failure("--grace 30s is shorter than the key list's max-age (10 s) plus the request timeout (30 s)");
    keys(&data, &["rotate", "--kem", "rsa"]).assert_failure("'rsa' is not a KEM: x25519, x-wing or all");
    keys(&data, &["retire", &active]).assert_failure("is active; rotate first");
    keys(&data, &["retire", "300"]).assert_failure("300");
    let unused = (0..=255u8).find(|id| rows.iter().all(|r| r.key_id != *id)).unwrap().to_string();
    keys(&data, &["retire", &unused]).assert_failure("there is no key");
    let empty = tempfile::tempdir().unwrap();
    keys(empty.path(), &["list"]).assert_failure("`sealgate serve` makes the first keys on its first start");
    // Nothing changed, and the refusals are audited.
    assert_eq!(keys_list(&data).len(), 2);
    let refused = audit_entries(&data).iter().filter(|e| e["op"] == "ohttp-key-change").count();
    assert!(refused >= 3, "the refused changes are audited");

    // X-Wing alone, with the shortest grace allowed: the X25519 key stays active.
    keys(&data, &["rotate", "--kem", "x-wing", "--grace", "40s"]).assert_success();
    let rows = keys_list(&data);
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (r.kem.as_str(), r.state.as_str())).collect();
    assert_eq!(states, [("x25519", "active"), ("x-wing", "retiring"), ("x-wing", "active")]);
    let ids: Vec<u8> = rows.iter().map(|r| r.key_id).collect();
    assert_eq!(ids.len(), 3, "a fresh id: {ids:?}");
    assert!(ids[2] != ids[0] && ids[2] != ids[1], "a fresh id: {ids:?}");

    // A schedule faster than clients may cache the list is refused at start.
    Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).args(["--rotate-keys-every", "1m"]))
        .assert_stderr_contains(
            "--rotate-keys-every 1m is shorter than --key-cache-max-age plus --request-timeout-secs",
        );
}

#[test]
fn rotation_under_load_fails_no_request() {
    let gateway = debug_gateway();
    let data = gateway.data_dir();
    let load = load_binary();
    let report = tempfile::tempdir().unwrap();
    let json = report.path().join("report.json");
    let child = Command::new(&load)
        .args(["--url", gateway.url(), "--ca"])
        .arg(gateway.ca_path())
        .arg("--token-file")
        .arg(data.join("dev.token"))
        .args(["--model", "credit-risk", "--rate", "20", "--duration", "60s", "--warmup", "1s", "--quiet", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", load.display()));
    let oldest = keys_list(&data);
    let started = Instant::now();
    let at = |secs: u64| {
        let wait = Duration::from_secs(secs).saturating_sub(started.elapsed());
        std::thread::sleep(wait);
    };
    at(12);
    keys(&data, &["rotate"]).assert_success();
    wait_for_key_set(&gateway, &advertised(&keys_list(&data)));
    at(27);
    keys(&data, &["rotate"]).assert_success();
    wait_for_key_set(&gateway, &advertised(&keys_list(&data)));
    at(42);
    // The oldest keys, one of which the load tool's client still holds: retired at once.
    for row in &oldest {
        keys(&data, &["retire", &row.key_id.to_string()]).assert_success();
    }
    let rows = keys_list(&data);
    assert_eq!(rows.iter().filter(|r| r.state == "retired").count(), 2, "{rows:?}");
    wait_for_key_set(&gateway, &advertised(&rows));

    let output = child.wait_with_output().unwrap();
    let text = format!(
        "status {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sealgate-load failed:\n{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let run = &report["runs"][0];
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(run["failed"], 0, "no request may fail during rotation:\n{run}\n{text}");
    assert!(run["ok"].as_u64().unwrap() >= 20 * 55, "the fixed rate was kept:\n{run}");
    // The client moved to a new key once its own was retired: one refetch beyond the first fetch.
    let fetches = key_list_fetches(&gateway);
    assert!((2..=3).contains(&fetches), "{fetches} fetches of the key list:\n{}", gateway.logs());
    gateway.stop();
    assert_audit_intact(SEALGATE, &data);
}

#[test]
fn scheduled_rotation_keeps_serving_and_removes_expired_keys() {
    // The shortest schedule allowed: max-age 2 s + request timeout 1 s.
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).args([
        "--key-cache-max-age",
        "2s",
        "--request-timeout-secs",
        "1",
        "--rotate-keys-every",
        "3s",
    ]));
    let data = gateway.data_dir();
    let rt = runtime();
    let client = gateway.client();
    let removed = || audit_entries(&data).iter().filter(|e| e["op"] == "ohttp-key-remove").count();
    let started = Instant::now();
    let mut served = 0;
    // Calls keep succeeding while the keys rotate every 3 s and expire 3 s later.
    while removed() < 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "no expired key was removed:\n{}", gateway.logs());
        rt.block_on(client.models()).unwrap_or_else(|e| panic!("call {served} failed: {e}\n{}", gateway.logs()));
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = rt.block_on(async {
        let http = gateway.raw_http();
        http.get(gateway.endpoint(sealgate_protocol::GATEWAY_PATH)).send().await.unwrap()
    });
    let max_age: u64 =
        list.headers()["cache-control"].to_str().unwrap().strip_prefix("max-age=").unwrap().parse().unwrap();
    assert!(max_age <= 2, "max-age {max_age} is capped by --key-cache-max-age and the schedule");
    // Expired keys are gone from the list and their key files deleted.
    let rows = keys_list(&data);
    assert!(rows.len() <= 4, "{rows:?}");
    let files = std::fs::read_dir(data.join("keys"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "key"));
    assert_eq!(files.count(), rows.iter().filter(|r| r.state != "retired").count(), "one key file per accepted key");
    assert!(gateway.logs().contains("rotated the HPKE keys on schedule"));
    // Stopped first: the gateway would go on appending rotations while the log is checked.
    gateway.stop();
    assert_audit_intact(SEALGATE, &data);
}

#[test]
fn a_data_dir_from_before_the_key_list_keeps_its_keys() {
    let first = Gateway::start(GatewayOptions::new(SEALGATE));
    first.stop();
    let data = first.data_dir();
    std::fs::remove_file(data.join("keys/keys.json")).unwrap();
    let second = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data));
    assert_eq!(second.key_config_sha256(), first.key_config_sha256(), "the same key, listed again");
    let rows = keys_list(&data);
    assert_eq!(rows.iter().filter(|r| r.state == "active").count(), 2, "{rows:?}");
    assert!(rows.iter().any(|r| r.key_id == first.key_id()));
}

#[test]
fn a_broken_key_list_keeps_the_keys_served_before() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let data = gateway.data_dir();
    let rt = runtime();
    let client = gateway.client();
    rt.block_on(client.models()).unwrap();
    std::fs::write(data.join("keys/keys.json"), b"{not json").unwrap();
    let started = Instant::now();
    while !gateway.logs().contains("the HPKE key list could not be applied; keeping the keys served before") {
        assert!(started.elapsed() < Duration::from_secs(20), "no error logged:\n{}", gateway.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(client.models()).expect("the keys loaded before still serve");
    let fresh = gateway.client();
    rt.block_on(fresh.models()).expect("and are still published");
    assert_eq!(gateway.logs().matches("could not be applied").count(), 1, "logged once, not every second");
    keys(&data, &["list"]).assert_failure("is not a valid key list");
    gateway.stop();
    let restarted = Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).data_dir(&data));
    restarted.assert_stderr_contains("is not a valid key list");
}

/// `sealgate-load` beside the gateway binary cargo built (`cargo build -p sealgate-load`).
fn load_binary() -> PathBuf {
    let path = Path::new(SEALGATE).with_file_name("sealgate-load");
    assert!(path.is_file(), "{} does not exist; build it first: cargo build -p sealgate-load", path.display());
    path
}

/// A runtime for the SDK clients of one test (a client's connections belong to it).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The SDK prepares the next request's encapsulation while one travels (on by default); a
/// prepared context belongs to one key configuration and is dropped, never used, once the
/// keys change: after a rotation and the old keys' retirement exactly one request is
/// refused (the one sealed before the client knew), then every request uses the new key.
#[tokio::test(flavor = "multi_thread")]
async fn prepared_encapsulations_never_outlive_their_key_configuration() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let client = gateway.client();
    let body = serde_json::to_vec(&sealgate_test_support::example_request("credit-risk")).unwrap();
    let request = client.inner_request("POST", "/v2/models/credit-risk/infer", body);
    let mut prepared = Duration::ZERO;
    for _ in 0..5 {
        let (answer, timings) = client.send_timed(&request).await.expect("answered");
        assert_eq!(answer.status, 200);
        prepared += timings.precompute;
    }
    assert!(prepared > Duration::ZERO, "the SDK prepared encapsulations ahead");

    let data = gateway.data_dir();
    keys(&data, &["rotate", "--grace", "1h"]).assert_success();
    for old in [1, 2] {
        keys(&data, &["retire", &old.to_string()]).assert_success();
    }
    wait_for_key_set(&gateway, &[3, 4]);
    for _ in 0..10 {
        let (answer, _) = client.send_timed(&request).await.expect("answered after the rotation");
        assert_eq!(answer.status, 200);
    }
    let refused = "sealgate_requests_refused_total{reason=\"key-config\"} ";
    let scrape = gateway.scrape();
    let count = scrape.lines().find_map(|l| l.strip_prefix(refused)).map(str::trim);
    assert_eq!(count, Some("1"), "one request was sealed to a retired key, none after:\n{scrape}");

    // Off: nothing is prepared ahead.
    let plain = gateway.client_builder().precompute(false).build().unwrap();
    let (answer, timings) = plain.send_timed(&request).await.expect("answered");
    assert_eq!((answer.status, timings.precompute), (200, Duration::ZERO));
}

//! Graceful shutdown through the real `sealgate` binary: on SIGTERM the gateway refuses new
//! connections at once, lets the request in flight finish and exits with status 0; with a
//! short `--drain-timeout` it cuts the request off instead and still exits 0, promptly,
//! although the inference keeps a blocking thread busy; a second signal ends the drain at once.
//! Under load (six requests in flight on six connections) every one of them gets its answer.
//!
//! `tests/models/slow.onnx` runs as long as the request asks (`repeats` [R, 1]: about 70 ms
//! per 1000 R on one core), so a request can be held in flight on purpose. The test waits
//! until the gateway has logged "inference started" for it before it signals. Every wait
//! has a timeout; the only time bound asserted is the drain timeout plus a generous margin.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use sealgate_client::{Client, Error};
use sealgate_test_support::{Gateway, GatewayOptions, slow_model_dir, slow_request};

use tokio::time::timeout;

use crate::SEALGATE;

/// Longest any single step (a request, a log line appearing, the exit) may take.
const STEP: Duration = Duration::from_secs(30);

/// A gateway on the slow model that logs at debug level (for "inference started").
fn slow_gateway(dir: &Path, args: &[&str]) -> Gateway {
    Gateway::start(
        GatewayOptions::new(SEALGATE)
            .models(dir)
            .arg("--danger-allow-plaintext-models")
            .args(args.iter().copied())
            .env("SEALGATE_LOG", "debug"),
    )
}

/// Waits (up to [`STEP`]) until the gateway's log has `needle` at least `count` times.
async fn wait_for_log(gateway: &Gateway, needle: &str, count: usize) {
    let started = Instant::now();
    while gateway.logs().matches(needle).count() < count {
        assert!(
            started.elapsed() < STEP,
            "'{needle}' did not appear {count} times in the log within {STEP:?}:\n{}",
            gateway.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends SIGTERM to the gateway, as an orchestrator stopping it would.
fn terminate(gateway: &Gateway) {
    let status = std::process::Command::new("kill").args(["-TERM", &gateway.pid().to_string()]).status().unwrap();
    assert!(status.success(), "kill -TERM {} failed", gateway.pid());
}

/// Waits (up to [`STEP`]) for the gateway to exit and returns its status.
fn exit_status(gateway: &Gateway) -> ExitStatus {
    let status = gateway.wait_exit(STEP);
    status.unwrap_or_else(|| panic!("the gateway still runs {STEP:?} after SIGTERM:\n{}", gateway.logs()))
}

/// A client with one warm connection and the key configuration already fetched, so the slow
/// request below is the only thing left to do on it.
async fn warm_client(gateway: &Gateway) -> Client {
    let client = gateway.client_builder().timeout(Duration::from_secs(60)).build().unwrap();
    timeout(STEP, client.infer("slow", &slow_request(10))).await.unwrap().unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections() {
    let dir = slow_model_dir();
    let gateway = slow_gateway(dir.path(), &[]);
    let client = warm_client(&gateway).await;
    let started_before = gateway.logs().matches("inference started").count();

    // About 1.3 s of work on one core.
    let slow = tokio::spawn(async move { client.infer("slow", &slow_request(20_000)).await });
    wait_for_log(&gateway, "inference started", started_before + 1).await;
    terminate(&gateway);
    wait_for_log(&gateway, "draining: stopped accepting", 1).await;

    // The listener is gone while the request still runs: the kernel refuses the connection.
    let connect = timeout(STEP, tokio::net::TcpStream::connect(("127.0.0.1", gateway.port()))).await;
    match connect {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(Ok(_)) => panic!("a new connection was accepted while draining:\n{}", gateway.logs()),
        Err(_) => panic!("connecting neither succeeded nor failed within {STEP:?}"),
    }
    assert!(!slow.is_finished(), "the slow request ended before the refusal could be checked:\n{}", gateway.logs());

    let answer = timeout(STEP, slow).await.expect("the slow request hung").unwrap();
    let answer = answer.unwrap_or_else(|e| panic!("the request in flight was not finished: {e}\n{}", gateway.logs()));
    assert!(!answer.outputs.is_empty(), "an answer without outputs: {answer:?}");

    let status = exit_status(&gateway);
    let logs = gateway.logs();
    assert!(status.success(), "exit status {status} after draining:\n{logs}");
    assert!(logs.contains("draining: stopped accepting, 1 connections open"), "{logs}");
    assert!(logs.lines().any(|line| line.ends_with(": drained")), "no 'drained' line:\n{logs}");
    assert!(!logs.contains("cutting them off"), "the drain cut something off:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_timeout_cuts_off_what_is_still_running() {
    const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
    // Well under the request's own run time, so an exit within it shows that neither the
    // connection nor the blocking thread of its inference was waited for.
    const MARGIN: Duration = Duration::from_secs(5);
    let dir = slow_model_dir();
    let gateway = slow_gateway(dir.path(), &["--drain-timeout", "1s"]);
    let client = warm_client(&gateway).await;
    let started_before = gateway.logs().matches("inference started").count();

    // About 10 s of work on one core: far longer than the drain timeout plus the margin.
    let slow = tokio::spawn(async move { client.infer("slow", &slow_request(150_000)).await });
    wait_for_log(&gateway, "inference started", started_before + 1).await;
    terminate(&gateway);
    let signalled = Instant::now();

    let status = exit_status(&gateway);
    let exited_after = signalled.elapsed();
    let logs = gateway.logs();
    assert!(status.success(), "exit status {status} after a cut-off drain:\n{logs}");
    assert!(exited_after < DRAIN_TIMEOUT + MARGIN, "exited {exited_after:?} after SIGTERM:\n{logs}");
    match timeout(STEP, slow).await.expect("the cut-off request hung").unwrap() {
        Err(Error::Transport(_)) => {}
        other => panic!("expected a transport error for the cut-off request, got {other:?}\n{logs}"),
    }
    assert!(logs.contains("--drain-timeout passed with 1 connections still open; cutting them off"), "{logs}");
    assert!(!logs.lines().any(|line| line.ends_with(": drained")), "a cut-off drain logged 'drained':\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_drain_at_once() {
    // Far under the default 30 s drain timeout and the request's own run time.
    const MARGIN: Duration = Duration::from_secs(5);
    let dir = slow_model_dir();
    let gateway = slow_gateway(dir.path(), &[]);
    let client = warm_client(&gateway).await;
    let started_before = gateway.logs().matches("inference started").count();

    // About 10 s of work on one core.
    let slow = tokio::spawn(async move { client.infer("slow", &slow_request(150_000)).await });
    wait_for_log(&gateway, "inference started", started_before + 1).await;
    terminate(&gateway);
    wait_for_log(&gateway, "draining: stopped accepting", 1).await;
    terminate(&gateway);
    let signalled = Instant::now();

    let status = exit_status(&gateway);
    let exited_after = signalled.elapsed();
    let logs = gateway.logs();
    assert!(status.success(), "exit status {status} after a second signal:\n{logs}");
    assert!(exited_after < MARGIN, "exited {exited_after:?} after the second SIGTERM:\n{logs}");
    assert!(matches!(timeout(STEP, slow).await.expect("the cut-off request hung").unwrap(), Err(Error::Transport(_))));
    assert!(logs.contains("second signal: exiting without waiting for the drain"), "{logs}");
    assert!(logs.contains("drain interrupted with 1 connections still open"), "{logs}");
}

/// How many requests are in flight at once in the test under load: each on its own client,
/// so on its own connection.
const UNDER_LOAD: usize = 6;

/// The work of each request under load: about 0.7 s on one core, so the six overlap on any
/// machine and take a few seconds together on the model's two sessions.
const WORK: i64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_lets_every_request_in_flight_finish_with_its_answer() {
    let dir = slow_model_dir();
    // Room for all six at once (by default a request that would wait 20 ms for one of the
    // two sessions is shed), and a queue wait long enough for the last of them: the test is
    // about the drain, not about shedding.
    let gateway =
        slow_gateway(dir.path(), &["--max-in-flight", "12", "--max-queue-delay", "30s", "--queue-timeout", "30s"]);
    let mut clients = Vec::new();
    for _ in 0..UNDER_LOAD {
        clients.push(warm_client(&gateway).await);
    }
    // The answer each request must get, computed before any signal.
    let expected = timeout(STEP, clients[0].infer("slow", &slow_request(WORK))).await.unwrap().unwrap();

    let requests: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(async move { client.infer("slow", &slow_request(WORK)).await }))
        .collect();
    // Signal only once the gateway counts every one of them in flight.
    let started = Instant::now();
    let mut most = 0;
    while most < UNDER_LOAD {
        let scrape = gateway.scrape();
        let now = scrape.lines().find_map(|l| l.strip_prefix("sealgate_requests_in_flight ")?.parse().ok());
        most = most.max(now.unwrap_or(0));
        assert!(started.elapsed() < STEP, "at most {most} of {UNDER_LOAD} requests were in flight at once:\n{scrape}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    terminate(&gateway);

    for (i, request) in requests.into_iter().enumerate() {
        let answer = timeout(STEP, request).await.expect("a request in flight hung").unwrap();
        let answer =
            answer.unwrap_or_else(|e| panic!("request {i} in flight was not finished: {e}\n{}", gateway.logs()));
        assert_eq!(answer.outputs, expected.outputs, "request {i} got another answer");
    }
    let status = exit_status(&gateway);
    let logs = gateway.logs();
    assert!(status.success(), "exit status {status} after draining under load:\n{logs}");
    let open = format!("draining: stopped accepting, {UNDER_LOAD} connections open");
    assert!(logs.contains(&open), "expected '{open}':\n{logs}");
    assert!(logs.lines().any(|line| line.ends_with(": drained")), "no 'drained' line:\n{logs}");
    assert!(!logs.contains("cutting them off"), "the drain cut something off:\n{logs}");
}

//! Admission control and answer limits through the real binary: a gateway one client cannot
//! take down.
//!
//! `tests/models/slow.onnx` (models/make/make_test_models.py) runs as long as the request
//! asks (`repeats` [R, 1]: about R x 4 MFLOP, 70 ms per 1000), so these tests can hold sessions busy on
//! purpose: 64 concurrent requests against 2 sessions each get an answer or a clean 503, none
//! hangs, and the thread count stays bounded; a request that times out keeps its session
//! until its inference really ends. Answers are bounded before they are built: repeated
//! outputs are refused and an answer over `--max-response-bytes` is an inner 413.

use std::path::Path;
use std::time::Duration;

use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, RequestedOutput, TensorData};
use sealgate_client::{Error, ExchangeError};
use sealgate_test_support::{
    Gateway, GatewayOptions, assert_still_serving, slow_model_dir, slow_request, without_timing,
};

use crate::SEALGATE;

fn slow_gateway(dir: &Path, args: &[&str]) -> Gateway {
    Gateway::start(
        GatewayOptions::new(SEALGATE).models(dir).arg("--danger-allow-plaintext-models").args(args.iter().copied()),
    )
}

fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap()
}

/// Inner 503s of the queue, outer 503s of load shedding, and answers: nothing else, and
/// nothing that hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_requests_against_two_sessions_end_cleanly() {
    let dir = slow_model_dir();
    let gateway =
        slow_gateway(dir.path(), &["--sessions-per-model", "2", "--queue-timeout", "200ms", "--max-in-flight", "16"]);
    let client = gateway.client_builder().timeout(Duration::from_secs(30)).build().unwrap();
    // Warm up (the first run of a session allocates), then note the idle thread count.
    client.infer("slow", &slow_request(10)).await.unwrap();
    let idle_threads = threads(gateway.pid());

    let pid = gateway.pid();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(idle_threads));
    let watcher = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(threads(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Each inference takes well over the 200 ms queue timeout (R = 8000: about 0.6 s).
    let calls = (0..64).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), client.infer("slow", &slow_request(8000))).await
        })
    });
    let (mut ok, mut busy, mut shed) = (0, 0, 0);
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Err(_) => panic!("a request hung for 60 s"),
            Ok(Ok(_)) => ok += 1,
            Ok(Err(Error::Exchange(ExchangeError::Inference { status: 503, message }))) => {
                assert!(message.contains("busy") && message.contains("200ms"), "{message}");
                busy += 1;
            }
            Ok(Err(Error::Exchange(ExchangeError::Overloaded { retry_after }))) => {
                assert_eq!(retry_after, Some(Duration::from_secs(1)));
                shed += 1;
            }
            Ok(Err(other)) => panic!("not an answer or a clean 503: {other}\n{}", gateway.logs()),
        }
    }
    watcher.abort();
    println!("64 requests: {ok} answered, {busy} inner 503 (queue), {shed} outer 503 (shed)");
    assert_eq!(ok + busy + shed, 64);
    assert!(ok >= 2, "the two sessions answered");
    assert!(busy > 0, "requests past the queue timeout got the inner 503");
    assert!(shed > 0, "requests past --max-in-flight were shed before decryption");
    // Blocking threads are capped at the sessions + 8, whatever the load.
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!("threads: {idle_threads} idle, {peak} at the peak");
    assert!(peak <= idle_threads + 2 + 8, "thread count grew from {idle_threads} to {peak}");
    assert!(gateway.logs().contains("shedding load"), "{}", gateway.logs());
    // Once the load is gone the gateway serves normally.
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.infer("slow", &slow_request(10)).await.unwrap();
}

/// Sends `n` requests of `repeats` at once; returns (answered, shed before decryption).
async fn burst(client: &sealgate_client::Client, n: usize, repeats: i64) -> (usize, usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.infer("slow", &slow_request(repeats)).await })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Exchange(ExchangeError::Overloaded { retry_after })) => {
                assert_eq!(retry_after, Some(Duration::from_secs(1)));
                shed += 1;
            }
            Err(other) => panic!("not an answer or a shed: {other}"),
        }
    }
    (ok, shed)
}

/// `--max-queue-delay` with `--burst-queue-delay` as tight: with the in-flight cap far away,
/// a burst of short inferences is queued and answered, while the same burst of inferences
/// that each hold a session for about 70 ms is shed beyond what the two sessions can start
/// within the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_queued_for_a_fast_model_and_shed_for_a_slow_one() {
    let dir = slow_model_dir();
    let gateway = slow_gateway(
        dir.path(),
        &[
            "--sessions-per-model",
            "2",
            "--max-in-flight",
            "64",
            "--max-queue-delay",
            "20ms",
            "--burst-queue-delay",
            "20ms",
            "--queue-timeout",
            "30s",
        ],
    );
    let client = gateway.client_builder().timeout(Duration::from_secs(30)).build().unwrap();
    // Short inferences (R = 10: well under a millisecond) set the mean hold time.
    for _ in 0..20 {
        client.infer("slow", &slow_request(10)).await.unwrap();
    }
    let (ok, shed) = burst(&client, 12, 10).await;
    println!("12 short requests at once: {ok} answered, {shed} shed");
    assert_eq!((ok, shed), (12, 0), "twelve requests of a fast model are a burst to queue\n{}", gateway.logs());
    assert!(!gateway.logs().contains("shedding load"), "{}", gateway.logs());

    // Long inferences (R = 1000: about 70 ms each) raise the mean: then, with two sessions,
    // the third request at once would wait about 35 ms, over the 20 ms allowed.
    for _ in 0..40 {
        client.infer("slow", &slow_request(1000)).await.unwrap();
    }
    let (ok, shed) = burst(&client, 12, 1000).await;
    println!("12 long requests at once: {ok} answered, {shed} shed");
    assert!(ok >= 2, "both sessions answered");
    assert!(shed >= 6, "the requests that would wait past the delay were shed, not queued: {ok} answered");
    let logs = gateway.logs();
    assert!(logs.contains("shedding load") && logs.contains("limit=20ms"), "{logs}");
    // Once the burst is over the gateway answers again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.infer("slow", &slow_request(10)).await.unwrap();
}

/// The defaults: a burst of 70 ms inferences after the queue emptied is queued whole (up to
/// `--burst-queue-delay`, 500 ms, of expected wait), while sixteen clients sending them back
/// to back keep the queue standing, and then requests are shed at `--max-queue-delay`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_queued_and_a_standing_queue_is_shed() {
    let dir = slow_model_dir();
    let gateway = slow_gateway(dir.path(), &["--sessions-per-model", "2", "--queue-timeout", "30s"]);
    let client = gateway.client_builder().timeout(Duration::from_secs(30)).build().unwrap();
    for _ in 0..30 {
        client.infer("slow", &slow_request(1000)).await.unwrap();
    }
    let (ok, shed) = burst(&client, 8, 1000).await;
    println!("8 long requests at once after an idle moment: {ok} answered, {shed} shed");
    assert_eq!((ok, shed), (8, 0), "a burst after the queue emptied is queued\n{}", gateway.logs());

    // Sixteen clients back to back for 3 s: about eight times what two sessions answer.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut ok, mut shed) = (0, 0);
                while std::time::Instant::now() < until {
                    match client.infer("slow", &slow_request(1000)).await {
                        Ok(_) => ok += 1,
                        Err(Error::Exchange(ExchangeError::Overloaded { .. })) => {
                            shed += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(other) => panic!("not an answer or a shed: {other}"),
                    }
                }
                (ok, shed)
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for client in clients {
        let (o, s) = client.await.unwrap();
        ok += o;
        shed += s;
    }
    println!("16 clients for 3 s: {ok} answered, {shed} shed");
    let logs = gateway.logs();
    assert!(ok > 0 && shed > 0, "{ok} answered, {shed} shed\n{logs}");
    assert!(logs.contains("standing_queue=true") && logs.contains("limit=20ms"), "{logs}");
}

/// A request whose inference outlives the request timeout keeps its session permit until
/// the inference ends: the next request waits for the session instead of running beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_inference_keeps_its_session_until_it_ends() {
    let dir = slow_model_dir();
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .models(dir.path())
            .arg("--danger-allow-plaintext-models")
            .args(["--sessions-per-model", "1", "--request-timeout-secs", "1", "--queue-timeout", "30s"])
            .env("SEALGATE_LOG", "debug"),
    );
    let client = gateway.client_builder().timeout(Duration::from_secs(60)).build().unwrap();
    client.infer("slow", &slow_request(10)).await.unwrap();

    // About 2.5 s of work against a 1 s request timeout.
    match client.infer("slow", &slow_request(40_000)).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 504, .. })) => {}
        other => panic!("expected an inner 504, got {other:?}"),
    }
    // Sent while the first inference still runs: it must wait for the session (and times
    // out waiting, since the first needs another 1.5 s), never run beside it.
    match client.infer("slow", &slow_request(10)).await {
        Ok(_) | Err(Error::Exchange(ExchangeError::Inference { status: 504, .. })) => {}
        other => panic!("expected an answer or an inner 504, got {other:?}"),
    }
    // Once the first inference has ended the session serves again.
    let started = std::time::Instant::now();
    loop {
        match client.infer("slow", &slow_request(10)).await {
            Ok(_) => break,
            Err(Error::Exchange(ExchangeError::Inference { status: 504, .. }))
                if started.elapsed() < Duration::from_secs(20) => {}
            other => panic!("the session did not come back: {other:?}"),
        }
    }

    let logs = without_timing(&gateway.logs());
    let events: Vec<&str> = logs
        .lines()
        .filter_map(|l| {
            if l.contains("inference started") {
                Some("start")
            } else if l.contains("inference finished") {
                Some("end")
            } else {
                None
            }
        })
        .collect();
    // Never two inferences at once on the one session, and none lost.
    let mut running = 0i32;
    for event in &events {
        running += if *event == "start" { 1 } else { -1 };
        assert!((0..=1).contains(&running), "two inferences ran at once on one session: {events:?}\n{logs}");
    }
    assert_eq!(running, 0, "every inference ended: {events:?}");
    assert!(events.len() >= 6, "warm-up, the timed-out one and the last one ran: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_bounded_before_they_are_built() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).arg("--max-response-bytes").arg("16384"));
    let client = gateway.client();
    let rows = 4000usize;
    let many = InferenceRequest {
        id: None,
        inputs: vec![InputTensor {
            name: "input".into(),
            shape: vec![rows as u64, 20],
            datatype: DataType::Fp32,
            data: TensorData::Float(vec![0.5; rows * 20]),
        }],
        outputs: None,
    };

    // 1,000 duplicate outputs: refused before anything is copied.
    let mut repeated = many.clone();
    repeated.inputs[0].shape = vec![1, 20];
    repeated.inputs[0].data = TensorData::Float(vec![0.5; 20]);
    repeated.outputs = Some(vec![RequestedOutput { name: "probabilities".into() }; 1000]);
    match client.infer("credit-risk", &repeated).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 400, message })) => {
            assert!(message.contains("more than once"), "{message}")
        }
        other => panic!("expected an inner 400, got {other:?}"),
    }
    assert_still_serving(&gateway).await;

    // 4,000 rows: 12,000 values, more than a 16 KiB answer can hold (a value takes at least
    // two bytes), refused before the answer is built.
    match client.infer("credit-risk", &many).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 413, message })) => {
            assert!(message.contains("12000 output values"), "{message}")
        }
        other => panic!("expected an inner 413, got {other:?}"),
    }
    // 2,000 rows fit the element count but not the bytes: the serializer stops at the cap.
    let mut half = many.clone();
    half.inputs[0].shape = vec![2000, 20];
    half.inputs[0].data = TensorData::Float(vec![0.5; 2000 * 20]);
    match client.infer("credit-risk", &half).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 413, message })) => {
            assert!(message.contains("larger than 16384 bytes"), "{message}")
        }
        other => panic!("expected an inner 413, got {other:?}"),
    }
    assert_still_serving(&gateway).await;
}

//! The replay window shared across replicas in a real Redis (Debian's `redis-server` on
//! loopback, `--replay-store`): a request answered by one replica and replayed to another
//! is refused without running the model; when Redis cannot be asked the gateway fails
//! closed with an outer 503 (or, with `--replay-store-fail-open`, answers unchecked), and
//! serves again once Redis is back (after one window, when it came back empty and so forgot
//! the window); Redis's password never reaches the log.

use std::time::Duration;

use sealgate_protocol::{Aead, bhttp, media_type};
use sealgate_test_support::redis::Redis;
use sealgate_test_support::{
    Gateway, GatewayOptions, copy_data_dir, encapsulate, example_request, inner_error, inner_request,
};

use crate::SEALGATE;

pub(crate) fn credit_risk_request(gateway: &Gateway) -> bhttp::Request {
    let body = serde_json::to_vec(&example_request("credit-risk")).unwrap();
    inner_request(gateway, "POST", "/v2/models/credit-risk/infer", body)
}

fn inferences(gateway: &Gateway) -> u64 {
    let needle = "sealgate_inference_duration_seconds_count{model=\"credit-risk\"} ";
    gateway.scrape().lines().find_map(|l| l.strip_prefix(needle)?.trim().parse().ok()).unwrap_or(0)
}

/// Two replicas sharing a Redis replay store; the second runs on a copy of the first's data
/// dir (the same keys).
struct Replicas {
    a: Gateway,
    b: Gateway,
    _copy: tempfile::TempDir,
    _redis: Redis,
}

impl Replicas {
    fn start() -> Self {
        let redis = Redis::start();
        let args = ["--replay-store".to_owned(), redis.url()];
        let a = Gateway::start(GatewayOptions::new(SEALGATE).args(args.iter().cloned()));
        let copy = tempfile::tempdir().unwrap();
        let data = copy.path().join("data");
        copy_data_dir(&a.data_dir(), &data);
        let b = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data).args(args.iter().cloned()));
        Self { a, b, _copy: copy, _redis: redis }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_replayed_to_another_replica_is_refused() {
    let Replicas { a, b, .. } = &Replicas::start();
    assert_eq!(a.key_config_sha256(), b.key_config_sha256(), "the replicas hold the same keys");
    assert!(a.logs().contains("replay window shared in Redis"), "{}", a.logs());

    let config = a.fetch_key_config().await;
    let (sealed, _) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(a).encode());
    let first = a.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(inferences(a), 1);

    // The same bytes to the other replica: refused there, inside the encryption.
    let replayed = b.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed.clone()).await;
    assert_eq!(replayed.status, 200, "{}", replayed.text());
    assert_eq!(inferences(b), 0, "the replay did not run the model on the other replica");
    assert!(b.scrape().contains("sealgate_replay_refusals_total{reason=\"replayed\"} 1"), "{}", b.scrape());

    // A new request is answered by either replica.
    for gateway in [a, b] {
        let response = gateway.exchange(&config, &credit_risk_request(gateway)).await;
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replayed_bytes_say_replay_to_the_client_on_the_other_replica() {
    let Replicas { a, b, .. } = &Replicas::start();
    let config = a.fetch_key_config().await;
    let (sealed, pending) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(a).encode());
    assert_eq!(a.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed.clone()).await.status, 200);
    let replayed = b.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed).await;
    let answer = bhttp::Response::decode(&pending.decapsulate(&replayed.body).unwrap()).unwrap();
    let (status, message) = inner_error(&answer);
    assert_eq!(status, 400);
    assert!(message.contains("replay"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_replay_store_fails_closed_until_it_is_back() {
    const CANARY: &str = "redis-password-canary-7f3a";
    let mut redis = Redis::start_with(Some(CANARY));
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis.password");
    std::fs::write(&password_file, format!("{}\n", redis.password().unwrap())).unwrap();
    // A short window, so the blackout after Redis comes back empty is short too.
    let window = Duration::from_secs(2);
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .env("SEALGATE_REPLAY_STORE", redis.url())
            .args(["--replay-store-password-file", password_file.to_str().unwrap()])
            .args(["--replay-window", "2s"]),
    );
    let config = gateway.fetch_key_config().await;
    let ok = gateway.exchange(&config, &credit_risk_request(&gateway)).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));

    redis.stop();
    let before = inferences(&gateway);
    let (sealed, _) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(&gateway).encode());
    let refused = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed).await;
    refused.assert_problem(503, "about:blank");
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    assert_eq!(inferences(&gateway), before, "nothing ran unchecked");
    let scrape = gateway.scrape();
    assert!(scrape.contains("sealgate_requests_refused_total{reason=\"replay-store\"} 1"), "{scrape}");
    assert!(scrape.contains("sealgate_replay_store_errors_total 1"), "{scrape}");
    assert!(gateway.logs().contains("the replay store cannot be asked; refusing"), "{}", gateway.logs());

    // Redis comes back empty (no persistence): it forgot the window, so for one window the
    // gateway refuses what the lost store might have held (faults.rs tests the replay itself).
    redis.restart();
    let (sealed, _) = encapsulate(&config, Aead::Aes128Gcm, &credit_risk_request(&gateway).encode());
    let blackout = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed).await;
    blackout.assert_problem(503, "about:blank");
    assert!(gateway.logs().contains("the replay store lost its memory"), "{}", gateway.logs());
    tokio::time::sleep(window + Duration::from_secs(1)).await;
    let back = gateway.exchange(&config, &credit_risk_request(&gateway)).await;
    assert_eq!(back.status, 200, "{}", String::from_utf8_lossy(&back.body));
    let logs = gateway.logs();
    assert!(!logs.contains(CANARY) && !gateway.scrape().contains(CANARY), "the Redis password leaked:\n{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_open_answers_unchecked_and_counts_it() {
    let mut redis = Redis::start();
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).args([
        "--replay-store",
        &redis.url(),
        "--replay-store-fail-open",
    ]));
    redis.stop();
    let config = gateway.fetch_key_config().await;
    let response = gateway.exchange(&config, &credit_risk_request(&gateway)).await;
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert!(gateway.scrape().contains("sealgate_replay_store_errors_total 1"));
    assert!(gateway.logs().contains("answering unchecked (--replay-store-fail-open)"), "{}", gateway.logs());
}

#[test]
fn a_bad_replay_store_is_refused_at_start() {
    for (bad, says) in [
        ("127.0.0.1:6379", "redis://HOST:PORT"),
        ("rediss://127.0.0.1:6379", "not supported"),
        ("redis://127.0.0.1", "port"),
        ("redis://:url-password-canary@127.0.0.1:6379", "--replay-store-password-file"),
    ] {
        let failed = Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).args(["--replay-store", bad]));
        failed.assert_stderr_contains(says);
        assert!(!failed.text().contains("url-password-canary"), "the password was repeated:\n{}", failed.text());
    }
    // A wrong password: the gateway starts (Redis may come later) and refuses requests.
    let redis = Redis::start_with(Some("right-password"));
    let secrets = tempfile::tempdir().unwrap();
    let wrong = secrets.path().join("wrong");
    std::fs::write(&wrong, "wrong-password-canary").unwrap();
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .args(["--replay-store", &redis.url(), "--replay-store-password-file"])
            .arg(wrong.to_str().unwrap()),
    );
    assert!(gateway.logs().contains("the replay store does not answer"), "{}", gateway.logs());
    assert!(!gateway.logs().contains("wrong-password-canary"), "{}", gateway.logs());
    let empty = secrets.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    Gateway::start_expecting_failure(
        GatewayOptions::new(SEALGATE)
            .args(["--replay-store", &redis.url(), "--replay-store-password-file"])
            .arg(empty.to_str().unwrap()),
    )
    .assert_stderr_contains("the file is empty");
    Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).arg("--replay-store-fail-open"))
        .assert_stderr_contains("--replay-store");

    // `sealgate config check` refuses the same URL, without printing it either.
    let config = secrets.path().join("sealgate.toml");
    std::fs::write(&config, "replay_store = \"redis://:url-password-canary@127.0.0.1:6379\"\n").unwrap();
    let checked = sealgate_test_support::sealgate(SEALGATE, ["config", "check", config.to_str().unwrap()]);
    checked.assert_failure("--replay-store-password-file");
    assert!(!checked.text().contains("url-password-canary"), "config check printed the password:\n{}", checked.text());
    std::fs::write(&config, format!("replay_store = \"{}\"\n", redis.url())).unwrap();
    let checked = sealgate_test_support::sealgate(SEALGATE, ["config", "check", config.to_str().unwrap()]);
    checked.assert_success().assert_stdout_contains(&format!("replay_store = \"{}\"  # file", redis.url()));
}

//! Metrics and readiness through the real `sealgate` binary: the scrape of `--metrics-listen`
//! after requests of every kind (answered, refused before decapsulation, for a made-up model,
//! with an unknown token) has its counters moved under fixed labels only, and carries no
//! token, token hash, tenant name or client-chosen model name; a real Prometheus server
//! (Debian's `prometheus`, started here on loopback) scrapes the gateway and its query API
//! shows a counter that moved; `/readyz` is ready after start and not while draining; a
//! metrics address equal to the public one, or taken, is refused with a clear error.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealgate_client::{Error, ExchangeError};
use sealgate_test_support::service::free_port;
use sealgate_test_support::{
    Gateway, GatewayOptions, example_request, http_get, sealgate_command, slow_model_dir, slow_request,
};
use sha2::{Digest, Sha256};
use tokio::time::timeout;

use crate::SEALGATE;

/// Longest any single wait may take.
const STEP: Duration = Duration::from_secs(30);

/// A model name no gateway serves, sent by a client: it must never become a label.
const MADE_UP_MODEL: &str = "CANARY-model-4e1d";

/// A malformed bearer token sent by a client.
const CANARY_TOKEN: &str = "tok-CANARY-metrics-5c2a";

/// The value of the sample `series` (`name{labels}` exactly as the gateway writes it), or
/// `None` when the scrape has no such line.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Like [`sample`], but the series must be there.
#[track_caller]
fn value(scrape: &str, series: &str) -> f64 {
    sample(scrape, series).unwrap_or_else(|| panic!("no sample '{series}' in the scrape:\n{scrape}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_counts_requests_under_fixed_labels_only() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let token = gateway.token().expect("the dev token").to_owned();
    let before = gateway.scrape();
    assert_eq!(value(&before, "sealgate_ready"), 1.0);
    assert_eq!(value(&before, r#"sealgate_requests_total{outcome="answered"}"#), 0.0);
    assert!(before.contains(&format!("sealgate_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));

    let client = gateway.client();
    for _ in 0..2 {
        client.infer("breast-cancer", &example_request("breast-cancer")).await.unwrap();
    }
    client.infer("credit-risk", &example_request("credit-risk")).await.unwrap();
    match client.infer(MADE_UP_MODEL, &example_request("credit-risk")).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 404, .. })) => {}
        other => panic!("a made-up model must get an inner 404, got {other:?}"),
    }
    let stranger = gateway.anonymous_client_builder().bearer_token(CANARY_TOKEN).build().unwrap();
    match stranger.infer("breast-cancer", &example_request("breast-cancer")).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 401, .. })) => {}
        other => panic!("a bad token must get an inner 401, got {other:?}"),
    }
    // Refused before decapsulation: a wrong media type and a body that does not decrypt.
    let outer = gateway.raw_http().post(gateway.endpoint(sealgate_protocol::GATEWAY_PATH));
    let wrong_type = outer.try_clone().unwrap().header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    let config = gateway.fetch_key_config().await;
    let (mut sealed, _) = sealgate_test_support::encapsulate(&config, sealgate_protocol::Aead::Aes128Gcm, b"inner");
    *sealed.last_mut().unwrap() ^= 1;
    let tampered = outer.header("content-type", "message/ohttp-req").body(sealed).send().await.unwrap();
    assert_eq!(tampered.status(), 400);

    let scrape = gateway.scrape();
    let at_least = |series: &str, n: f64| {
        let v = value(&scrape, series);
        assert!(v >= n, "{series} is {v}, expected at least {n}:\n{scrape}");
    };
    assert_eq!(value(&scrape, r#"sealgate_inner_responses_total{model="breast-cancer",class="2xx"}"#), 2.0);
    assert_eq!(value(&scrape, r#"sealgate_inner_responses_total{model="credit-risk",class="2xx"}"#), 1.0);
    // The made-up model's request is counted under "other"; the bad token's is a 4xx of the
    // served model it named.
    assert_eq!(value(&scrape, r#"sealgate_inner_responses_total{model="other",class="4xx"}"#), 1.0);
    assert_eq!(value(&scrape, r#"sealgate_inner_responses_total{model="breast-cancer",class="4xx"}"#), 1.0);
    at_least(r#"sealgate_requests_total{outcome="answered"}"#, 5.0);
    assert_eq!(value(&scrape, r#"sealgate_requests_total{outcome="refused"}"#), 2.0);
    assert_eq!(value(&scrape, r#"sealgate_requests_refused_total{reason="media-type"}"#), 1.0);
    assert_eq!(value(&scrape, r#"sealgate_requests_refused_total{reason="decrypt"}"#), 1.0);
    assert_eq!(value(&scrape, r#"sealgate_requests_total{outcome="shed"}"#), 0.0);
    at_least(&format!("sealgate_requests_by_key_total{{key_id=\"{}\"}}", gateway.key_id()), 5.0);
    assert_eq!(value(&scrape, r#"sealgate_inference_duration_seconds_count{model="breast-cancer"}"#), 2.0);
    assert_eq!(value(&scrape, r#"sealgate_queue_wait_duration_seconds_count{model="credit-risk"}"#), 1.0);
    at_least("sealgate_decapsulation_duration_seconds_count", 5.0);
    at_least("sealgate_request_duration_seconds_count", 7.0);
    assert_eq!(value(&scrape, "sealgate_requests_in_flight"), 0.0);
    assert_eq!(value(&scrape, r#"sealgate_sessions{model="breast-cancer"}"#), 2.0);
    assert_eq!(value(&scrape, r#"sealgate_sessions_busy{model="breast-cancer"}"#), 0.0);
    assert!(value(&scrape, "sealgate_models_load_duration_seconds") > 0.0, "{scrape}");
    // The embedded default's first start wraps the audit log's key, seals both demo models and
    // wraps its two HPKE keys with the local KMS, then unwraps the models to load them and the
    // HPKE keys to serve them.
    assert_eq!(value(&scrape, r#"sealgate_kms_calls_total{provider="local",op="generate"}"#), 2.0);
    assert_eq!(value(&scrape, r#"sealgate_kms_calls_total{provider="local",op="wrap"}"#), 3.0);
    assert_eq!(value(&scrape, r#"sealgate_kms_calls_total{provider="local",op="unwrap"}"#), 4.0);
    assert_eq!(sample(&scrape, r#"sealgate_kms_failures_total{provider="local",op="unwrap"}"#), None);

    // Nothing a client chose, no token and no tenant reaches the scrape.
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    for needle in [MADE_UP_MODEL, CANARY_TOKEN, &token, &token[3..], &hash, &hash[..16], "tenant"] {
        assert!(!scrape.contains(needle), "the scrape contains '{needle}':\n{scrape}");
    }
    // Only the served models and "other" are model labels.
    for line in scrape.lines().filter(|l| l.contains("model=\"")) {
        let model = line.split("model=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        assert!(["breast-cancer", "credit-risk", "other"].contains(&model), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_labels_only_with_metrics_tenant_label() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).arg("--metrics-tenant-label"));
    gateway.client().infer("credit-risk", &example_request("credit-risk")).await.unwrap();
    let scrape = gateway.scrape();
    assert_eq!(value(&scrape, r#"sealgate_tenant_requests_total{tenant="dev"}"#), 1.0);
    let token = gateway.token().unwrap();
    assert!(!scrape.contains(token) && !scrape.contains(&hex::encode(Sha256::digest(token.as_bytes()))));
}

#[test]
fn a_metrics_address_equal_to_the_public_one_or_taken_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    for (listen, metrics) in [
        (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
        (format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")),
    ] {
        let output = sealgate_command(SEALGATE, ["serve", "--listen", &listen, "--metrics-listen", &metrics])
            .arg("--data-dir")
            .arg(data.path())
            .run();
        output.assert_failure("--metrics-listen").assert_failure("is the public address");
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let output = sealgate_command(SEALGATE, ["serve", "--listen", "127.0.0.1:0", "--metrics-listen", &taken])
        .arg("--data-dir")
        .arg(data.path())
        .run();
    output.assert_failure(&format!("--metrics-listen {taken}: binding"));
    let output = sealgate_command(SEALGATE, ["serve", "--metrics-listen", "localhost-ish"]).run();
    output.assert_failure("--metrics-listen");
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Prometheus server, if installed (`cargo xtask setup` installs it as root).
fn prometheus_binary() -> Option<&'static Path> {
    [Path::new("/usr/bin/prometheus")].into_iter().find(|p| p.is_file())
}

/// `text` percent-encoded for a query string.
fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_counters() {
    let Some(prometheus) = prometheus_binary() else {
        eprintln!(
            "SKIPPED: /usr/bin/prometheus is not installed (`sudo apt-get install prometheus` or `cargo xtask setup`)"
        );
        return;
    };
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sealgate\n    \
         static_configs:\n      - targets: ['{}']\n",
        gateway.metrics_addr()
    );
    std::fs::write(&config, yaml).unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    let _prometheus = Killed(child);

    let client = gateway.client();
    for _ in 0..3 {
        client.infer("breast-cancer", &example_request("breast-cancer")).await.unwrap();
    }
    let query = r#"sealgate_inner_responses_total{job="sealgate",model="breast-cancer",class="2xx"}"#;
    let path = format!("/api/v1/query?query={}", query_encode(query));
    let started = Instant::now();
    let mut last = String::new();
    loop {
        // Prometheus may not listen yet, so a refused connection is retried like an empty answer.
        if std::net::TcpStream::connect(&web).is_ok() {
            let (status, body) = http_get(&web, &path);
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let seen = answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
            if status == 200 && seen == Some(3.0) {
                break;
            }
            last = body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus did not report {query} = 3 within 60 s; last answer: {last}\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The scrape target is healthy, as Prometheus sees it.
    let (_, body) = http_get(&web, &format!("/api/v1/query?query={}", query_encode(r#"up{job="sealgate"}"#)));
    assert!(body.contains(r#""1"]"#), "{body}");
}

/// Waits (up to [`STEP`]) until the gateway's log has `needle` at least `count` times.
async fn wait_for_log(gateway: &Gateway, needle: &str, count: usize) {
    let started = Instant::now();
    while gateway.logs().matches(needle).count() < count {
        assert!(
            started.elapsed() < STEP,
            "'{needle}' did not appear {count} times within {STEP:?}:\n{}",
            gateway.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_ready_after_start_and_not_while_draining() {
    let dir = slow_model_dir();
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .models(dir.path())
            .arg("--danger-allow-plaintext-models")
            .env("SEALGATE_LOG", "debug"),
    );
    assert_eq!(gateway.metrics_get("/readyz"), (200, "ready".to_owned()));
    assert_eq!(gateway.get("/readyz").await.status, 200, "the public /readyz agrees");
    assert_eq!(gateway.metrics_get("/healthz").0, 200);

    let client = gateway.client_builder().timeout(Duration::from_secs(60)).build().unwrap();
    timeout(STEP, client.infer("slow", &slow_request(10))).await.unwrap().unwrap();
    let started_before = gateway.logs().matches("inference started").count();
    // About 1.3 s of work on one core.
    let slow = tokio::spawn(async move { client.infer("slow", &slow_request(20_000)).await });
    wait_for_log(&gateway, "inference started", started_before + 1).await;
    let busy = gateway.scrape();
    assert_eq!(value(&busy, r#"sealgate_sessions_busy{model="slow"}"#), 1.0, "{busy}");
    assert_eq!(value(&busy, "sealgate_requests_in_flight"), 1.0, "{busy}");

    let status = Command::new("kill").args(["-TERM", &gateway.pid().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for_log(&gateway, "draining: stopped accepting", 1).await;
    assert_eq!(gateway.metrics_get("/readyz"), (503, "draining".to_owned()));
    let draining = gateway.scrape();
    assert_eq!((value(&draining, "sealgate_ready"), value(&draining, "sealgate_draining")), (0.0, 1.0));

    let answer = timeout(STEP, slow).await.expect("the request in flight finishes").unwrap();
    assert!(answer.is_ok(), "the request in flight is answered: {answer:?}");
    let exit = gateway.wait_exit(STEP).unwrap_or_else(|| panic!("still running:\n{}", gateway.logs()));
    assert!(exit.success(), "{exit}");
}

#[test]
fn not_ready_while_the_kms_is_unreachable_at_start() {
    // A model sealed with AWS KMS (moto), then the KMS goes away before the gateway starts.
    let mut moto = sealgate_test_support::moto::Moto::start();
    let env = moto.env();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        sealgate_command(SEALGATE, args).arg("--data-dir").arg(&data).envs(env.iter().map(|(k, v)| (*k, v))).run()
    };
    let created = run(&["kms", "create", "--provider", "aws-kms", "sealgate metrics e2e"]);
    created.assert_success();
    let key_id = created.stdout.trim().rsplit(' ').next().unwrap().to_owned();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let input = sealgate_test_support::demo_model_path("credit-risk");
    let sealed = models.join("credit-risk.sealed");
    let (input, sealed) = (input.to_str().unwrap(), sealed.to_str().unwrap());
    let seal = ["seal", "--model", "credit-risk", "--version", "1", "--kms", "aws-kms", "--key-id", &key_id];
    run(&[&seal[..], &[input, "-o", sealed]].concat()).assert_success();
    moto.stop();

    // The metrics port is fixed here, so it can be probed before the gateway would print it.
    let metrics = format!("127.0.0.1:{}", free_port());
    let options = env.iter().fold(GatewayOptions::new(SEALGATE), |o, (k, v)| o.env(*k, v.as_str()));
    let options = options.data_dir(&data).models(&models).args(["--aws-kms", "--kms-retries", "3"]);
    let options = options.args(["--metrics-listen", &metrics]);
    let gateway = std::thread::spawn(move || sealgate_test_support::Gateway::start_expecting_failure(options));

    let started = Instant::now();
    let mut last = (0, String::new());
    let scrape = loop {
        if std::net::TcpStream::connect(&metrics).is_ok() {
            last = http_get(&metrics, "/readyz");
            if last == (503, "starting: the KMS is failing or unreachable".to_owned()) {
                break http_get(&metrics, "/metrics").1;
            }
        }
        assert!(!gateway.is_finished(), "the gateway exited before /readyz said the KMS is failing: {last:?}");
        assert!(started.elapsed() < STEP, "/readyz never said the KMS is failing; last answer {last:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(value(&scrape, "sealgate_ready"), 0.0);
    assert!(value(&scrape, r#"sealgate_kms_failures_total{provider="aws-kms",op="unwrap"}"#) >= 1.0, "{scrape}");
    let failed = gateway.join().unwrap();
    failed.assert_stderr_contains("the KMS stayed unreachable after 3 retries");
}

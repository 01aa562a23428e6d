//! Three gateway replicas behind a real nginx (Debian's) on loopback, configured from the
//! templates in `deploy/nginx/`: `sealgate-load` runs through nginx for a minute while one
//! replica is killed with SIGKILL and started again, and the report must count no failed
//! request; the restarted replica must serve again.
//!
//! Both ways of balancing are run: TCP/TLS pass-through (`passthrough.conf.template`, TLS
//! ends in the gateway; balanced per connection, so the load tool speaks HTTP/1.1 with a pool
//! of connections) and the Oblivious HTTP relay (`relay.conf.template`, nginx terminates TLS
//! and forwards the encapsulated bodies; balanced per request, so HTTP/2 is fine). The
//! replicas share one replay window in Redis (Debian's `redis-server`), as a deployment
//! must: a request whose connection broke is sent again by the SDK sealed afresh, and a
//! replica that remembered the first copy would refuse a resent one.
//!
//! Three nginx reloads (`nginx -s reload`) in the middle of a run fail no request either:
//! over HTTP/2 none is even resent (GOAWAY); over HTTP/1.1 a request sent on a keep-alive
//! connection just as the old worker closes it is resent by the SDK, sealed afresh.
//!
//! `SEALGATE_LB_SECONDS` shortens (or lengthens) the minute for a quick local run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sealgate_test_support::nginx::{Nginx, NginxConfig, deploy_template, render};
use sealgate_test_support::redis::Redis;
use sealgate_test_support::service::free_port;
use sealgate_test_support::{Gateway, GatewayOptions, copy_data_dir, gateway_binary};

/// The replica that is killed and restarted (not the first: its data dir is the harness's).
const VICTIM: usize = 1;

/// Requests kept in flight (closed loop), about two per replica: the victim dies with
/// requests in flight on its connections, whose answers never come.
const CONCURRENCY: &str = "6";

fn seconds() -> u64 {
    std::env::var("SEALGATE_LB_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60).max(6)
}

/// Replicas on fixed ports (nginx names them), sharing a Redis replay window; replica 0 runs
/// on a fresh data dir, the others on copies of it (the same sealed keys, models, tenants
/// and local keyring).
struct Replicas {
    gateways: Vec<Option<Gateway>>,
    ports: Vec<u16>,
    data: Vec<Option<PathBuf>>,
    redis: Redis,
    _copies: tempfile::TempDir,
}

impl Replicas {
    fn start(count: usize) -> Self {
        let redis = Redis::start();
        let copies = tempfile::tempdir().expect("a temporary directory");
        let mut replicas =
            Replicas { gateways: Vec::new(), ports: Vec::new(), data: Vec::new(), redis, _copies: copies };
        for index in 0..count {
            let data = (index > 0).then(|| replicas._copies.path().join(format!("replica-{index}")));
            if let (Some(first), Some(data)) = (replicas.gateways.first().and_then(Option::as_ref), &data) {
                copy_data_dir(&first.data_dir(), data);
            }
            replicas.ports.push(free_port());
            replicas.data.push(data);
            let gateway = replicas.launch(index);
            replicas.gateways.push(Some(gateway));
        }
        replicas
    }

    fn launch(&self, index: usize) -> Gateway {
        let listen = format!("127.0.0.1:{}", self.ports[index]);
        let mut options =
            GatewayOptions::new(gateway_binary()).args(["--listen", &listen, "--replay-store", &self.redis.url()]);
        if let Some(data) = &self.data[index] {
            options = options.data_dir(data);
        }
        Gateway::start(options)
    }

    fn first(&self) -> &Gateway {
        self.gateways[0].as_ref().expect("replica 0 runs")
    }

    fn get(&self, index: usize) -> &Gateway {
        self.gateways[index].as_ref().expect("the replica runs")
    }

    /// SIGKILL: no drain, connections and requests in flight break.
    fn kill(&mut self, index: usize) {
        if let Some(gateway) = self.gateways[index].take() {
            let status = gateway.stop();
            assert!(status.is_some_and(|s| !s.success()), "the replica was still running and was killed: {status:?}");
        }
    }

    fn restart(&mut self, index: usize) {
        let gateway = self.launch(index);
        self.gateways[index] = Some(gateway);
    }

    /// nginx `server` lines for the upstream block.
    fn upstream_servers(&self) -> String {
        let servers: Vec<String> =
            self.ports.iter().map(|port| format!("server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;")).collect();
        servers.join("\n        ")
    }
}

/// Inference requests the replica has answered since it started.
fn inferences(gateway: &Gateway) -> u64 {
    let needle = "sealgate_inference_duration_seconds_count{model=\"credit-risk\"} ";
    gateway.scrape().lines().find_map(|l| l.strip_prefix(needle)?.trim().parse().ok()).unwrap_or(0)
}

fn load_command(url: &str, first: &Gateway, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealgate-load"));
    command
        .args(["--url", url, "--model", "credit-risk", "--quiet"])
        .arg("--ca")
        .arg(first.ca_path())
        .arg("--token-file")
        .arg(first.data_dir().join("dev.token"))
        .args(extra)
        .env_remove("SEALGATE_URL")
        .env_remove("SEALGATE_TOKEN")
        .stdin(Stdio::null());
    command
}

/// `sealgate-load` through `nginx` for `duration` at [`CONCURRENCY`] after a one-second
/// warm-up, resending a request that got no answer up to `retries` times; its report goes to
/// `json`.
fn spawn_load(
    nginx: &Nginx,
    first: &Gateway,
    duration: &str,
    retries: &str,
    http: &str,
    json: &Path,
) -> std::process::Child {
    load_command(
        &nginx.url(),
        first,
        &["--concurrency", CONCURRENCY, "--duration", duration, "--warmup", "1s", "--retries", retries, http],
    )
    .arg("--json")
    .arg(json)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting sealgate-load")
}

fn read_report(json: &Path, output: &std::process::Output) -> serde_json::Value {
    let text = format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sealgate-load failed:\n{text}");
    serde_json::from_slice(&std::fs::read(json).unwrap_or_else(|e| panic!("reading the report: {e}\n{text}")))
        .expect("the JSON report parses")
}

fn errors_total(run: &serde_json::Value) -> u64 {
    run["errors"].as_object().expect("errors by kind").values().map(|t| t["count"].as_u64().expect("a count")).sum()
}

/// The run through `nginx` with the victim killed a third of the way in and started again
/// at half time; then short fresh runs, whose new connections nginx balances onto the
/// restarted replica too.
fn run_through(nginx: &Nginx, replicas: &mut Replicas, http: &str) {
    let seconds = seconds();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let duration = format!("{seconds}s");
    let run = spawn_load(nginx, replicas.first(), &duration, "2", http, &json);

    std::thread::sleep(Duration::from_secs(1 + seconds / 3));
    let before = inferences(replicas.get(VICTIM));
    assert!(before > 0, "the victim served before it was killed\n{}", nginx.access_log());
    replicas.kill(VICTIM);
    std::thread::sleep(Duration::from_secs(seconds / 6));
    replicas.restart(VICTIM);

    let output = run.wait_with_output().expect("waiting for sealgate-load");
    let report = read_report(&json, &output);
    let run = &report["runs"][0];
    assert_eq!(
        (run["failed"].as_u64(), errors_total(run)),
        (Some(0), 0),
        "no request failed although a replica was killed: {run}\n{}",
        nginx.error_log()
    );
    assert!(run["ok"].as_u64().is_some_and(|ok| ok > before), "requests were answered throughout: {run}");
    // The kill broke requests in flight, and the report says how many were sent again.
    assert!(run["resent"].as_u64().is_some_and(|n| n > 0), "requests broken by the kill were resent: {run}");

    // Fresh clients, one connection each: nginx (least_conn, round robin among equals) sends
    // new connections to the restarted replica too. One client with a pool would not show it
    // reliably: its pool keeps reusing the connections that were ready first.
    let mut served_again = false;
    for attempt in 0..9 {
        let json = dir.path().join(format!("after-{attempt}.json"));
        let output = load_command(&nginx.url(), replicas.first(), &["--requests", "2", "--warmup", "0s", http])
            .arg("--json")
            .arg(&json)
            .output()
            .expect("running sealgate-load");
        let after = read_report(&json, &output);
        assert_eq!(errors_total(&after["runs"][0]), 0, "{after}");
        if inferences(replicas.get(VICTIM)) > 0 {
            served_again = true;
            break;
        }
    }
    assert!(
        served_again,
        "the restarted replica :{} serves again\n{}\n{}\n{}",
        replicas.ports[VICTIM],
        nginx.access_log(),
        nginx.error_log(),
        replicas.get(VICTIM).logs()
    );

    // nginx spread the load: every replica's address is in its access log.
    let log = nginx.access_log();
    for port in &replicas.ports {
        assert!(log.contains(&format!("127.0.0.1:{port}")), "nginx sent nothing to replica :{port}\n{log}");
    }
}

#[test]
fn tls_pass_through_over_three_replicas_survives_a_killed_replica() {
    let mut replicas = Replicas::start(3);
    let template = deploy_template("passthrough.conf.template");
    let servers = replicas.upstream_servers();
    let nginx = Nginx::start(|port, dir| NginxConfig {
        top_level: render(
            &template,
            &[
                ("SEALGATE_LISTEN", &format!("127.0.0.1:{port}")),
                ("SEALGATE_UPSTREAM_SERVERS", &servers),
                ("SEALGATE_ACCESS_LOG", &Nginx::access_log_path(dir).display().to_string()),
            ],
        ),
        http: String::new(),
    });
    // Per connection: HTTP/1.1, so the tool's pool of connections spreads over the replicas.
    run_through(&nginx, &mut replicas, "--http1");
}

/// nginx as the Oblivious HTTP relay (`relay.conf.template`) in front of `replicas`.
fn relay(replicas: &Replicas) -> Nginx {
    let template = deploy_template("relay.conf.template");
    let servers = replicas.upstream_servers();
    let tls = replicas.first().data_dir().join("tls");
    let path = |name: &str| tls.join(name).display().to_string();
    Nginx::start(|port, dir| NginxConfig {
        top_level: String::new(),
        http: render(
            &template,
            &[
                ("SEALGATE_LISTEN", &format!("127.0.0.1:{port}")),
                ("SEALGATE_UPSTREAM_SERVERS", &servers),
                // The replicas' development certificate (localhost, 127.0.0.1) serves as the
                // relay's too, so the clients trust one CA.
                ("SEALGATE_RELAY_CERT", &path("server.pem")),
                ("SEALGATE_RELAY_KEY", &path("server.key")),
                ("SEALGATE_GATEWAY_CA", &path("ca.pem")),
                ("SEALGATE_GATEWAY_NAME", "localhost"),
                ("SEALGATE_ACCESS_LOG", &Nginx::access_log_path(dir).display().to_string()),
            ],
        ),
    })
}

#[test]
fn ohttp_relay_over_three_replicas_survives_a_killed_replica() {
    let mut replicas = Replicas::start(3);
    let nginx = relay(&replicas);
    // Per request: HTTP/2 from the client is balanced as well as HTTP/1.1.
    run_through(&nginx, &mut replicas, "--http2");
}

/// How often nginx is reloaded during a run of the reload tests.
const RELOADS: u64 = 3;

/// `sealgate-load` through the relay while nginx is reloaded [`RELOADS`] times (`nginx -s
/// reload`: the old worker finishes what it holds, a new one takes over); returns the run's
/// report after checking that no request failed.
fn reloaded_under_load(http: &str, retries: &str) -> serde_json::Value {
    let replicas = Replicas::start(2);
    let nginx = relay(&replicas);
    let seconds = seconds().min(30);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let duration = format!("{seconds}s");
    let run = spawn_load(&nginx, replicas.first(), &duration, retries, http, &json);

    // Reloads spread over the measured part of the run, after the one-second warm-up.
    for _ in 0..RELOADS {
        std::thread::sleep(Duration::from_secs(1) + Duration::from_secs(seconds) / (RELOADS as u32 + 1));
        nginx.reload();
    }
    let output = run.wait_with_output().expect("waiting for sealgate-load");
    let report = read_report(&json, &output);
    let run = report["runs"][0].clone();
    assert_eq!(
        (run["failed"].as_u64(), errors_total(&run)),
        (Some(0), 0),
        "no request failed across {RELOADS} reloads ({http}, --retries {retries}): {run}\n{}",
        nginx.error_log()
    );
    assert!(run["ok"].as_u64().is_some_and(|ok| ok > 0), "requests were answered: {run}");
    let log = nginx.error_log();
    assert_eq!(log.matches("signal 1 (SIGHUP) received").count() as u64, RELOADS, "{log}");
    run
}

/// HTTP/2 to the relay: nginx's old worker says GOAWAY, so the client moves to a new
/// connection before it sends anything more; not one request fails or has to be resent,
/// with the load tool's resend turned off (`--retries 0`).
#[test]
fn reloading_the_relay_under_http2_load_fails_and_resends_nothing() {
    let run = reloaded_under_load("--http2", "0");
    assert_eq!(run["resent"].as_u64(), Some(0), "{run}");
}

/// HTTP/1.1 keep-alive to the relay: the old worker closes its idle connections, and a
/// request can be on its way on one as it closes (the race every HTTP/1.1 client must
/// handle, RFC 9112 section 9.3.1). The SDK's default resend (2, sealed afresh, so the
/// gateway never sees the same request twice) makes that no failure.
#[test]
fn reloading_the_relay_under_http1_load_fails_no_request_with_the_sdk_resend() {
    reloaded_under_load("--http1", "2");
}

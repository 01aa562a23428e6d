//! Who may call: tenants and bearer tokens through the real binary.
//!
//! `sealgate tenants add|list|rotate-token|remove` against a data dir, and a running gateway
//! that checks the token inside the encryption: 401 with `WWW-Authenticate: Bearer` for no,
//! an empty, a malformed, an unknown, a removed or a rotated-out token and for a token sent
//! only in the outer headers; 403 for a model outside the allowlist (and `GET /v2/models`
//! listing only allowed models); 429 with `Retry-After` over the rate. After each refusal a
//! good request succeeds. Tenant changes reach the running gateway without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use sealgate_protocol::{KeyConfig, bhttp, media_type};
use sealgate_test_support::{
    Gateway, GatewayOptions, assert_audit_intact, assert_still_serving, audit_entries, encapsulate, example_path,
    inner_error, list_files, sealgate, sealgate_command,
};

use crate::SEALGATE;

fn add(data: &Path, name: &str, extra: &[&str]) -> String {
    let output = sealgate_command(SEALGATE, ["tenants", "add", name]).args(extra).arg("--data-dir").arg(data).run();
    output.assert_success();
    output.stdout.trim().to_owned()
}

/// An inner request with exactly the given `authorization` field (none when `None`).
fn request(gateway: &Gateway, method: &str, path: &str, authorization: Option<&str>) -> bhttp::Request {
    let authority = gateway.url().trim_start_matches("https://");
    let mut request = bhttp::Request::new(method, "https", authority, path);
    sealgate_test_support::date_now(&mut request);
    if let Some(value) = authorization {
        request.headers.push(bhttp::Field::new("authorization", value));
    }
    if method == "POST" {
        request.headers.push(bhttp::Field::new("content-type", "application/json"));
        request.body = std::fs::read(example_path(path.split('/').nth(3).unwrap_or("breast-cancer")))
            .unwrap_or_else(|_| std::fs::read(example_path("breast-cancer")).unwrap());
    }
    request
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts an inner 401 with a Bearer challenge; returns the message.
#[track_caller]
fn assert_unauthorized(response: &bhttp::Response, case: &str) -> String {
    let (status, message) = inner_error(response);
    assert_eq!(status, 401, "{case}: {message}");
    let challenge = String::from_utf8_lossy(response.header("www-authenticate").unwrap_or_default()).into_owned();
    assert!(challenge.starts_with("Bearer"), "{case}: WWW-Authenticate is '{challenge}'");
    message
}

async fn infer(gateway: &Gateway, config: &KeyConfig, model: &str, token: Option<&str>) -> bhttp::Response {
    let auth = token.map(bearer);
    gateway.exchange(config, &request(gateway, "POST", &format!("/v2/models/{model}/infer"), auth.as_deref())).await
}

/// Polls until `check` holds (the gateway reloads the tenant file within about a second).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(15), "{what}: not within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_cli_prints_a_token_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = add(&data, "clinic", &["--models", "breast-cancer,credit-risk", "--rate", "50", "--burst", "100"]);
    assert!(token.starts_with("sg_") && token.len() == 46, "token '{token}'");
    assert!(token[3..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "base64url: {token}");
    let second = add(&data, "bank", &["--models", "*"]);
    assert_ne!(token, second);

    // The token is in no file of the data dir, in no listing, in no audit entry.
    for file in list_files(&data) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!sealgate_test_support::contains(&bytes, &token.as_bytes()[3..]), "{} holds the token", file.display());
    }
    let list = sealgate(SEALGATE, ["tenants", "list", "--data-dir", data.to_str().unwrap()]);
    list.assert_success();
    assert!(!list.stdout.contains(&token[3..]) && !list.stderr.contains(&token[3..]));
    let clinic = list.stdout.lines().find(|l| l.starts_with("clinic\t")).unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(
        clinic.contains("breast-cancer,credit-risk") && clinic.contains("50/s") && clinic.contains("\t100\t"),
        "{clinic}"
    );
    assert!(list.stdout.lines().any(|l| l.starts_with("bank\t*\t-\t-\t")), "{}", list.stdout);

    // Bad input: a clear error, nothing on stdout, nothing changed.
    let before = std::fs::read(data.join("tenants.json")).unwrap();
    for (args, needle) in [
        (vec!["add", "clinic", "--models", "*"], "already exists"),
        (vec!["add", "Bad Name", "--models", "*"], "tenant names are"),
        (vec!["add", "x", "--models", ""], "--models takes"),
        (vec!["add", "x", "--models", "*", "--rate", "0"], "--rate"),
        (vec!["add", "x", "--models", "*", "--burst", "5"], "--burst needs --rate"),
        (vec!["rotate-token", "nobody"], "no tenant 'nobody'"),
        (vec!["rotate-token", "clinic", "--grace", "soon"], "--grace"),
        (vec!["remove", "nobody"], "no tenant 'nobody'"),
    ] {
        let output = sealgate_command(SEALGATE, ["tenants"]).args(args).arg("--data-dir").arg(&data).run();
        output.assert_failure(needle);
    }
    assert_eq!(std::fs::read(data.join("tenants.json")).unwrap(), before, "refused changes change nothing");

    let rotated = sealgate(SEALGATE, ["tenants", "rotate-token", "clinic", "--data-dir", data.to_str().unwrap()]);
    rotated.assert_success();
    assert!(rotated.stdout.trim().starts_with("sg_") && rotated.stdout.trim() != token);
    assert!(rotated.stderr.contains("keeps working for 1day"), "the default grace is 24h: {}", rotated.stderr);
    sealgate(SEALGATE, ["tenants", "remove", "bank", "--data-dir", data.to_str().unwrap()]).assert_success();

    // Every change and every refusal is audited, without a token.
    let ops: Vec<(String, String)> = audit_entries(&data)
        .iter()
        .map(|e| (e["op"].as_str().unwrap().to_owned(), e["result"].as_str().unwrap().to_owned()))
        .collect();
    for op in ["tenant-add", "tenant-rotate-token", "tenant-remove"] {
        assert!(ops.iter().any(|(o, r)| o == op && r == "ok"), "{op} audited: {ops:?}");
    }
    assert!(ops.iter().any(|(o, r)| o == "tenant-add" && r.contains("already exists")), "{ops:?}");
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    assert!(!log.contains(&token[3..]) && !log.contains(rotated.stdout.trim()));
    assert_audit_intact(SEALGATE, &data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_inside_the_encryption() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let dev = gateway.token().expect("the embedded default writes dev.token").to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(gateway.data_dir().join("dev.token")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "dev.token is private");
    assert!(gateway.logs().contains("dev token: "), "the path is printed:\n{}", gateway.logs());

    assert_eq!(infer(&gateway, &config, "breast-cancer", Some(&dev)).await.status, 200);

    // No token, an empty field, a malformed token, an unknown well-formed token.
    let message = assert_unauthorized(&infer(&gateway, &config, "breast-cancer", None).await, "no token");
    assert!(message.contains("bearer token"), "{message}");
    for (case, field) in [
        ("empty field", String::new()),
        ("empty token", "Bearer ".to_owned()),
        ("malformed", "Bearer hunter2".to_owned()),
        ("wrong scheme", format!("Basic {dev}")),
        ("unknown", bearer(&format!("sg_{}", "A".repeat(43)))),
    ] {
        let response =
            gateway.exchange(&config, &request(&gateway, "POST", "/v2/models/breast-cancer/infer", Some(&field))).await;
        assert_unauthorized(&response, case);
        assert_eq!(infer(&gateway, &config, "breast-cancer", Some(&dev)).await.status, 200, "after {case}");
    }

    // A token in the outer headers only: the outer Authorization header never authorizes.
    let inner = request(&gateway, "POST", "/v2/models/breast-cancer/infer", None);
    let (enc, pending) = encapsulate(&config, sealgate_protocol::Aead::Aes128Gcm, &inner.encode());
    let outer = gateway
        .raw_http()
        .post(gateway.endpoint(sealgate_protocol::GATEWAY_PATH))
        .header("content-type", media_type::OHTTP_REQUEST)
        .header("authorization", bearer(&dev))
        .body(enc)
        .send()
        .await
        .unwrap();
    assert_eq!(outer.status(), 200);
    let body = outer.bytes().await.unwrap();
    let response = bhttp::Response::decode(&pending.decapsulate(&body).unwrap()).unwrap();
    assert_unauthorized(&response, "outer Authorization only");

    // The health and listing routes inside the encryption need a token too.
    let response = gateway.exchange(&config, &request(&gateway, "GET", "/v2/models", None)).await;
    assert_unauthorized(&response, "GET /v2/models without a token");
    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlists_rates_rotation_and_removal_reach_a_running_gateway() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let data = gateway.data_dir();

    // A tenant allowed one model, added while the gateway runs.
    let clinic = add(&data, "clinic", &["--models", "breast-cancer"]);
    eventually("the new tenant is picked up", || async {
        infer(&gateway, &config, "breast-cancer", Some(&clinic)).await.status == 200
    })
    .await;
    let (status, message) = inner_error(&infer(&gateway, &config, "credit-risk", Some(&clinic)).await);
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("may not use model 'credit-risk'"), "{message}");
    let (status, _) = inner_error(&infer(&gateway, &config, "no-such-model", Some(&clinic)).await);
    assert_eq!(status, 403, "a restricted tenant learns nothing about models it may not use");
    let metadata =
        gateway.exchange(&config, &request(&gateway, "GET", "/v2/models/credit-risk", Some(&bearer(&clinic)))).await;
    assert_eq!(metadata.status, 403);
    let list = gateway.exchange(&config, &request(&gateway, "GET", "/v2/models", Some(&bearer(&clinic)))).await;
    assert_eq!(list.status, 200);
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let names: Vec<&str> = list["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["breast-cancer"], "only the tenant's models are listed");
    assert_eq!(infer(&gateway, &config, "breast-cancer", Some(&clinic)).await.status, 200, "after the 403s");

    // A burst over the rate: 429 with Retry-After, and the other tenants are unaffected.
    let bank = add(&data, "bank", &["--models", "credit-risk", "--rate", "0.2", "--burst", "2"]);
    eventually("the rate-limited tenant is picked up", || async {
        infer(&gateway, &config, "credit-risk", Some(&bank)).await.status != 401
    })
    .await;
    let mut limited = None;
    for _ in 0..4 {
        let response = infer(&gateway, &config, "credit-risk", Some(&bank)).await;
        if response.status == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a burst of 5 against --burst 2 hits the rate limit");
    let retry_after: u64 =
        std::str::from_utf8(limited.header("retry-after").expect("Retry-After")).unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    assert!(inner_error(&limited).1.contains("over its request rate"));
    assert_eq!(
        infer(&gateway, &config, "breast-cancer", Some(&clinic)).await.status,
        200,
        "other tenants still served"
    );

    // Rotation: the old token works during the grace period, not after it.
    let rotated = sealgate_command(SEALGATE, ["tenants", "rotate-token", "clinic", "--grace", "3s", "--data-dir"])
        .arg(&data)
        .run();
    rotated.assert_success();
    let new = rotated.stdout.trim().to_owned();
    eventually("the rotated token is picked up", || async {
        infer(&gateway, &config, "breast-cancer", Some(&new)).await.status == 200
    })
    .await;
    assert_eq!(
        infer(&gateway, &config, "breast-cancer", Some(&clinic)).await.status,
        200,
        "old token within the grace"
    );
    eventually("the old token stops after its grace", || async {
        infer(&gateway, &config, "breast-cancer", Some(&clinic)).await.status == 401
    })
    .await;
    assert_unauthorized(&infer(&gateway, &config, "breast-cancer", Some(&clinic)).await, "rotated out");
    assert_eq!(infer(&gateway, &config, "breast-cancer", Some(&new)).await.status, 200);

    // Removal, picked up at once on SIGHUP.
    sealgate_command(SEALGATE, ["tenants", "remove", "clinic", "--data-dir"]).arg(&data).run().assert_success();
    let hup = std::process::Command::new("kill").args(["-HUP", &gateway.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    eventually("the removed tenant is refused", || async {
        infer(&gateway, &config, "breast-cancer", Some(&new)).await.status == 401
    })
    .await;
    assert!(gateway.logs().contains("signal=true"), "the SIGHUP reload is logged:\n{}", gateway.logs());
    assert_still_serving(&gateway).await;

    // A tenant file that does not parse is logged and the tenants loaded before stay.
    std::fs::write(data.join("tenants.json"), b"{ not json").unwrap();
    eventually("the broken file is noticed", || async { gateway.logs().contains("could not be read") }).await;
    assert_still_serving(&gateway).await;
    let log = gateway.logs();
    for token in [&clinic, &bank, &new] {
        assert!(!log.contains(&token[3..]), "a token reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenants_means_no_access_and_anonymous_needs_a_danger_flag() {
    let models = sealgate_test_support::demo_models_dir();
    let closed = Gateway::start(
        GatewayOptions::new(SEALGATE).models(&models).arg("--danger-allow-plaintext-models").without_test_tenant(),
    );
    assert!(closed.token().is_none());
    assert!(closed.logs().contains("there are no tenants"), "{}", closed.logs());
    let config = closed.fetch_key_config().await;
    assert_unauthorized(&infer(&closed, &config, "breast-cancer", None).await, "no tenants");

    let open = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .models(&models)
            .arg("--danger-allow-plaintext-models")
            .arg("--danger-allow-anonymous")
            .without_test_tenant(),
    );
    assert!(open.logs().contains("--danger-allow-anonymous"), "a loud warning:\n{}", open.logs());
    let config = open.fetch_key_config().await;
    assert_eq!(infer(&open, &config, "breast-cancer", None).await.status, 200);
    // A token that is present is still checked.
    assert_unauthorized(&infer(&open, &config, "breast-cancer", Some("sg_nonsense")).await, "bad token, anonymous on");
}

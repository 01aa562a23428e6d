//! Decrypted request data never reaches the gateway's logs, metrics or files: with debug
//! logging on, canary feature values, a canary request id (also sent as a model name) and
//! bearer tokens (the real `dev` token, and malformed and unknown canary tokens) are sent in
//! good and bad requests; afterwards neither the metrics scrape nor the captured
//! stdout/stderr nor any file in the gateway's temporary directory contains them (but
//! `dev.token`, the file whose job is to hold the token). A second gateway serves a model
//! whose ONNX Runtime error text quotes the input: the value stays out of the log.

use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, TensorData};
use sealgate_client::{Error, ExchangeError};
use sealgate_test_support::{
    DEMO_MODELS, Gateway, GatewayOptions, STDERR_FILE, STDOUT_FILE, assert_still_serving, contains, example_request,
    inner_error, inner_request, list_files, without_timing,
};
use sha2::Digest;

use crate::SEALGATE;

const CANARY_VALUE: f64 = 987_654.321;
const CANARY_ID: &str = "CANARY-7f3a9c";
const CANARY_TOKEN: &str = "tok-CANARY-91b2";
/// Well-formed (sg_ + 43 base64url characters) but held by no tenant.
const CANARY_UNKNOWN_TOKEN: &str = "sg_CANARYunknownTokenXXXXXXXXXXXXXXXXXXXXXXXXX";

/// What must not appear anywhere: the canaries as sent, the value as FP32 would print it,
/// in scientific notation, the strings hex-encoded, and the gateway's real token.
fn needles(real_token: &str) -> Vec<String> {
    let mut needles: Vec<String> = ["987654.321", "987654", "9.87654", CANARY_ID, CANARY_TOKEN, CANARY_UNKNOWN_TOKEN]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    needles.push(hex::encode(CANARY_ID));
    needles.push(hex::encode(CANARY_TOKEN));
    // The random part of the real token, as text and hex-encoded.
    needles.push(real_token[3..].to_owned());
    needles.push(hex::encode(&real_token[3..]));
    needles
}

/// The example request of `model` with every feature of the first row replaced by the
/// canary value and the canary id.
fn canary_request(model: &str) -> InferenceRequest {
    let mut request = example_request(model);
    let input = &mut request.inputs[0];
    let features = input.shape[1] as usize;
    let TensorData::Float(data) = &mut input.data else { panic!("{model} example data are floats") };
    data[..features].fill(CANARY_VALUE);
    request.id = Some(CANARY_ID.to_owned());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_never_reach_logs_or_files() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).env("SEALGATE_LOG", "debug"));
    let token = gateway.token().expect("the dev token").to_owned();
    assert_eq!(CANARY_UNKNOWN_TOKEN.len(), token.len(), "the unknown canary is well-formed");
    let client = gateway.client();

    // Good requests: the canaries were decrypted and used (the id comes back).
    for model in DEMO_MODELS {
        let response = client.infer(model, &canary_request(model)).await.unwrap();
        assert_eq!(response.id.as_deref(), Some(CANARY_ID), "{model}");
    }

    // Bad requests that carry the canaries into the gateway's error paths.
    let wrong_shape = InferenceRequest {
        id: Some(CANARY_ID.to_owned()),
        inputs: vec![InputTensor {
            name: "input".into(),
            shape: vec![1, 29],
            datatype: DataType::Fp32,
            data: TensorData::Float(vec![CANARY_VALUE; 29]),
        }],
        outputs: None,
    };
    let mut wrong_name = canary_request("breast-cancer");
    wrong_name.inputs[0].name = CANARY_ID.to_owned();
    let mut out_of_range = canary_request("credit-risk");
    let TensorData::Float(data) = &mut out_of_range.inputs[0].data else { unreachable!() };
    data[3] = 1e300;
    for (case, model, request) in [
        ("wrong shape", "breast-cancer", wrong_shape),
        ("wrong tensor name", "breast-cancer", wrong_name),
        ("out of range", "credit-risk", out_of_range),
    ] {
        match client.infer(model, &request).await {
            Err(Error::Exchange(ExchangeError::Inference { status: 400, .. })) => {}
            other => panic!("{case}: expected an inference error 400, got {other:?}"),
        }
    }
    let body = format!(r#"{{"id": "{CANARY_ID}", "inputs": [{CANARY_VALUE}, "#).into_bytes();
    let request = inner_request(&gateway, "POST", "/v2/models/breast-cancer/infer", body.clone());
    let response = client.send(&request).await.unwrap();
    assert_eq!(inner_error(&response).0, 400, "invalid JSON");
    // Tokens that are refused: malformed and unknown canaries, inside the encryption and in
    // the outer headers.
    for bad in [CANARY_TOKEN, CANARY_UNKNOWN_TOKEN] {
        let rejected = gateway.anonymous_client_builder().bearer_token(bad).build().unwrap();
        match rejected.infer("breast-cancer", &canary_request("breast-cancer")).await {
            Err(Error::Exchange(ExchangeError::Inference { status: 401, message })) => {
                assert!(!message.contains(bad), "{message}")
            }
            other => panic!("a bad token must get an inner 401, got {other:?}"),
        }
    }
    let outer = gateway
        .raw_http()
        .post(gateway.endpoint(sealgate_protocol::GATEWAY_PATH))
        .header("content-type", "message/ohttp-req")
        .header("authorization", format!("Bearer {CANARY_UNKNOWN_TOKEN}"))
        .body(vec![0u8; 64])
        .send()
        .await
        .unwrap();
    assert!(matches!(outer.status().as_u16(), 400 | 422), "garbage with an outer token is refused before decryption");

    // A failed TLS handshake is logged at debug level only: proof the level took effect.
    let refused = gateway.raw_http_with_versions(&[&rustls::version::TLS12]).get(gateway.endpoint("/healthz")).send();
    assert!(refused.await.is_err(), "a TLS 1.2 client must be refused");

    // A made-up model named after the canary id: the metrics count it as "other".
    match client.infer(CANARY_ID, &canary_request("breast-cancer")).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 404, .. })) => {}
        other => panic!("an unknown model must get an inner 404, got {other:?}"),
    }

    assert_still_serving(&gateway).await;
    // The metrics scrape carries none of the canaries, the token or its stored hash.
    let scrape = gateway.scrape();
    assert!(scrape.contains("sealgate_requests_total"), "a real scrape:\n{scrape}");
    let token_hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    for needle in needles(&token).iter().chain([&token_hash, &token]) {
        assert!(!contains(scrape.as_bytes(), needle.as_bytes()), "the scrape contains '{needle}':\n{scrape}");
    }
    gateway.stop();

    let logs = without_timing(&gateway.logs());
    assert!(logs.contains("DEBUG") && logs.contains("TLS handshake failed"), "debug logging is not on:\n{logs}");
    let served = logs.lines().filter(|l| l.contains("served encapsulated request")).count();
    assert!(served >= 7, "the requests above reached the gateway ({served} logged):\n{logs}");
    assert!(logs.contains("elapsed_ms=#"), "without_timing understood the log format:\n{logs}");
    for needle in needles(&token) {
        assert!(!contains(logs.as_bytes(), needle.as_bytes()), "the log contains '{needle}':\n{logs}");
    }

    let files = list_files(gateway.root());
    for name in [STDOUT_FILE, STDERR_FILE] {
        assert!(files.iter().any(|f| f.ends_with(name)), "{name} is among the files checked: {files:?}");
    }
    assert!(files.iter().any(|f| f.starts_with(gateway.data_dir())), "the data directory is checked: {files:?}");
    let token_file = gateway.data_dir().join("dev.token");
    assert!(files.contains(&token_file), "the dev token file exists: {files:?}");
    for file in files.iter().filter(|f| **f != token_file) {
        let bytes = std::fs::read(file).unwrap();
        let is_log = file.ends_with(STDOUT_FILE) || file.ends_with(STDERR_FILE);
        let text = if is_log { without_timing(&String::from_utf8_lossy(&bytes)).into_bytes() } else { bytes };
        for needle in needles(&token) {
            assert!(!contains(&text, needle.as_bytes()), "{} contains '{needle}'", file.display());
        }
    }
}

/// ONNX Runtime's error for an out-of-range Gather index quotes the index: the client gets
/// a fixed inner 400 naming the integer input, the gateway logs only the status, and the
/// runtime's own log line loses its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_runtime_error_texts_never_reach_the_log() {
    let models = tempfile::tempdir().unwrap();
    std::fs::copy(
        sealgate_test_support::repo_root().join("tests/models/gather.onnx"),
        models.path().join("gather.onnx"),
    )
    .unwrap();
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .models(models.path())
            .arg("--danger-allow-plaintext-models")
            .env("SEALGATE_LOG", "debug"),
    );
    let request = InferenceRequest {
        id: None,
        inputs: vec![InputTensor {
            name: "index".into(),
            shape: vec![1],
            datatype: DataType::Int64,
            data: TensorData::Int(vec![987_654_321]),
        }],
        outputs: None,
    };
    // An index out of range is the caller's mistake: an inner 400 with a fixed text that
    // names the integer input, never the value.
    match gateway.client().infer("gather", &request).await {
        Err(Error::Exchange(ExchangeError::Inference { status: 400, message })) => {
            assert!(message.contains("'index'") && message.contains("outside its vocabulary"), "{message}");
            assert!(!message.contains("987654"), "the index reached the client: {message}");
        }
        other => panic!("expected an inner 400, got {other:?}"),
    }
    let good = InferenceRequest {
        inputs: vec![InputTensor { data: TensorData::Int(vec![2]), ..request.inputs[0].clone() }],
        ..request.clone()
    };
    assert!(gateway.client().infer("gather", &good).await.is_ok(), "the model still answers");
    gateway.stop();
    let logs = without_timing(&gateway.logs());
    assert!(logs.contains("inner_status=400"), "the refusal is logged by status:\n{logs}");
    assert!(logs.contains("ONNX Runtime logged a message"), "the runtime's own line is kept, without text:\n{logs}");
    assert!(!logs.contains("987654321") && !logs.contains("987654"), "the index reached the log:\n{logs}");
}

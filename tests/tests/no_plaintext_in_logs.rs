//! Decrypted request data never reaches the gateway's logs or files: with debug logging on,
//! canary feature values, a canary request id and a canary bearer token are sent in good and
//! bad requests; afterwards neither the captured stdout/stderr nor any file in the gateway's
//! temporary directory contains them.

use sealgate_client::Error;
use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, TensorData};
use sealgate_tests::{
    DEMO_MODELS, Gateway, GatewayOptions, STDERR_FILE, STDOUT_FILE, assert_still_serving, contains, example_request,
    inner_error, inner_request, list_files, without_timing,
};

const CANARY_VALUE: f64 = 987_654.321;
const CANARY_ID: &str = "CANARY-7f3a9c";
const CANARY_TOKEN: &str = "tok-CANARY-91b2";

/// What must not appear anywhere: the canaries as sent, the value as FP32 would print it,
/// in scientific notation, and the strings hex-encoded.
fn needles() -> Vec<String> {
    let mut needles: Vec<String> =
        ["987654.321", "987654", "9.87654", CANARY_ID, CANARY_TOKEN].iter().map(|s| (*s).to_owned()).collect();
    needles.push(hex::encode(CANARY_ID));
    needles.push(hex::encode(CANARY_TOKEN));
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
    let gateway = Gateway::start(GatewayOptions::new().env("SEALGATE_LOG", "debug"));
    let client = gateway.client_builder().bearer_token(CANARY_TOKEN).build().unwrap();

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
            Err(Error::Inference { status: 400, .. }) => {}
            other => panic!("{case}: expected an inference error 400, got {other:?}"),
        }
    }
    let body = format!(r#"{{"id": "{CANARY_ID}", "inputs": [{CANARY_VALUE}, "#).into_bytes();
    let mut request = inner_request(&gateway, "POST", "/v2/models/breast-cancer/infer", body);
    request.headers.push(sealgate_protocol::bhttp::Field::new("authorization", format!("Bearer {CANARY_TOKEN}")));
    let response = client.send(&request).await.unwrap();
    assert_eq!(inner_error(&response).0, 400, "invalid JSON");

    // A failed TLS handshake is logged at debug level only: proof the level took effect.
    let refused = gateway.raw_http_with_versions(&[&rustls::version::TLS12]).get(gateway.endpoint("/healthz")).send();
    assert!(refused.await.is_err(), "a TLS 1.2 client must be refused");

    assert_still_serving(&gateway).await;
    gateway.stop();

    let logs = without_timing(&gateway.logs());
    assert!(logs.contains("DEBUG") && logs.contains("TLS handshake failed"), "debug logging is not on:\n{logs}");
    let served = logs.lines().filter(|l| l.contains("served encapsulated request")).count();
    assert!(served >= 7, "the requests above reached the gateway ({served} logged):\n{logs}");
    assert!(logs.contains("elapsed_ms=#"), "without_timing understood the log format:\n{logs}");
    for needle in needles() {
        assert!(!contains(logs.as_bytes(), needle.as_bytes()), "the log contains '{needle}':\n{logs}");
    }

    let files = list_files(gateway.root());
    for name in [STDOUT_FILE, STDERR_FILE] {
        assert!(files.iter().any(|f| f.ends_with(name)), "{name} is among the files checked: {files:?}");
    }
    assert!(files.iter().any(|f| f.starts_with(gateway.data_dir())), "the data directory is checked: {files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let is_log = file.ends_with(STDOUT_FILE) || file.ends_with(STDERR_FILE);
        let text = if is_log { without_timing(&String::from_utf8_lossy(&bytes)).into_bytes() } else { bytes };
        for needle in needles() {
            assert!(!contains(&text, needle.as_bytes()), "{} contains '{needle}'", file.display());
        }
    }
}

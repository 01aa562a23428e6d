//! Bad input through the real `sealgate` binary: broken encapsulation, key configuration
//! mismatches, wrong media types, oversized bodies, inner requests that are not Binary
//! HTTP, unknown models, invalid tensors, and TLS 1.2. Every case checks the precise error
//! and then that the gateway still serves a good inference.

use std::time::Duration;

use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, TensorData};
use sealgate_client::{Error, ExchangeError};
use sealgate_protocol::{Aead, ClientResponse, Kdf, Kem, KeyConfig, RequestHeader, bhttp, media_type, problem_type};
use sealgate_test_support::{
    Gateway, GatewayOptions, assert_still_serving, encapsulate, example_request, inner_error, inner_request,
    output_text, random_bytes, run_command,
};

use crate::SEALGATE;

const OPENSSL_HINT: &str = "install openssl (cargo xtask setup installs it)";

/// A feature value that must never come back in an error message.
const DISTINCTIVE: f64 = 1234.5678;

/// A valid encapsulated `GET /v2/models` and the state to open its answer.
async fn valid_request(gateway: &Gateway) -> (KeyConfig, Vec<u8>, ClientResponse) {
    let config = gateway.fetch_key_config().await;
    let inner = inner_request(gateway, "GET", "/v2/models", Vec::new()).encode();
    let (encapsulated, pending) = encapsulate(&config, Aead::Aes128Gcm, &inner);
    (config, encapsulated, pending)
}

/// The status the gateway's documented mapping (server/src/problem.rs) gives an
/// encapsulated request that does not decrypt: 422 `ohttp-key` when the header names an
/// unsupported algorithm or another key, else 400.
fn expected_status_for_undecryptable(body: &[u8], config: &KeyConfig) -> u16 {
    let id = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let matches_config = body[0] == config.key_id()
        && id(1) == config.kem().id()
        && config.suites().iter().any(|s| s.kdf.id() == id(3) && s.aead.id() == id(5));
    if matches_config { 400 } else { 422 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_encapsulated_requests_are_400() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let (config, valid, _) = valid_request(&gateway).await;
    let header_len = RequestHeader::LEN + config.kem().enc_len();

    // Garbage behind a correct header: it cannot be decrypted.
    let mut garbage = valid[..RequestHeader::LEN].to_vec();
    garbage.extend(random_bytes(200 - RequestHeader::LEN));
    let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), garbage).await;
    let problem = response.assert_problem(400, "about:blank");
    assert!(problem["detail"].as_str().unwrap().contains("could not be decrypted"), "{problem}");

    // Fully random bytes: the header is random too, so the documented mapping decides.
    let random = random_bytes(200);
    let expected = expected_status_for_undecryptable(&random, &config);
    let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), random).await;
    let kind = if expected == 422 { problem_type::OHTTP_KEY } else { "about:blank" };
    response.assert_problem(expected, kind);

    // Cut inside the header, and cut after enc + 5 bytes (less than an AEAD tag).
    for cut in [3, header_len + 5] {
        let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), valid[..cut].to_vec()).await;
        let problem = response.assert_problem(400, "about:blank");
        assert!(problem["detail"].as_str().unwrap().contains("truncated"), "cut at {cut}: {problem}");
    }

    // An empty body.
    let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), Vec::new()).await;
    response.assert_problem(400, "about:blank");

    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_configuration_mismatches_are_422_ohttp_key() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let (config, valid, pending) = valid_request(&gateway).await;

    // The unmodified request works, so each change below is what the gateway refuses.
    let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), valid.clone()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.content_type, media_type::OHTTP_RESPONSE);
    let inner = bhttp::Response::decode(&pending.decapsulate(&response.body).unwrap()).unwrap();
    assert_eq!(inner.status, 200);

    // A key id the gateway does not serve (it serves one per KEM).
    let served = KeyConfig::decode_list(&gateway.get(sealgate_protocol::GATEWAY_PATH).await.body).unwrap();
    let other_key = (0..=u8::MAX).find(|id| served.iter().all(|c| c.key_id() != *id)).unwrap();
    let cases: [(&str, usize, &[u8]); 4] = [
        ("unknown key identifier", 0, &[other_key]),
        ("unsupported KEM", 1, &0x0010u16.to_be_bytes()),
        ("unsupported KDF", 3, &0x0003u16.to_be_bytes()),
        ("unsupported AEAD", 5, &0x0099u16.to_be_bytes()),
    ];
    assert_eq!(config.kem(), Kem::X25519HkdfSha256);
    assert!(config.suites().iter().all(|s| s.kdf == Kdf::HkdfSha256));
    for (what, at, bytes) in cases {
        let mut body = valid.clone();
        body[at..at + bytes.len()].copy_from_slice(bytes);
        let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), body).await;
        let problem = response.assert_problem(422, problem_type::OHTTP_KEY);
        assert!(problem["detail"].as_str().unwrap().contains(what), "{what}: {problem}");
    }

    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_types_are_415() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    for content_type in [Some("text/plain"), Some(media_type::OHTTP_RESPONSE), None] {
        // A valid encapsulated request, so only the media type is wrong.
        let (_, valid, _) = valid_request(&gateway).await;
        let response = gateway.post_encapsulated(content_type, valid).await;
        let problem = response.assert_problem(415, "about:blank");
        assert!(problem["detail"].as_str().unwrap().contains(media_type::OHTTP_REQUEST), "{problem}");
    }
    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).arg("--max-body-bytes").arg("4096"));
    for size in [5000, 4097] {
        let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), random_bytes(size)).await;
        let problem = response.assert_problem(413, "about:blank");
        assert!(problem["detail"].as_str().unwrap().contains("4096"), "{size} bytes: {problem}");
    }
    // The example inference is far below the limit.
    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_request_that_is_not_binary_http_gets_an_encrypted_400() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let (encapsulated, pending) = encapsulate(&config, Aead::ChaCha20Poly1305, b"\x00\x01garbage");
    let response = gateway.post_encapsulated(Some(media_type::OHTTP_REQUEST), encapsulated).await;
    assert_eq!(response.status, 200, "decryption succeeded, so the outer answer is 200: {}", response.text());
    assert_eq!(response.content_type, media_type::OHTTP_RESPONSE);
    let inner = bhttp::Response::decode(&pending.decapsulate(&response.body).unwrap()).unwrap();
    let (status, message) = inner_error(&inner);
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("Binary HTTP"), "{message}");
    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_is_404() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let result = gateway.client().infer("no-such-model", &example_request("breast-cancer")).await;
    match result {
        Err(Error::Exchange(ExchangeError::Inference { status: 404, message })) => {
            assert!(message.contains("unknown model"), "{message}")
        }
        other => panic!("expected an inference error 404, got {other:?}"),
    }
    assert_still_serving(&gateway).await;
}

/// A breast-cancer request with one input tensor.
fn request(name: &str, shape: Vec<u64>, datatype: DataType, data: TensorData) -> InferenceRequest {
    InferenceRequest { id: None, inputs: vec![InputTensor { name: name.into(), shape, datatype, data }], outputs: None }
}

/// Asserts an inner 400 whose message names the problem and quotes no sent value.
fn assert_invalid(case: &str, status: u16, message: &str, names: &[&str], sent: &[&str]) {
    assert_eq!(status, 400, "{case}: {message}");
    for name in names {
        assert!(message.contains(name), "{case}: '{message}' should mention '{name}'");
    }
    for value in sent {
        assert!(!message.contains(value), "{case}: '{message}' quotes the sent value '{value}'");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tensors_are_400_without_echoing_values() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let client = gateway.client();
    let floats = |n: usize| TensorData::Float(vec![DISTINCTIVE; n]);
    let sent = ["1234.5678", "1234.567", "1234.56", "12345678"];
    let mut out_of_range = vec![DISTINCTIVE; 30];
    out_of_range[7] = 1e300;

    let cases = [
        ("wrong tensor name", request("features", vec![1, 30], DataType::Fp32, floats(30)), &["input"][..]),
        ("wrong shape", request("input", vec![1, 29], DataType::Fp32, floats(29)), &["shape", "[1, 29]"]),
        (
            "wrong datatype",
            request("input", vec![1, 30], DataType::Int64, TensorData::Int(vec![12_345_678; 30])),
            &["datatype", "FP32", "INT64"],
        ),
        ("wrong data length", request("input", vec![1, 30], DataType::Fp32, floats(29)), &["29 values", "30"]),
        (
            "value out of FP32 range",
            request("input", vec![1, 30], DataType::Fp32, TensorData::Float(out_of_range)),
            &["FP32 range"],
        ),
    ];
    for (case, request, names) in cases {
        match client.infer("breast-cancer", &request).await {
            Err(Error::Exchange(ExchangeError::Inference { status, message })) => {
                let mut sent = sent.to_vec();
                sent.extend(["1e300", "1e+300", "100000000000"]);
                assert_invalid(case, status, &message, names, &sent);
            }
            other => panic!("{case}: expected an inference error, got {other:?}"),
        }
    }

    // A body that is not JSON at all, with a value in it.
    let body = br#"{"inputs": [{"name": "input", "data": [1234.5678, oops"#.to_vec();
    let response = client.send(&inner_request(&gateway, "POST", "/v2/models/breast-cancer/infer", body)).await.unwrap();
    let (status, message) = inner_error(&response);
    assert_invalid("not JSON", status, &message, &["not a valid", "JSON"], &["1234.5678", "oops"]);

    assert_still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_is_refused_and_tls_1_3_accepted() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let connect = format!("127.0.0.1:{}", gateway.port());
    let s_client = |version: &str| {
        let mut command = tokio::process::Command::new("openssl");
        command
            .args(["s_client", "-connect", &connect, version, "-verify_return_error", "-verify_ip", "127.0.0.1"])
            .arg("-CAfile")
            .arg(gateway.ca_path());
        command
    };

    let output = run_command(&mut s_client("-tls1_2"), Duration::from_secs(10), OPENSSL_HINT).await.unwrap();
    let text = output_text(&output);
    assert!(!output.status.success(), "openssl -tls1_2 succeeded:\n{text}");
    assert!(
        text.contains("alert protocol version"),
        "the server refuses TLS 1.2 with a protocol_version alert:\n{text}"
    );
    assert!(text.contains("Cipher is (NONE)") && !text.contains("New, TLSv1.2"), "no TLS 1.2 session:\n{text}");

    let output = run_command(&mut s_client("-tls1_3"), Duration::from_secs(10), OPENSSL_HINT).await.unwrap();
    let text = output_text(&output);
    assert!(output.status.success(), "openssl -tls1_3 failed:\n{text}");
    assert!(text.contains("New, TLSv1.3"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");

    // A Rust client limited to TLS 1.2 fails in the handshake too.
    let error = gateway
        .raw_http_with_versions(&[&rustls::version::TLS12])
        .get(gateway.endpoint("/healthz"))
        .send()
        .await
        .expect_err("a TLS 1.2 client must not get an answer");
    let chain = sealgate_client::Report(&error).to_string();
    assert!(chain.contains("ProtocolVersion"), "{chain}");

    assert_still_serving(&gateway).await;
}

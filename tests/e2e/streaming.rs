//! Streaming batch scoring (`content-type: application/x-ndjson`) through the real binary.
//!
//! The NDJSON scorer sits behind the inner router, so these tests reach it through an
//! ordinary encapsulated request (RFC 9458) whose inner body holds many lines: one answer
//! line per request line, in order, the same answers the single-request API gives; a bad line
//! gets an error line and the lines after it are still scored; blank lines are skipped but
//! counted; the tenant's rate applies to every line; an unknown model is one inner 404.

use sealgate_protocol::bhttp;
use sealgate_test_support::{Gateway, GatewayOptions, example_path, inner_error, sealgate_command};

use crate::SEALGATE;

/// The demo example of `model` as one JSON line.
fn line_of(model: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(example_path(model)).unwrap()).unwrap();
    value.to_string()
}

/// `POST /v2/models/{model}/infer` with `lines` as an NDJSON body and `token`.
fn ndjson_request(gateway: &Gateway, model: &str, lines: &[String], token: Option<&str>) -> bhttp::Request {
    let authority = gateway.url().trim_start_matches("https://");
    let mut request = bhttp::Request::new("POST", "https", authority, &format!("/v2/models/{model}/infer"));
    request.headers.push(bhttp::Field::new("content-type", "application/x-ndjson"));
    if let Some(token) = token.or(gateway.token()) {
        request.headers.push(bhttp::Field::new("authorization", format!("Bearer {token}")));
    }
    request.body = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
    request
}

fn answer_lines(response: &bhttp::Response) -> Vec<serde_json::Value> {
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.header("content-type"), Some(&b"application/x-ndjson"[..]));
    let text = std::str::from_utf8(&response.body).unwrap();
    assert!(text.ends_with('\n'), "every answer line ends with a newline");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_is_answered_in_order_and_a_bad_line_does_not_stop_the_stream() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).arg("--stream-window").arg("3"));
    let config = gateway.fetch_key_config().await;
    let good = line_of("credit-risk");
    let single = gateway.client().infer("credit-risk", &serde_json::from_str(&good).unwrap()).await.unwrap();
    let single = serde_json::to_value(&single).unwrap();
    let mut lines = vec![good.clone(); 8];
    lines[2] = "{not json".into();
    lines[4] = String::new();
    lines[5] = r#"{"inputs": [{"name": "nope", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}"#.into();
    let response = gateway.exchange(&config, &ndjson_request(&gateway, "credit-risk", &lines, None)).await;
    let answers = answer_lines(&response);
    assert_eq!(answers.len(), 7, "one answer per non-blank line: {answers:#?}");
    for (i, number) in [1, 2, 4, 7, 8].iter().enumerate() {
        let at = [0, 1, 3, 5, 6][i];
        assert_eq!(answers[at], single, "line {number} is answered as a single request is");
    }
    assert_eq!(answers[2]["status"], 400);
    assert_eq!(answers[2]["line"], 3);
    assert!(answers[2]["error"].as_str().unwrap().contains("JSON syntax"), "{}", answers[2]);
    assert_eq!(answers[4]["status"], 400);
    assert_eq!(answers[4]["line"], 6, "the blank line 5 is counted");
    // Error lines quote no request value.
    assert!(!answers[2]["error"].as_str().unwrap().contains("not json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_applies_to_every_line_and_an_unknown_model_is_one_404() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let data = gateway.data_dir();
    let add = sealgate_command(SEALGATE, ["tenants", "add", "batch", "--models", "credit-risk"])
        .args(["--rate", "0.01", "--burst", "3"])
        .arg("--data-dir")
        .arg(&data)
        .run();
    add.assert_success();
    let token = add.stdout.trim().to_owned();
    // The gateway picks the new tenant up from the file.
    let lines = vec![line_of("credit-risk"); 6];
    let mut answers = Vec::new();
    for _ in 0..50 {
        let response = gateway.exchange(&config, &ndjson_request(&gateway, "credit-risk", &lines, Some(&token))).await;
        if response.status != 401 {
            answers = answer_lines(&response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answers.len(), 6, "{answers:#?}");
    // Burst 3: the stream itself (line 1) and lines 2 and 3; then the rate refuses each line.
    for answer in &answers[..3] {
        assert!(answer.get("outputs").is_some(), "{answer}");
    }
    for (i, answer) in answers[3..].iter().enumerate() {
        assert_eq!(answer["status"], 429, "{answer}");
        assert_eq!(answer["line"], 4 + i as u64);
    }
    // Past the burst the stream itself is refused, as a request is.
    let response = gateway.exchange(&config, &ndjson_request(&gateway, "credit-risk", &lines, Some(&token))).await;
    assert_eq!(inner_error(&response).0, 429);
    // The allowlist is checked before anything streams.
    let response = gateway.exchange(&config, &ndjson_request(&gateway, "breast-cancer", &lines, Some(&token))).await;
    assert_eq!(inner_error(&response).0, 403);
    let response = gateway.exchange(&config, &ndjson_request(&gateway, "no-such-model", &lines, None)).await;
    let (status, message) = inner_error(&response);
    assert_eq!((status, message.as_str()), (404, "unknown model 'no-such-model'"));
}

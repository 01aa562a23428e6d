//! The Rust SDK's streamed batch scoring (`Client::infer_stream`) through the real binary:
//! chunked OHTTP with an NDJSON body, one answer per request in order, the same answers the
//! single-request API gives; a refused request is one `Err` and the stream goes on; answers
//! arrive while the caller's input is still open; a stream refused as a whole (an unknown
//! model, a bad token) is one `Err`; a retired key is refetched and the untouched input sent
//! again; many short lines at full speed, and a slow reader, get every answer;
//! `Client::infer_stream_lines` sends JSON text as it is, and a line with a line break inside
//! ends the stream with `ExchangeError::InvalidLine`.

use futures_util::StreamExt;
use sealgate_client::inference::{InferenceRequest, InferenceResponse};
use sealgate_client::{Error, ExchangeError};
use sealgate_test_support::{Gateway, GatewayOptions, example_request, sealgate_command};

use crate::SEALGATE;

/// A stream fed by a channel: open until the sender is dropped.
fn channel_stream(
    rx: tokio::sync::mpsc::Receiver<InferenceRequest>,
) -> impl futures_util::Stream<Item = InferenceRequest> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

fn json(response: &InferenceResponse) -> serde_json::Value {
    serde_json::to_value(response).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_streamed_requests_get_the_single_request_answers_in_order() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let client = gateway.client();
    let request = example_request("credit-risk");
    let single = json(&client.infer("credit-risk", &request).await.unwrap());
    let requests = futures_util::stream::iter(std::iter::repeat_n(request, 10_000));
    let answers: Vec<_> = client.infer_stream("credit-risk", requests).collect().await;
    assert_eq!(answers.len(), 10_000);
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Ok(answer) => assert_eq!(json(answer), single, "answer {}", i + 1),
            Err(e) => panic!("answer {}: {}", i + 1, sealgate_client::Report(e)),
        }
    }
    // The gateway logged the exchange as one chunked request.
    assert!(gateway.logs().contains("served chunked encapsulated request"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_mid_stream_is_one_err_and_the_stream_goes_on() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let good = example_request("credit-risk");
    let mut bad = good.clone();
    bad.inputs[0].name = "no-such-input".into();
    let requests: Vec<_> = (0..50).map(|i| if i == 20 { bad.clone() } else { good.clone() }).collect();
    let answers: Vec<_> =
        gateway.client().infer_stream("credit-risk", futures_util::stream::iter(requests)).collect().await;
    assert_eq!(answers.len(), 50);
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (20, Err(Error::Exchange(ExchangeError::Line { line, status, message }))) => {
                assert_eq!((*line, *status), (21, 400), "{message}");
                assert!(!message.is_empty());
            }
            (20, other) => panic!("line 21 should fail: {other:?}"),
            (_, Ok(answer)) => assert!(answer.output("label").is_some(), "answer {}", i + 1),
            (_, Err(e)) => panic!("answer {}: {}", i + 1, sealgate_client::Report(e)),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_arrive_while_the_input_is_still_open() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let request = example_request("credit-risk");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut answers = Box::pin(gateway.client().infer_stream("credit-risk", channel_stream(rx)));
    for i in 0..3 {
        tx.send(request.clone()).await.unwrap();
        // `tx` is held, so the input stream has not ended: this answer came first. The
        // bound only keeps a broken stream from hanging the suite.
        let answer = tokio::time::timeout(std::time::Duration::from_secs(120), answers.next())
            .await
            .unwrap_or_else(|_| panic!("no answer {} while the input was open", i + 1));
        assert!(answer.unwrap().unwrap().output("label").is_some());
        assert!(!tx.is_closed());
    }
    tx.send(request).await.unwrap();
    drop(tx);
    let rest: Vec<_> = answers.collect().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(rest[0].is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_or_a_bad_name_is_one_err() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let client = gateway.client();
    let requests = futures_util::stream::iter(vec![example_request("credit-risk"); 5]);
    let answers: Vec<_> = client.infer_stream("no-such-model", requests).collect().await;
    match &answers[..] {
        [Err(e @ Error::Exchange(ExchangeError::Inference { status: 404, .. }))] => {
            assert_eq!(e.status(), Some(404));
        }
        other => panic!("{other:?}"),
    }
    let requests = futures_util::stream::iter(vec![example_request("credit-risk")]);
    let answers: Vec<_> = client.infer_stream("../credit-risk", requests).collect().await;
    assert!(matches!(&answers[..], [Err(Error::InvalidModelName(_))]), "{answers:?}");
    // A token the gateway does not know: the whole stream is refused inside the encryption.
    let stranger = gateway.anonymous_client_builder().bearer_token("sg_not_a_real_token").build().unwrap();
    let requests = futures_util::stream::iter(vec![example_request("credit-risk"); 2]);
    let answers: Vec<_> = stranger.infer_stream("credit-risk", requests).collect().await;
    assert!(matches!(&answers[..], [Err(e)] if e.status() == Some(401)), "{answers:?}");
}

/// A client whose cached key was retired: the gateway refuses the stream's header with the
/// `ohttp-key` problem before any line was sealed, so the SDK refetches once and sends the
/// same input again; every answer arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_retired_key_is_refetched_once_and_the_untouched_input_sent_again() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).env("SEALGATE_LOG", "info,sealgate::gateway=debug"));
    let fetches = || gateway.logs().lines().filter(|l| l.contains("served the key configurations")).count();
    let client = gateway.client();
    let held = client.key_config().await.unwrap();
    let before = fetches();
    let data = gateway.data_dir();
    let keys = |args: &[&str]| {
        let output = sealgate_command(SEALGATE, ["keys"]).args(args).arg("--data-dir").arg(&data).run();
        output.assert_success();
    };
    keys(&["rotate"]);
    keys(&["retire", &held.key_id().to_string()]);
    // Wait until the gateway serves a key set without the held key (bounded, so a gateway
    // that never reloads fails instead of hanging).
    let without_held = || {
        gateway.logs().lines().filter(|l| l.contains("serving a new set of HPKE keys")).any(|l| {
            let ids = l.split("keys=[").nth(1).and_then(|rest| rest.split(']').next()).unwrap_or("");
            !ids.split(", ").any(|id| id == held.key_id().to_string())
        })
    };
    let started = std::time::Instant::now();
    while !without_held() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the key was never retired:\n{}",
            gateway.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let requests = futures_util::stream::iter(vec![example_request("credit-risk"); 20]);
    let answers: Vec<_> = client.infer_stream("credit-risk", requests).collect().await;
    assert_eq!(answers.len(), 20, "{answers:?}");
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(fetches(), before + 1, "exactly one refetch:\n{}", gateway.logs());
    assert_ne!(client.key_config().await.unwrap().key_id(), held.key_id());
}

/// The demo example cut to its first row: a request line shorter than 256 bytes.
fn one_row() -> InferenceRequest {
    let mut request = example_request("credit-risk");
    request.inputs[0].shape = vec![1, 20];
    if let sealgate_client::inference::TensorData::Float(data) = &mut request.inputs[0].data {
        data.truncate(20);
    }
    request
}

/// Short lines sent faster than the gateway scores them: one per piece and unpadded, each an HTTP/2
/// DATA frame under 256 bytes, and the gateway's h2 closes a connection with GOAWAY
/// `ENHANCE_YOUR_CALM` after about a thousand such frames not yet consumed (seen with
/// 20,000 rows before the client core padded lines).
#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_short_lines_at_full_speed_are_all_answered() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let request = one_row();
    assert!(serde_json::to_vec(&request).unwrap().len() < 256);
    let requests = futures_util::stream::iter(std::iter::repeat_n(request, 20_000));
    let mut answers = Box::pin(gateway.client().infer_stream("credit-risk", requests));
    let mut count = 0;
    while let Some(answer) = answers.next().await {
        answer.unwrap_or_else(|e| panic!("answer {}: {}", count + 1, sealgate_client::Report(&e)));
        count += 1;
    }
    assert_eq!(count, 20_000);
}

/// A caller that reads slowly while the gateway answers fast: the answers wait in the
/// connection's flow-control window and the SDK's read-ahead, and all of them arrive.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reader_gets_every_answer() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let requests = futures_util::stream::iter(vec![one_row(); 3000]);
    let mut answers = Box::pin(gateway.client().infer_stream("credit-risk", requests));
    let mut count = 0;
    while let Some(answer) = answers.next().await {
        answer.unwrap_or_else(|e| panic!("answer {}: {}", count + 1, sealgate_client::Report(&e)));
        count += 1;
        if count % 10 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    assert_eq!(count, 3000);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_in_answer_lines_out_and_a_line_with_a_break_ends_the_stream_with_its_own_error() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let client = gateway.client();
    let request = example_request("credit-risk");
    let single = json(&client.infer("credit-risk", &request).await.unwrap());
    let line = serde_json::to_vec(&request).unwrap();
    // The same text with its members laid out over two lines: valid JSON, not one NDJSON line.
    let broken = serde_json::to_vec_pretty(&request).unwrap();
    let mut lines = vec![line.clone(), b"not json".to_vec(), line.clone()];
    let answers: Vec<_> =
        client.infer_stream_lines("credit-risk", futures_util::stream::iter(lines.clone())).collect().await;
    assert_eq!(answers.len(), 3);
    for at in [0, 2] {
        let answer = answers[at].as_ref().unwrap_or_else(|e| panic!("line {}: {}", at + 1, sealgate_client::Report(e)));
        let answer: serde_json::Value = serde_json::from_slice(answer).expect("an answer line is JSON");
        assert_eq!(answer, single, "line {} gets the single-request answer", at + 1);
    }
    assert!(
        matches!(&answers[1], Err(Error::Exchange(ExchangeError::Line { line: 2, status: 400, .. }))),
        "{:?}",
        answers[1].as_ref().err()
    );

    lines.push(broken);
    lines.push(line);
    let answers: Vec<_> = client.infer_stream_lines("credit-risk", futures_util::stream::iter(lines)).collect().await;
    // The three lines before the broken one are answered, then the stream ends with its error.
    assert_eq!(answers.len(), 4);
    assert!(answers[0].is_ok() && answers[2].is_ok(), "the lines before it were answered");
    let last = answers[3].as_ref().expect_err("the stream ends with an error");
    assert!(matches!(last.exchange(), Some(ExchangeError::InvalidLine)), "{}", sealgate_client::Report(last));
}

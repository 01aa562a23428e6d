//! Chunked Oblivious HTTP (draft-ietf-ohai-chunked-ohttp-08) through the real binary, with a
//! client made from `sealgate_protocol` directly so every bad input can be sent: NDJSON
//! streams of many lines answered line by line, and each way a chunked request can be broken
//! (cut before its final chunk, bytes after it, a chunk over the limit, a flipped byte in
//! the third chunk, an empty non-final chunk, a 10 MB line), each answered with a clear
//! error inside the encryption and nothing leaked outside it.

use sealgate_protocol::bhttp::{self, stream as bstream};
use sealgate_protocol::chunked::{ChunkedClientRequest, RequestSealer, ResponseOpener};
use sealgate_protocol::{KeyConfig, SymmetricSuite, media_type};
use sealgate_test_support::{Gateway, GatewayOptions, example_path};

use crate::SEALGATE;

/// The demo example of `model` as one JSON line.
fn line_of(model: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(example_path(model)).unwrap()).unwrap();
    value.to_string()
}

/// A chunked NDJSON request being built: the bytes so far, the sealer and the encoder.
struct Stream {
    wire: Vec<u8>,
    sealer: RequestSealer,
    encoder: bstream::Encoder,
    opener: ResponseOpener,
}

impl Stream {
    /// Header and head chunk of `POST /v2/models/{model}/infer` with an NDJSON body.
    fn start(gateway: &Gateway, config: &KeyConfig, model: &str, max_chunk: usize) -> Self {
        let authority = gateway.url().trim_start_matches("https://");
        let mut head = bhttp::Request::new("POST", "https", authority, &format!("/v2/models/{model}/infer"));
        head.headers.push(bhttp::Field::new("content-type", "application/x-ndjson"));
        head.headers.push(bhttp::Field::new("authorization", format!("Bearer {}", gateway.token().unwrap())));
        sealgate_test_support::date_now(&mut head);
        let (mut wire, mut sealer, opener) = ChunkedClientRequest::new(config, SymmetricSuite::ALL[0])
            .unwrap()
            .with_max_chunk(max_chunk)
            .start(&mut rand_core::UnwrapErr(getrandom::SysRng))
            .unwrap();
        let (head, encoder) = bstream::Encoder::request(&head);
        wire.extend(sealer.seal_chunk(&head).unwrap());
        Self { wire, sealer, encoder, opener }
    }

    /// One line, as its own chunk.
    fn line(&mut self, line: &str) -> &mut Self {
        let piece = self.encoder.body(format!("{line}\n").as_bytes());
        let sealed = self.sealer.seal_chunk(&piece).unwrap();
        self.wire.extend(sealed);
        self
    }

    /// The end of the body and the final chunk.
    fn finish(self) -> (Vec<u8>, ResponseOpener) {
        let Self { mut wire, sealer, encoder, opener } = self;
        wire.extend(sealer.finish(&encoder.finish(&[])).unwrap());
        (wire, opener)
    }
}

/// What came back: the inner status and the NDJSON lines, parsed; or how the response failed.
#[derive(Debug)]
struct Answer {
    status: u16,
    lines: Vec<serde_json::Value>,
}

async fn post(gateway: &Gateway, wire: Vec<u8>) -> sealgate_test_support::RawResponse {
    gateway.post_encapsulated(Some(media_type::OHTTP_CHUNKED_REQUEST), wire).await
}

fn open(outer: &sealgate_test_support::RawResponse, mut opener: ResponseOpener) -> Result<Answer, String> {
    assert_eq!(outer.status, 200, "{}", String::from_utf8_lossy(&outer.body));
    assert_eq!(outer.content_type, media_type::OHTTP_CHUNKED_RESPONSE);
    // Fed in odd slices, as a network would deliver them.
    let mut plaintext = Vec::new();
    for piece in outer.body.chunks(1000) {
        for chunk in opener.push(piece).map_err(|e| e.to_string())? {
            plaintext.extend_from_slice(&chunk);
        }
    }
    plaintext.extend_from_slice(&opener.finish().map_err(|e| e.to_string())?);
    let mut decoder = bstream::Decoder::response();
    let mut parts = decoder.push(&plaintext).map_err(|e| e.to_string())?;
    parts.extend(decoder.finish().map_err(|e| e.to_string())?);
    let mut status = 0;
    let mut body = Vec::new();
    for part in parts {
        match part {
            bstream::Part::Response(head) => status = head.status,
            bstream::Part::Body(piece) => body.extend_from_slice(&piece),
            _ => {}
        }
    }
    let text = String::from_utf8(body).unwrap();
    let lines = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    Ok(Answer { status, lines })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_chunked_request_is_refused_before_any_line_is_scored() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let mut stream = Stream::start(&gateway, &config, "credit-risk", 64 * 1024);
    stream.line(&line_of("credit-risk")).line(&line_of("credit-risk"));
    let (wire, opener) = stream.finish();
    // The first post is answered (not read here); the same bytes again are a replay, which
    // the request's own client can read as an inner 400.
    assert_eq!(post(&gateway, wire.clone()).await.status, 200);
    let answer = open(&post(&gateway, wire).await, opener).expect("a complete encrypted answer");
    assert_eq!(answer.status, 400, "{:?}", answer.lines);
    let error = answer.lines[0]["error"].as_str().unwrap();
    assert!(error.contains("replay"), "{error}");
    assert!(gateway.logs().contains("refused a replayed request"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_of_lines_is_answered_line_by_line_in_order() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let good = line_of("credit-risk");
    let single = serde_json::to_value(
        gateway.client().infer("credit-risk", &serde_json::from_str(&good).unwrap()).await.unwrap(),
    )
    .unwrap();
    let mut stream = Stream::start(&gateway, &config, "credit-risk", 1 << 16);
    for i in 0..500 {
        stream.line(if i == 250 { "{broken" } else { &good });
    }
    let (wire, opener) = stream.finish();
    let answer = open(&post(&gateway, wire).await, opener).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.lines.len(), 500);
    for (i, line) in answer.lines.iter().enumerate() {
        if i == 250 {
            assert_eq!((line["status"].as_u64(), line["line"].as_u64()), (Some(400), Some(251)), "{line}");
        } else {
            assert_eq!(line, &single, "line {}", i + 1);
        }
    }
    // The key list's `Accept`-free discovery is unchanged, and the gateway still serves.
    gateway.client().models().await.unwrap();
}

/// Every broken request: the answer is still a complete, authenticated chunked response,
/// whose inner answer says what went wrong (an NDJSON error line after the lines that were
/// read, or an inner 400 when nothing could be read).
#[tokio::test(flavor = "multi_thread")]
async fn broken_chunked_requests_get_a_clear_error_inside_the_encryption() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let config = gateway.fetch_key_config().await;
    let good = line_of("credit-risk");
    let two_lines = || {
        let mut stream = Stream::start(&gateway, &config, "credit-risk", 1 << 20);
        stream.line(&good).line(&good);
        stream
    };
    let last_error = |answer: &Answer| answer.lines.last().cloned().unwrap_or_default();

    // Cut before the final chunk.
    let stream = two_lines();
    let answer = open(&post(&gateway, stream.wire.clone()).await, stream.opener).unwrap();
    assert_eq!(answer.lines.len(), 3, "{answer:?}");
    let error = last_error(&answer);
    assert_eq!(error["status"], 400);
    assert!(error["error"].as_str().unwrap().contains("cut off"), "{error}");

    // Bytes after the final chunk: they belong to it, so it does not authenticate.
    let (mut wire, opener) = two_lines().finish();
    wire.extend_from_slice(b"trailing bytes");
    let answer = open(&post(&gateway, wire).await, opener).unwrap();
    assert!(last_error(&answer)["error"].as_str().unwrap().contains("did not decrypt"), "{answer:?}");

    // A flipped byte in the third chunk (the head is the first, so the second line's).
    let mut stream = Stream::start(&gateway, &config, "credit-risk", 1 << 20);
    let mut at = stream.wire.len();
    stream.line(&good);
    let third = stream.wire.len();
    stream.line(&good).line(&good);
    at = at.max(third + 10);
    let (mut wire, opener) = stream.finish();
    wire[at] ^= 1;
    let answer = open(&post(&gateway, wire).await, opener).unwrap();
    assert_eq!(answer.lines.len(), 2, "the first line is answered, then the error: {answer:?}");
    assert!(answer.lines[0].get("outputs").is_some());
    assert!(last_error(&answer)["error"].as_str().unwrap().contains("did not decrypt"), "{answer:?}");

    // A chunk longer than the gateway's limit (--max-body-bytes, 1 MiB).
    let mut stream = Stream::start(&gateway, &config, "credit-risk", 4 << 20);
    let piece = stream.encoder.body(&vec![b' '; 2 << 20]);
    let sealed = stream.sealer.seal_chunk(&piece).unwrap();
    stream.wire.extend(sealed);
    let (wire, opener) = stream.finish();
    let answer = open(&post(&gateway, wire).await, opener).unwrap();
    assert!(last_error(&answer)["error"].as_str().unwrap().contains("malformed"), "{answer:?}");

    // An empty non-final chunk.
    let mut stream = two_lines();
    let empty = stream.sealer.danger_seal_empty_chunk().unwrap();
    stream.wire.extend(empty);
    let (wire, opener) = stream.finish();
    let answer = open(&post(&gateway, wire).await, opener).unwrap();
    assert_eq!(answer.lines.len(), 3, "{answer:?}");
    assert!(last_error(&answer)["error"].as_str().unwrap().contains("malformed"), "{answer:?}");

    // A 10 MB line: an error line for it, and the next line is still scored.
    let mut stream = Stream::start(&gateway, &config, "credit-risk", 1 << 20);
    stream.line(&good);
    let long = "x".repeat(10 << 20);
    let mut piece = Vec::new();
    for part in long.as_bytes().chunks(512 << 10) {
        piece.clear();
        piece.extend(stream.encoder.body(part));
        let sealed = stream.sealer.seal_chunk(&piece).unwrap();
        stream.wire.extend(sealed);
    }
    stream.line("").line(&good);
    let (wire, opener) = stream.finish();
    let answer = open(&post(&gateway, wire).await, opener).unwrap();
    assert_eq!(answer.lines.len(), 3, "{:?}", answer.lines.iter().map(|l| l.get("status")).collect::<Vec<_>>());
    assert_eq!(answer.lines[1]["status"], 413);
    assert!(answer.lines[2].get("outputs").is_some(), "the line after the long one is scored");

    // A header cut short: an outer problem, before anything is decrypted.
    let stream = Stream::start(&gateway, &config, "credit-risk", 1 << 20);
    let outer = post(&gateway, stream.wire[..20].to_vec()).await;
    assert_eq!(outer.status, 400, "{}", outer.text());
    gateway.client().models().await.unwrap();
}

/// A client that sends a long stream and then reads nothing: the gateway's answer fills the
/// transport's windows, the producer waits for the request timeout, then drops the request
/// (its lines, its scoring, its buffers) and ends the answer without a final chunk.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_dropped_after_the_request_timeout() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).args(["--request-timeout-secs", "2"]));
    let config = gateway.fetch_key_config().await;
    let good = line_of("credit-risk");
    let mut stream = Stream::start(&gateway, &config, "credit-risk", 1 << 16);
    for _ in 0..20_000 {
        stream.line(&good);
    }
    let (wire, _opener) = stream.finish();
    let response = gateway
        .raw_http()
        .post(gateway.endpoint(sealgate_protocol::GATEWAY_PATH))
        .header("content-type", media_type::OHTTP_CHUNKED_REQUEST)
        .body(wire)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Not a byte of the answer is read; the gateway gives up on its own.
    let started = std::time::Instant::now();
    let dropped = loop {
        let logs = gateway.logs();
        if let Some(line) = logs.lines().find(|l| l.contains("served chunked encapsulated request")) {
            break line.to_owned();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the stream was never dropped:\n{logs}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(dropped.contains("complete=false"), "{dropped}");
    let scrape = gateway.scrape();
    let in_flight = scrape.lines().find(|l| l.starts_with("sealgate_requests_in_flight ")).unwrap();
    assert_eq!(in_flight, "sealgate_requests_in_flight 0", "the request's permit and buffers are gone");
    drop(response);
    gateway.client().models().await.unwrap();
}

/// The gateway's resident memory, from `/proc/PID/status` (`VmRSS`, kB).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Ten streams at once, each far larger than the window and the channels: the gateway's
/// memory stays near its idle figure, because nothing is buffered beyond a window of lines
/// per stream. At the default size the requests hold 10 x 5,000 lines of about 330 bytes
/// (16.5 MB) and their answers about as much, so a gateway that collected either would grow
/// past the 12 MiB allowed here. (The figure, 10 streams of 1,000,000 lines
/// within 64 MiB, is a benchmark: `SEALGATE_STREAM_LINES=1000000` runs this test at that
/// size.)
#[tokio::test(flavor = "multi_thread")]
async fn ten_streams_at_once_stay_in_bounded_memory() {
    let lines: usize = std::env::var("SEALGATE_STREAM_LINES").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE).args(["--max-in-flight", "16"]));
    let config = gateway.fetch_key_config().await;
    let good = line_of("credit-risk");
    // Warm up, then the idle figure.
    let mut warm = Stream::start(&gateway, &config, "credit-risk", 1 << 16);
    warm.line(&good);
    let (wire, opener) = warm.finish();
    open(&post(&gateway, wire).await, opener).unwrap();
    let idle = rss_kb(gateway.pid());
    let streams = (0..10).map(|_| {
        let mut stream = Stream::start(&gateway, &config, "credit-risk", 1 << 16);
        for _ in 0..lines {
            stream.line(&good);
        }
        stream.finish()
    });
    let gateway_ref = &gateway;
    let http = gateway.raw_http_patient(std::time::Duration::from_secs(600));
    let http = &http;
    let runs = streams.map(|(wire, opener)| async move {
        let response = http
            .post(gateway_ref.endpoint(sealgate_protocol::GATEWAY_PATH))
            .header("content-type", media_type::OHTTP_CHUNKED_REQUEST)
            .body(wire)
            .send()
            .await
            .unwrap();
        let answer = open(&sealgate_test_support::RawResponse::read(response).await, opener).unwrap();
        answer.lines.len()
    });
    let peak = std::sync::atomic::AtomicU64::new(idle);
    let sampling = async {
        loop {
            peak.fetch_max(rss_kb(gateway_ref.pid()), std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let counts = tokio::select! {
        counts = futures_util::future::join_all(runs) => counts,
        () = sampling => unreachable!("the sampler never ends"),
    };
    let peak = peak.into_inner().max(rss_kb(gateway.pid()));
    assert_eq!(counts, vec![lines; 10]);
    let grown_mib = peak.saturating_sub(idle) / 1024;
    println!("RSS idle {} MiB, after 10 streams of {lines} lines {} MiB", idle / 1024, peak / 1024);
    let allowed = if lines > 100_000 { 64 } else { 12 };
    assert!(grown_mib < allowed, "RSS grew by {grown_mib} MiB (idle {idle} kB, peak {peak} kB)");
}

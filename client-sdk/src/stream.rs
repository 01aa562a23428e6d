//! Streamed batch scoring: [`Client::infer_stream`] sends a stream of inference requests as
//! one chunked OHTTP request (draft-ietf-ohai-chunked-ohttp-08) whose inner body is NDJSON,
//! and yields each answer as soon as its line has arrived, in request order.
//!
//! All of the protocol and every rule about what an answer means are the client core's
//! ([`Session::start_stream`](sealgate_client_core::Session::start_stream)); this file moves
//! the bytes. The request body is a reqwest stream the connection pulls: the sealed head
//! first, then one sealed chunk per input item as the caller's stream yields it (the chunks
//! of items ready at once sent together, up to 16 KiB, so that a fast input does not turn
//! into a flood of small HTTP/2 frames), then the final chunk; nothing is collected. The answer is read from `bytes_stream` by a task that
//! hands answers over a channel of [`READ_AHEAD`] answers, so it never reads more than one
//! network read ahead of the caller (the gateway, in turn, stops scoring when nobody reads).
//!
//! Keys and replay: the configuration comes from the same cache as every other call (fetched
//! first when its max-age has passed). The first request lines are sealed only after the
//! gateway has accepted the request header (its outer `200`), so when it answers with the
//! `ohttp-key` problem, or the connection cannot be made, nothing of the caller's stream has
//! been consumed yet and the exchange starts again once, with the refetched configuration,
//! on the same input. After that point the input cannot be replayed: every failure ends the
//! stream with one `Err`.
//!
//! Time: a stream has no overall deadline (a batch may run for hours); the client's timeout
//! bounds the wait for the outer answer and, while answers are owed (lines sent and not
//! answered), the silence between two pieces of the answer ([`Error::StreamStalled`]). A
//! caller whose own stream idles is bounded by the gateway's request timeout, which ends the
//! answer with an error line.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use sealgate_client_core::{DEFAULT_MAX_LINE, StreamEvent, StreamSender, StreamStart, line_error};
use sealgate_protocol::inference::{InferenceRequest, InferenceResponse};
use sealgate_protocol::media_type;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::client::{Client, outer, path_segment};
use crate::error::{Error, Result};

/// How many answers the reading task may hold for a caller that has not taken them yet.
pub const READ_AHEAD: usize = 4;

/// The most request bytes gathered into one body piece from requests that are ready at once.
const BATCH_BYTES: usize = 16 * 1024;

/// The per-request deadline given to reqwest for a stream, in place of the client's total
/// timeout: long enough never to end a healthy batch (the idle bounds above apply instead).
const NO_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The request lines (JSON text, one value each), or why the next one could not be made.
type Lines = Pin<Box<dyn Stream<Item = Result<Zeroizing<Vec<u8>>>> + Send>>;

/// The caller's input, shared between the exchange and the request body so that an exchange
/// that never got to its lines can hand the input to the next attempt.
type Input = Arc<Mutex<Option<Lines>>>;

/// Why the request body ended early on the client's side (a line that could not be made or
/// sealed): the error the stream ends with, in place of the transport's.
type Failure = Arc<Mutex<Option<Error>>>;

/// Why the request body stopped early (the exchange is being abandoned or retried).
#[derive(Debug)]
struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the streamed request was abandoned")
    }
}

impl std::error::Error for Abandoned {}

impl Client {
    /// Scores a stream of inference requests on `model` as one encrypted NDJSON stream:
    /// yields one item per request, in order, each as soon as its answer line has arrived.
    ///
    /// A request the gateway refuses (malformed, over the tenant's rate, the model busy ...)
    /// is one `Err(Error::Exchange(ExchangeError::Line { line, status, message }))` and the
    /// stream goes on with the next. A failure of the whole stream (an unknown model, a
    /// refused token, the connection lost, a truncated answer, a bad model name) is one
    /// final `Err` after the answers received before it. When the gateway rotated its keys
    /// and the stream had not started, it is sent once more with the refetched configuration
    /// (see the module documentation for when the input can be replayed).
    ///
    /// The request stream is polled only as the connection sends, and the answers are read
    /// at most [`READ_AHEAD`] ahead of the caller. Needs a tokio runtime when first polled.
    pub fn infer_stream<S>(
        &self,
        model: &str,
        requests: S,
    ) -> impl Stream<Item = Result<InferenceResponse>> + Send + 'static + use<S>
    where
        S: Stream<Item = InferenceRequest> + Send + 'static,
    {
        let lines =
            requests.map(|request| serde_json::to_vec(&request).map(Zeroizing::new).map_err(Error::InvalidRequest));
        self.stream_lines(model, Box::pin(lines)).map(parse_answer)
    }

    /// [`Client::infer_stream`] on JSON text: each item of `lines` is one KServe V2 inference
    /// request as JSON (one line of NDJSON, without a line break inside; a trailing `\n` is
    /// allowed), sent as it is; each answer is the gateway's answer line as it came, zeroized
    /// on drop. For input that is already NDJSON and answers that go to a file, this skips
    /// parsing and re-encoding each line. Errors are those of `infer_stream`; a line with a
    /// line break inside, or longer than [`DEFAULT_MAX_LINE`], ends the stream with
    /// [`ExchangeError::InvalidLine`](sealgate_client_core::Error::InvalidLine) or
    /// [`ExchangeError::LineTooLong`](sealgate_client_core::Error::LineTooLong), after the
    /// answers to the lines before it.
    pub fn infer_stream_lines<S>(
        &self,
        model: &str,
        lines: S,
    ) -> impl Stream<Item = Result<Zeroizing<Vec<u8>>>> + Send + 'static + use<S>
    where
        S: Stream<Item = Vec<u8>> + Send + 'static,
    {
        self.stream_lines(model, Box::pin(lines.map(|line| Ok(Zeroizing::new(line)))))
    }

    fn stream_lines(
        &self,
        model: &str,
        lines: Lines,
    ) -> impl Stream<Item = Result<Zeroizing<Vec<u8>>>> + Send + 'static + use<> {
        let client = self.clone();
        let path = path_segment(model).map(|model| format!("/v2/models/{model}/infer"));
        let input: Input = Arc::new(Mutex::new(Some(lines)));
        let failure: Failure = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        // The task starts on the first poll, so building the stream needs no runtime.
        let mut start = Some(move || {
            tokio::spawn(async move {
                let outcome = match path {
                    Ok(path) => client.run_stream(&path, input, &failure, &tx).await,
                    Err(e) => Err(e),
                };
                // A line that could not be sent is why the exchange ended, whatever the
                // transport made of the body that stopped.
                let failed = failure.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(e) = failed.or(outcome.err()) {
                    let _ = tx.send(Err(e)).await;
                }
            });
        });
        futures_util::stream::unfold(rx, move |mut rx| {
            if let Some(start) = start.take() {
                start();
            }
            async move { rx.recv().await.map(|item| (item, rx)) }
        })
    }

    /// One streamed exchange, started again at most once for a key refetch and as often as
    /// the connect retries allow, while the input is still untouched.
    async fn run_stream(
        &self,
        path: &str,
        input: Input,
        failure: &Failure,
        tx: &mpsc::Sender<Result<Zeroizing<Vec<u8>>>>,
    ) -> Result<()> {
        let mut cached = self.session().await?;
        let (mut refetched, mut connect_attempts) = (false, 0);
        loop {
            let (first, sender, mut receiver) = cached.session().start_stream(
                "POST",
                path,
                &[],
                DEFAULT_MAX_LINE,
                self.request_time(),
                &mut rand_core::UnwrapErr(getrandom::SysRng),
            )?;
            let (go, go_rx) = oneshot::channel();
            let sent = Arc::new(AtomicU64::new(0));
            let body = request_body(first, sender, go_rx, input.clone(), sent.clone(), failure.clone());
            let request = self
                .http()
                .post(self.gateway_url().clone())
                .header(CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_CHUNKED_REQUEST))
                .timeout(NO_DEADLINE)
                .body(reqwest::Body::wrap_stream(body))
                .send();
            let response = match tokio::time::timeout(self.call_timeout(), request).await {
                Err(_) => return Err(Error::StreamStalled { waited: self.call_timeout() }),
                Ok(Err(e)) if e.is_connect() && connect_attempts < self.connect_retries() => {
                    connect_attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100 << connect_attempts)).await;
                    continue;
                }
                Ok(response) => response?,
            };
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            let (response, error_body) =
                if status == 200 { (Some(response), Vec::new()) } else { (None, response.bytes().await?.to_vec()) };
            let age = cached.age(self.now());
            match receiver.check_outer_at(&outer(status, &headers, &error_body), age)? {
                StreamStart::Answering => {}
                // `go` is dropped unsent, so the body never took the input: send again.
                StreamStart::RefetchKeys(_) if !refetched => {
                    refetched = true;
                    cached = self.refresh_session(cached.generation()).await?;
                    continue;
                }
                StreamStart::RefetchKeys(e) => return Err(e.into()),
            }
            let Some(response) = response else { return Ok(()) };
            // The gateway has the header: from now on the lines flow and cannot be replayed.
            let _ = go.send(());
            let mut bytes = response.bytes_stream();
            let mut answered = 0u64;
            let mut head_seen = false;
            loop {
                let owed = !head_seen || sent.load(Ordering::Acquire) > answered;
                let next = if owed {
                    tokio::time::timeout(self.call_timeout(), bytes.next())
                        .await
                        .map_err(|_| Error::StreamStalled { waited: self.call_timeout() })?
                } else {
                    bytes.next().await
                };
                let events = match next {
                    Some(piece) => receiver.push(&piece?)?,
                    None => break,
                };
                for event in events {
                    head_seen = true;
                    answered += u64::from(matches!(event, StreamEvent::Line(_)));
                    if !deliver(event, tx).await {
                        return Ok(());
                    }
                }
            }
            for event in receiver.finish()? {
                if !deliver(event, tx).await {
                    return Ok(());
                }
            }
            return Ok(());
        }
    }
}

/// An answer line read as an inference response.
fn parse_answer(answer: Result<Zeroizing<Vec<u8>>>) -> Result<InferenceResponse> {
    answer.and_then(|line| serde_json::from_slice(&line).map_err(Error::InvalidResponse))
}

/// Hands one event to the caller as an answer line or an error; false when the caller is
/// gone.
async fn deliver(event: StreamEvent, tx: &mpsc::Sender<Result<Zeroizing<Vec<u8>>>>) -> bool {
    let item = match event {
        StreamEvent::Head { .. } => return true,
        StreamEvent::Line(line) => match line_error(&line) {
            Some(e) => Err(Error::Exchange(e)),
            None => Ok(line),
        },
        StreamEvent::Refused(e) => Err(Error::Exchange(e)),
    };
    tx.send(item).await.is_ok()
}

/// Where the request body is.
enum Body {
    /// The request header and the sealed head, sent at once.
    First(Vec<u8>, StreamSender, oneshot::Receiver<()>),
    /// Waiting for the gateway to accept the header before touching the input.
    Waiting(StreamSender, oneshot::Receiver<()>),
    /// Sealing the caller's requests as they come.
    Lines(StreamSender, Lines),
    Done,
}

/// The request body: the first bytes, then (once `go` fires) one chunk per line taken from
/// `input`, counted in `sent`, then the final chunk. If `go` is dropped instead, the body
/// fails without touching the input, which stays in its slot for the next attempt. A line
/// that cannot be sent ends the request early, its error left in `failure`.
fn request_body(
    first: Vec<u8>,
    sender: StreamSender,
    go: oneshot::Receiver<()>,
    input: Input,
    sent: Arc<AtomicU64>,
    failure: Failure,
) -> impl Stream<Item = std::result::Result<Vec<u8>, Abandoned>> + Send + 'static {
    futures_util::stream::unfold(Body::First(first, sender, go), move |state| {
        let (input, sent, failure) = (input.clone(), sent.clone(), failure.clone());
        async move {
            match state {
                Body::First(first, sender, go) => Some((Ok(first), Body::Waiting(sender, go))),
                Body::Waiting(sender, go) => {
                    let taken = match go.await {
                        Ok(()) => input.lock().ok().and_then(|mut slot| slot.take()),
                        Err(_) => None,
                    };
                    match taken {
                        Some(lines) => next_line(sender, lines, &sent, &failure).await,
                        None => Some((Err(Abandoned), Body::Done)),
                    }
                }
                Body::Lines(sender, lines) => next_line(sender, lines, &sent, &failure).await,
                Body::Done => None,
            }
        }
    })
}

/// The next piece of the body: the caller's next line sealed (one chunk), together with
/// any further lines its stream has ready at once, up to [`BATCH_BYTES`], so a fast input
/// makes few large HTTP/2 DATA frames rather than many small ones; then the final chunk when
/// its stream has ended. Nothing waits for a batch to fill: a line that is not ready yet ends
/// the piece. A line that cannot be made or sealed ends the request there (the final chunk
/// follows the lines before it, which are answered), its error left in `failure`.
async fn next_line(
    mut sender: StreamSender,
    mut lines: Lines,
    sent: &AtomicU64,
    failure: &Failure,
) -> Option<(std::result::Result<Vec<u8>, Abandoned>, Body)> {
    let mut piece = Vec::new();
    let mut next = lines.next().await;
    loop {
        match next {
            Some(line) => {
                match line.and_then(|line| sender.line(&line).map_err(Error::Exchange)) {
                    Ok(sealed) => piece.extend_from_slice(&sealed),
                    Err(e) => {
                        // The request ends well formed after the lines before this one, so
                        // the gateway answers them; the stream then ends with this error.
                        *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                        return match sender.finish() {
                            Ok(last) => {
                                piece.extend_from_slice(&last);
                                Some((Ok(piece), Body::Done))
                            }
                            Err(_) => Some((Err(Abandoned), Body::Done)),
                        };
                    }
                }
                sent.fetch_add(1, Ordering::Release);
            }
            None => {
                return match sender.finish() {
                    Ok(last) => {
                        piece.extend_from_slice(&last);
                        Some((Ok(piece), Body::Done))
                    }
                    Err(e) => {
                        *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(Error::Exchange(e));
                        Some((Err(Abandoned), Body::Done))
                    }
                };
            }
        }
        if piece.len() >= BATCH_BYTES {
            break;
        }
        match lines.next().now_or_never() {
            Some(ready) => next = ready,
            None => break,
        }
    }
    Some((Ok(piece), Body::Lines(sender, lines)))
}

#[cfg(test)]
mod tests {
    use sealgate_client_core::Preferences;
    use sealgate_protocol::bhttp::stream as bstream;
    use sealgate_protocol::chunked::RequestHeaderReader;
    use sealgate_protocol::inference::{DataType, InputTensor, TensorData};
    use sealgate_protocol::{GatewayKey, GatewayKeys, Kem, SymmetricSuite};

    use super::*;

    fn request(value: f64) -> InferenceRequest {
        InferenceRequest {
            id: None,
            inputs: vec![InputTensor {
                name: "x".into(),
                shape: vec![1, 1],
                datatype: DataType::Fp32,
                data: TensorData::Float(vec![value]),
            }],
            outputs: None,
        }
    }

    fn start(n: usize) -> (GatewayKeys, Vec<u8>, StreamSender, Input) {
        let rng = &mut rand_core::UnwrapErr(getrandom::SysRng);
        let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), rng).unwrap();
        let gateway = GatewayKeys::new(vec![key]).unwrap();
        let session = Preferences::new("gw.example").session(&gateway.encoded_configs()).unwrap();
        let (first, sender, _) =
            session.start_stream("POST", "/v2/models/m/infer", &[], 1024, 1_796_150_000, rng).unwrap();
        let lines = futures_util::stream::iter(
            (0..n).map(|i| Ok(Zeroizing::new(serde_json::to_vec(&request(i as f64)).unwrap()))),
        );
        (gateway, first, sender, Arc::new(Mutex::new(Some(Box::pin(lines)))))
    }

    /// The plaintext of a whole chunked request as the gateway opens it (header, chunks,
    /// the final chunk required).
    fn open_request(gateway: &GatewayKeys, wire: &[u8]) -> Vec<u8> {
        let mut header = RequestHeaderReader::new();
        let used = header.push(wire).unwrap();
        let (mut opener, _) = gateway.decapsulate_chunked(header).unwrap();
        let mut plaintext = Vec::new();
        for chunk in opener.push(&wire[used..]).unwrap() {
            plaintext.extend_from_slice(&chunk);
        }
        plaintext.extend_from_slice(&opener.finish().expect("the request ends with its final chunk"));
        plaintext
    }

    #[tokio::test]
    async fn the_input_is_untouched_until_the_gateway_accepts_the_header() {
        let (_, first, sender, input) = start(3);
        let (go, go_rx) = oneshot::channel::<()>();
        let sent = Arc::new(AtomicU64::new(0));
        let failure = Failure::default();
        let mut body =
            Box::pin(request_body(first.clone(), sender, go_rx, input.clone(), sent.clone(), failure.clone()));
        assert_eq!(body.next().await.unwrap().unwrap(), first);
        drop(go);
        assert!(body.next().await.unwrap().is_err(), "an abandoned body fails the request");
        assert!(body.next().await.is_none());
        assert_eq!(sent.load(Ordering::Acquire), 0);
        assert!(input.lock().unwrap().is_some(), "the input stays for the next attempt");
        assert!(failure.lock().unwrap().is_none(), "nothing failed on the client's side");
    }

    #[tokio::test]
    async fn the_body_is_one_chunk_per_request_then_the_final_chunk() {
        let (gateway, first, sender, input) = start(3);
        let (go, go_rx) = oneshot::channel();
        let sent = Arc::new(AtomicU64::new(0));
        let body = request_body(first, sender, go_rx, input.clone(), sent.clone(), Failure::default());
        go.send(()).unwrap();
        let pieces: Vec<Vec<u8>> = body.map(|piece| piece.unwrap()).collect().await;
        // The three requests are ready at once, so their chunks and the final one go together.
        assert_eq!(pieces.len(), 2, "head, then the lines and the final chunk");
        assert_eq!(sent.load(Ordering::Acquire), 3);
        assert!(input.lock().unwrap().is_none(), "the input was taken");

        let plaintext = open_request(&gateway, &pieces.concat());
        let mut decoder = bstream::Decoder::request();
        let mut parts = decoder.push(&plaintext).unwrap();
        parts.extend(decoder.finish().unwrap());
        let body: Vec<u8> = parts
            .into_iter()
            .filter_map(|p| match p {
                bstream::Part::Body(piece) => Some(piece.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        let lines: Vec<InferenceRequest> =
            body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert_eq!(lines, vec![request(0.0), request(1.0), request(2.0)]);
    }

    #[tokio::test]
    async fn a_line_that_cannot_be_sent_ends_the_body_with_its_own_error() {
        let (gateway, first, sender, _) = start(0);
        let first_bytes = first.clone();
        let lines: Vec<Result<Zeroizing<Vec<u8>>>> = vec![
            Ok(Zeroizing::new(b"{\"inputs\":[]}\n".to_vec())),
            Ok(Zeroizing::new(b"{\"inputs\":\n[]}".to_vec())),
            Ok(Zeroizing::new(b"{}".to_vec())),
        ];
        let input: Input = Arc::new(Mutex::new(Some(Box::pin(futures_util::stream::iter(lines)))));
        let (go, go_rx) = oneshot::channel();
        let (sent, failure) = (Arc::new(AtomicU64::new(0)), Failure::default());
        let mut body = Box::pin(request_body(first, sender, go_rx, input, sent.clone(), failure.clone()));
        go.send(()).unwrap();
        assert!(body.next().await.unwrap().is_ok(), "the head");
        let rest = body.next().await.unwrap().expect("the line before it, then the final chunk");
        assert!(body.next().await.is_none(), "nothing after the line with a break inside");
        assert_eq!(sent.load(Ordering::Acquire), 1, "the line before it was sealed");
        let plaintext = open_request(&gateway, &[first_bytes, rest].concat());
        assert!(
            plaintext.windows(13).any(|w| w == b"{\"inputs\":[]}") && !plaintext.windows(2).any(|w| w == b"{}"),
            "the first line is in the request, the one after the broken line is not"
        );
        let e = failure.lock().unwrap().take().expect("the reason is kept");
        assert!(matches!(e.exchange(), Some(sealgate_client_core::Error::InvalidLine)), "{e}");
    }

    #[tokio::test]
    async fn answer_lines_become_answers_or_errors() {
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        let line = |text: &str| StreamEvent::Line(zeroize::Zeroizing::new(text.as_bytes().to_vec()));
        assert!(deliver(StreamEvent::Head { status: 200 }, &tx).await);
        assert!(deliver(line(r#"{"model_name":"m","outputs":[]}"#), &tx).await);
        assert!(deliver(line(r#"{"error":"over the rate","status":429,"line":2}"#), &tx).await);
        assert!(deliver(line("not json"), &tx).await);
        let first = parse_answer(rx.recv().await.unwrap()).unwrap();
        assert_eq!(first.model_name, "m");
        let e = rx.recv().await.unwrap().unwrap_err();
        assert!(e.is_retryable() && e.status() == Some(429), "{e}");
        assert!(matches!(e.exchange(), Some(sealgate_client_core::Error::Line { line: 2, .. })));
        let raw = rx.recv().await.unwrap().unwrap();
        assert_eq!(raw.as_slice(), b"not json", "raw lines come as they are");
        assert!(matches!(parse_answer(Ok(raw)), Err(Error::InvalidResponse(_))));
        drop(rx);
        assert!(!deliver(line("{}"), &tx).await, "a caller that is gone stops the reading");
    }
}

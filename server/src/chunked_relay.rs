//! The chunked path of the gateway resource: `POST /.well-known/ohttp-gateway` with
//! `content-type: message/ohttp-chunked-req` (draft-ietf-ohai-chunked-ohttp-08), streamed
//! in both directions with bounded memory.
//!
//! The request header is read and decapsulated as soon as its bytes are in; from then on
//! the outer answer is `200 message/ohttp-chunked-res` and everything else is inside the
//! encryption, as on the one-shot path. Two tasks then run side by side:
//!
//! - the **reader** opens request chunks as the outer body delivers them, decodes the
//!   indeterminate-length Binary HTTP message inside (RFC 9292 section 3.2), hands its head
//!   to the producer and its body pieces to the inner request's body through a channel of
//!   two pieces, one piece per outer frame however many lines it holds (so a slow inner
//!   consumer slows the reader, and the reader slows the client's sending through TCP);
//! - the **producer** runs the inner request on the inner router, encodes the inner response
//!   incrementally and seals each body frame as it comes (an NDJSON answer line is one
//!   chunk; the chunks of the frames ready at the same moment go out as one write), then the
//!   final chunk, into the outer body through a channel of two writes. The
//!   transport pulls that body, so a client that stops reading stops the producer, which
//!   stops pulling answer lines, which stops the scoring, which stops taking request lines.
//!
//! Timeouts bound every wait: the reader gives up on a client that sends nothing for the
//! request timeout (the inner body then fails, and an NDJSON answer ends with its error
//! line), and the producer gives up on a client that reads nothing for as long: it drops the
//! inner request, the scoring and everything they hold, and ends the outer body without a
//! final chunk, which the client sees as a truncated response. A request chunk that does not
//! decrypt, a missing final chunk or bytes after it make the inner body fail the same way.
//! The request holds its in-flight permit until the producer ends.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use sealgate_protocol::bhttp::{self, stream as bstream};
use sealgate_protocol::chunked::{RequestHeaderReader, RequestOpener, ResponseSealer};
use sealgate_protocol::media_type;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use sealgate_server::metrics::{self, Refusal};

use crate::gateway::{Gateway, Unfresh, error_response, from_http_head, served_model_in, to_http_head};
use crate::problem::Problem;

/// The largest plaintext of one response chunk: a larger inner body frame (a big JSON
/// answer) is split, so clients can bound what they buffer per chunk.
pub const RESPONSE_CHUNK: usize = 64 * 1024;

/// Why the inner request's body failed; the inner router only sees that it did.
#[derive(Debug)]
struct BodyFailed(&'static str);

impl std::fmt::Display for BodyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyFailed {}

type Piece = Result<Frame<Bytes>, BodyFailed>;

/// Handles a chunked encapsulated request that holds its in-flight `permit`.
pub async fn relay(
    gw: Arc<Gateway>,
    request: Request,
    started: Instant,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Response, (Refusal, Problem)> {
    let limits = gw.limits();
    let mut body = request.into_body();
    let mut reader = RequestHeaderReader::new();
    let mut rest = Vec::new();
    while !reader.is_complete() {
        let frame = match tokio::time::timeout(limits.request_timeout, body.frame()).await {
            Err(_) => return Err((Refusal::Timeout, Problem::Timeout)),
            Ok(None) => {
                return Err((Refusal::Malformed, Problem::BadRequest("the chunked request ends inside its header")));
            }
            Ok(Some(Err(_))) => {
                return Err((Refusal::Unreadable, Problem::BadRequest("the request body could not be read")));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let used = reader.push(&data).map_err(|e| (crate::gateway::refusal_of(&e), Problem::from_decapsulation(&e)))?;
        rest.extend_from_slice(&data[used..]);
    }
    let key_id = reader.header().map_or(0, |h| h.key_id);
    let enc = reader.enc().unwrap_or_default().to_vec();
    let decapsulating = Instant::now();
    let (opener, responder) = gw.key_set_keys().decapsulate_chunked(reader).map_err(|e| {
        crate::gateway::log_refusal(&e);
        (crate::gateway::refusal_of(&e), Problem::from_decapsulation(&e))
    })?;
    let opener = opener.with_max_chunk(limits.max_body_bytes);
    let metrics = metrics::global();
    metrics.decapsulated(key_id, decapsulating.elapsed());
    let suite = responder.suite();
    let (nonce, sealer) = responder
        .with_max_chunk(RESPONSE_CHUNK)
        .start(&mut crate::gateway::response_rng())
        .map_err(|_| (Refusal::Malformed, Problem::BadRequest("the response could not be set up")))?;

    // From here on the client can read our answer, so every outcome is an encrypted one.
    let (head_tx, head_rx) = oneshot::channel();
    let (piece_tx, piece_rx) = mpsc::channel::<Piece>(2);
    let read = tokio::spawn(read_request(body, rest, opener, head_tx, piece_tx, limits.request_timeout));
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(2);
    let in_flight = metrics.in_flight();
    tokio::spawn(async move {
        let outcome = produce(&gw, head_rx, piece_rx, sealer, &enc, &out_tx).await;
        let (model, inner_status, complete) = outcome;
        // A client that stopped reading is dropped with everything it holds. After a complete
        // answer the reader ends on its own (at the end of the body, or after draining what
        // follows a failed chunk).
        if !complete {
            read.abort();
        }
        metrics.answered(metrics.model(model.as_deref()), inner_status);
        metrics.request_finished(started.elapsed());
        tracing::info!(
            kem = suite.kem.name(),
            aead = suite.aead.name(),
            inner_status,
            model = model.as_deref().unwrap_or("-"),
            complete,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "served chunked encapsulated request"
        );
        drop((in_flight, permit));
    });
    let first = futures_util::stream::once(async move { Bytes::from(nonce) });
    let chunks = futures_util::stream::unfold(out_rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let stream =
        futures_util::StreamExt::map(futures_util::StreamExt::chain(first, chunks), Ok::<_, std::convert::Infallible>);
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_CHUNKED_RESPONSE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The reader task: outer body bytes to request chunks to the inner request's head and body.
async fn read_request(
    mut body: Body,
    first: Vec<u8>,
    mut opener: RequestOpener,
    head_tx: oneshot::Sender<Result<bhttp::Request, &'static str>>,
    pieces: mpsc::Sender<Piece>,
    idle: std::time::Duration,
) {
    let mut decoder = bstream::Decoder::request();
    let mut head_tx = Some(head_tx);
    // Hands `parts` on; false once nobody listens or the message is over.
    async fn deliver(
        parts: Vec<bstream::Part>,
        head_tx: &mut Option<oneshot::Sender<Result<bhttp::Request, &'static str>>>,
        pieces: &mpsc::Sender<Piece>,
    ) -> bool {
        // The body pieces of one outer frame go on as one: one hand-off per frame, not per
        // line (an outer frame is at most the transport's frame size).
        let mut body = Vec::new();
        let mut ended = false;
        for part in parts {
            match part {
                bstream::Part::Request(head) => {
                    if let Some(tx) = head_tx.take() {
                        let _ = tx.send(Ok(head));
                    }
                }
                bstream::Part::Body(bytes) => body.extend_from_slice(&bytes),
                bstream::Part::Response(_) => {}
                bstream::Part::End { .. } => ended = true,
            }
        }
        if !body.is_empty() && pieces.send(Ok(Frame::data(Bytes::from(body)))).await.is_err() {
            return false;
        }
        !ended
    }
    let fail = |head_tx: &mut Option<oneshot::Sender<Result<bhttp::Request, &'static str>>>, why: &'static str| {
        if let Some(tx) = head_tx.take() {
            let _ = tx.send(Err(why));
        }
        why
    };
    let mut pending = Some(first);
    loop {
        let data = match pending.take() {
            Some(bytes) => Bytes::from(bytes),
            None => match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    let why = fail(&mut head_tx, "the client sent nothing for the request timeout");
                    let _ = pieces.send(Err(BodyFailed(why))).await;
                    return;
                }
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Ok(Some(Err(_))) => {
                    let why = fail(&mut head_tx, "the request body could not be read");
                    let _ = pieces.send(Err(BodyFailed(why))).await;
                    return;
                }
                Ok(None) => break,
            },
        };
        // The chunks that authenticated are handed on even when a later one in the same
        // bytes fails: their lines are answered, then the error.
        let mut opened = Vec::new();
        let failed = opener.push_into(&data, &mut opened).is_err();
        let mut parts = Vec::new();
        for chunk in opened {
            match decoder.push(&chunk) {
                Ok(more) => parts.extend(more),
                Err(_) => {
                    deliver(parts, &mut head_tx, &pieces).await;
                    let why = fail(&mut head_tx, "the decrypted request is not valid Binary HTTP (RFC 9292)");
                    let _ = pieces.send(Err(BodyFailed(why))).await;
                    return drain(body, idle).await;
                }
            }
        }
        if !deliver(parts, &mut head_tx, &pieces).await {
            // Answered without the rest of the body (a refusal), or the message ended early:
            // what the client still sends is read and dropped.
            return drain(body, idle).await;
        }
        if failed {
            let why = fail(&mut head_tx, "a request chunk did not decrypt or was malformed");
            let _ = pieces.send(Err(BodyFailed(why))).await;
            return drain(body, idle).await;
        }
    }
    // The outer body ended: the final chunk, then the end of the message.
    let last = match opener.finish() {
        Ok(last) => last,
        Err(_) => {
            let why =
                fail(&mut head_tx, "the chunked request was cut off before its final chunk, or it did not decrypt");
            let _ = pieces.send(Err(BodyFailed(why))).await;
            return;
        }
    };
    let parts = decoder.push(&last).and_then(|mut parts| {
        parts.extend(decoder.finish()?);
        Ok(parts)
    });
    match parts {
        Ok(parts) => {
            deliver(parts, &mut head_tx, &pieces).await;
        }
        Err(_) => {
            let why = fail(&mut head_tx, "the decrypted request is not valid Binary HTTP (RFC 9292)");
            let _ = pieces.send(Err(BodyFailed(why))).await;
        }
    }
}

/// The most of a failed request's remaining body that is read and thrown away.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads and discards the rest of a request whose chunks failed (up to [`DRAIN_LIMIT`], each
/// read bounded by `idle`), so a client still sending can finish and read the answer that
/// says why; an HTTP/1.1 client would otherwise see its upload cut off first.
async fn drain(mut body: Body, idle: std::time::Duration) {
    let mut read = 0usize;
    while read < DRAIN_LIMIT {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

/// The producer task: runs the inner request and streams its sealed answer into `out`.
/// Returns the model (for the log and metrics), the inner status, and whether the answer
/// was sent to its final chunk.
/// The inner answer to a request [`Gateway::check_fresh`] refused. The outer status of a
/// chunked exchange is sent before its head is decrypted, so an unreachable replay store is
/// an inner `503` here (with `Retry-After`), not the one-shot path's outer one.
fn unfresh_answer(unfresh: Unfresh) -> bhttp::Response {
    match unfresh {
        Unfresh::Answer(answer) => answer,
        Unfresh::StoreUnreachable => {
            let mut answer = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway cannot check this request against replays right now; try again shortly".into(),
            );
            answer.headers.push(bhttp::Field::new("retry-after", "1"));
            answer
        }
    }
}

async fn produce(
    gw: &Gateway,
    head_rx: oneshot::Receiver<Result<bhttp::Request, &'static str>>,
    piece_rx: mpsc::Receiver<Piece>,
    mut sealer: ResponseSealer,
    enc: &[u8],
    out: &mpsc::Sender<Bytes>,
) -> (Option<String>, u16, bool) {
    let limits = gw.limits();
    let timeout = limits.request_timeout;
    let head = match tokio::time::timeout(timeout, head_rx).await {
        Ok(Ok(Ok(head))) => Ok(head),
        Ok(Ok(Err(why))) => Err(error_response(StatusCode::BAD_REQUEST, why.into())),
        Ok(Err(_)) => Err(error_response(StatusCode::BAD_REQUEST, "the request ended before its head".into())),
        Err(_) => Err(error_response(StatusCode::REQUEST_TIMEOUT, "the request head did not arrive in time".into())),
    };
    let fresh = match &head {
        Ok(head) => gw.check_fresh(head, enc).await,
        Err(_) => Ok(()),
    };
    let (model, response) = match head {
        Err(answer) => (None, Err(answer)),
        Ok(head) if let Err(unfresh) = fresh => {
            (served_model_in(&head.path, gw.model_names()), Err(unfresh_answer(unfresh)))
        }
        Ok(head) => {
            let model = served_model_in(&head.path, gw.model_names());
            let stream =
                futures_util::stream::unfold(piece_rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
            let body = Body::new(http_body_util::StreamBody::new(stream));
            match to_http_head(head, body) {
                Err(msg) => (model, Err(error_response(StatusCode::BAD_REQUEST, msg.into()))),
                Ok(request) => match tokio::time::timeout(timeout, gw.inner_router().oneshot(request)).await {
                    Ok(Ok(response)) => (model, Ok(response)),
                    Ok(Err(never)) => match never {},
                    Err(_) => (model, Err(error_response(StatusCode::GATEWAY_TIMEOUT, "inference timed out".into()))),
                },
            }
        }
    };
    let send = |bytes: Vec<u8>| async move {
        matches!(tokio::time::timeout(timeout, out.send(Bytes::from(bytes))).await, Ok(Ok(())))
    };
    let (mut encoder, mut body, status) = match response {
        Err(answer) => {
            // Head and body in one chunk: an error answer is small.
            let (first, encoder) = bstream::Encoder::response(&answer);
            let status = answer.status;
            let Ok(sealed) = sealer.seal(&first) else { return (model, status, false) };
            if !send(sealed).await {
                return (model, status, false);
            }
            let Ok(last) = sealer.finish(&encoder.finish(&[])) else { return (model, status, false) };
            return (model, status, send(last).await);
        }
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let head = from_http_head(&parts);
            let (first, encoder) = bstream::Encoder::response(&head);
            let Ok(sealed) = sealer.seal(&first) else { return (model, head.status, false) };
            if !send(sealed).await {
                return (model, head.status, false);
            }
            (encoder, body, head.status)
        }
    };
    let mut trailers = Vec::new();
    let mut ended = false;
    while !ended {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            // The inner routers' bodies do not fail; a stalled one is given up on.
            Ok(Some(Err(_))) | Err(_) => return (model, status, false),
        };
        // Each frame (an answer line) is sealed as its own chunk, and the chunks of the
        // frames that are ready now go out in one write: one transport frame for a group of
        // lines scored together, not one per line.
        let mut out = Vec::new();
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            match frame.into_data() {
                Ok(data) => {
                    // Half the chunk size leaves room for each piece's length prefix.
                    for piece in data.chunks(RESPONSE_CHUNK / 2) {
                        let Ok(sealed) = sealer.seal(&encoder.body(piece)) else { return (model, status, false) };
                        out.extend_from_slice(&sealed);
                    }
                }
                Err(frame) => {
                    if let Ok(fields) = frame.into_trailers() {
                        trailers = fields
                            .iter()
                            .map(|(name, value)| bhttp::Field::new(name.as_str(), value.as_bytes()))
                            .collect();
                    }
                }
            }
            if out.len() < RESPONSE_CHUNK {
                match futures_util::FutureExt::now_or_never(body.frame()) {
                    Some(Some(Ok(frame))) => next = Some(frame),
                    Some(None) => ended = true,
                    Some(Some(Err(_))) => return (model, status, false),
                    None => {}
                }
            }
        }
        if !out.is_empty() && !send(out).await {
            // The client stopped reading: everything this request holds is dropped.
            return (model, status, false);
        }
    }
    let Ok(last) = sealer.finish(&encoder.finish(&trailers)) else { return (model, status, false) };
    (model, status, send(last).await)
}

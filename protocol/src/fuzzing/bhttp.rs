//! Fuzz target `bhttp`: Binary HTTP messages (RFC 9292) in both forms, known-length
//! (section 3.1) and indeterminate-length (section 3.2), requests and responses, through
//! every decoder: [`Request::decode`], [`Response::decode`], [`Response::decode_in`] and the
//! incremental [`Decoder`] fed in pieces (the input's first byte picks their size,
//! [`super::slicing`]).
//!
//! Asserted: a decoded message encodes (known-length, and indeterminate-length with
//! [`Encoder`]) to bytes that decode to the same message; `decode_in` agrees with `decode`;
//! and the incremental decoder reaches the one-shot decoder's verdict and message, unless it
//! stopped at one of its own [`Limits`](crate::bhttp::stream::Limits).

use alloc::vec::Vec;

use super::{Seed, sliced, slicing};
use crate::Error;
use crate::bhttp::stream::{Decoder, Encoder, Part};
use crate::bhttp::{Field, Request, Response};

/// The `bhttp` target. It holds nothing.
#[derive(Debug, Default)]
pub struct Target(());

/// A message as the incremental decoder delivered it: the head (its body empty) and the
/// body joined. (The one-shot decoders drop trailers, so they are not compared.)
struct Streamed<H> {
    head: H,
    body: Vec<u8>,
}

impl Target {
    /// The target.
    pub fn new() -> Self {
        Self(())
    }

    /// Decodes `data` (after its slicing byte) as a request and as a response, with every
    /// decoder; true when either decoded.
    pub fn run(&self, data: &[u8]) -> bool {
        let Some((piece, message)) = slicing(data) else { return false };

        let request = Request::decode(message);
        if let Ok(request) = &request {
            assert_eq!(Request::decode(&request.encode()).as_ref(), Ok(request), "known-length request round trip");
            // The indeterminate-length form, the body in two pieces after the head.
            let mut head = request.clone();
            let body = core::mem::take(&mut head.body);
            let (first, second) = body.split_at(body.len() / 2);
            let (mut wire, mut encoder) = Encoder::request(&head);
            wire.extend(encoder.body(first));
            wire.extend(encoder.body(second));
            wire.extend(encoder.finish(&[]));
            assert_eq!(Request::decode(&wire).as_ref(), Ok(request), "indeterminate-length request round trip");
        }
        let streamed = stream(Decoder::request(), message, piece, |part| match part {
            Part::Request(head) => Some(head),
            _ => None,
        });
        compare(&request, streamed, |r| (r.method.clone(), r.scheme.clone(), r.authority.clone(), r.path.clone()));

        let response = Response::decode(message);
        if let Ok(response) = &response {
            assert_eq!(Response::decode(&response.encode()).as_ref(), Ok(response), "known-length response round trip");
            let (mut wire, encoder) = Encoder::response(response);
            wire.extend(encoder.finish(&[]));
            assert_eq!(Response::decode(&wire).as_ref(), Ok(response), "indeterminate-length response round trip");
        }
        // decode_in: the message in a larger buffer, at an offset.
        let mut buffer = alloc::vec![0xa5u8; 3];
        buffer.extend_from_slice(message);
        buffer.push(0xa5);
        let decoded_in = Response::decode_in(buffer, 3..3 + message.len());
        assert_eq!(decoded_in.as_ref().map_err(drop), response.as_ref().map_err(drop), "decode_in agrees with decode");
        let streamed = stream(Decoder::response(), message, piece, |part| match part {
            Part::Response(head) => Some(head),
            _ => None,
        });
        compare(&response, streamed, |r| r.status);

        request.is_ok() || response.is_ok()
    }

    /// Valid messages of both kinds in both forms: with and without headers, content and
    /// trailers, an informational response before the final one, zero padding, and the
    /// truncations section 3.8 allows; each sliced a few ways.
    pub fn seeds(&self) -> Vec<Seed> {
        let mut request = Request::new("POST", "https", "gateway.example", "/v2/models/credit-risk/infer");
        request.headers.push(Field::new("content-type", "application/json"));
        request.headers.push(Field::new("authorization", "Bearer sg_0123456789"));
        request.body =
            b"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1],\"datatype\":\"FP32\",\"data\":[1]}]}".to_vec();
        let get = Request::new("GET", "https", "", "/v2/health/ready");
        let response = Response::new(200, alloc::vec![Field::new("content-type", "application/json")], b"{}".to_vec());
        let empty = Response::new(204, alloc::vec![], alloc::vec![]);

        let mut messages: Vec<(&str, Vec<u8>)> = alloc::vec![
            ("request-known", request.encode()),
            ("request-known-get", get.encode()),
            ("response-known", response.encode()),
            ("response-known-204", empty.encode()),
        ];
        let (mut wire, mut encoder) = Encoder::request(&request);
        wire.extend(encoder.body(b"{\"inputs\":"));
        wire.extend(encoder.body(b"[]}"));
        wire.extend(encoder.finish(&[Field::new("x-checksum", "abc")]));
        messages.push(("request-indeterminate-trailers", wire));
        let (mut wire, encoder) = Encoder::response(&response);
        wire.extend(encoder.finish(&[]));
        messages.push(("response-indeterminate", wire));
        // A 103 Early Hints before the final response (known-length form, by hand).
        let mut hints = alloc::vec![0x01, 0x40, 0x67, 0x07, 0x04, b'l', b'i', b'n', b'k', 0x01, b'x'];
        hints.extend_from_slice(response.encode().get(1..).unwrap_or_default());
        messages.push(("response-informational", hints));
        // Zero padding after a message, and the truncation of empty content and trailers.
        let mut padded = request.encode();
        padded.extend_from_slice(&[0; 5]);
        messages.push(("request-padded", padded));
        let mut truncated = empty.encode();
        truncated.truncate(truncated.len().saturating_sub(2));
        messages.push(("response-truncated", truncated));

        let mut seeds = Vec::new();
        for (name, bytes) in messages {
            for piece in [64, 3] {
                seeds.push((alloc::format!("{name}-{piece}"), sliced(piece, &bytes)));
            }
        }
        seeds
    }
}

/// Runs the incremental decoder over `message` in pieces of `piece` bytes.
fn stream<H>(
    mut decoder: Decoder,
    message: &[u8],
    piece: usize,
    head_of: impl Fn(Part) -> Option<H>,
) -> Result<Streamed<H>, Error> {
    let mut head = None;
    let mut body = Vec::new();
    let mut ended = false;
    let mut parts = Vec::new();
    for piece in message.chunks(piece) {
        parts.extend(decoder.push(piece)?);
    }
    parts.extend(decoder.finish()?);
    for part in parts {
        match part {
            Part::Body(piece) => {
                assert!(head.is_some(), "the body comes after the head");
                body.extend_from_slice(&piece);
            }
            Part::End { .. } => {
                assert!(!ended, "the end comes once");
                ended = true;
            }
            other => {
                assert!(head.is_none() && !ended, "the head comes first, once");
                head = head_of(other);
                assert!(head.is_some(), "a request decoder yields requests, a response decoder responses");
            }
        }
    }
    match head {
        // `finish` succeeded, so the message was complete: it had a head and an end.
        Some(head) if ended => Ok(Streamed { head, body }),
        _ => panic!("the incremental decoder finished without a head and an end"),
    }
}

/// What [`compare`] reads of a decoded message.
trait Message {
    fn headers(&self) -> &[Field];
    fn body(&self) -> &[u8];
}

impl Message for Request {
    fn headers(&self) -> &[Field] {
        &self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl Message for Response {
    fn headers(&self) -> &[Field] {
        &self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Checks that the incremental decoder reached the one-shot decoder's verdict and message.
fn compare<M: Message, K: PartialEq + core::fmt::Debug>(
    one_shot: &Result<M, Error>,
    streamed: Result<Streamed<M>, Error>,
    control: impl Fn(&M) -> K,
) {
    match (one_shot, streamed) {
        (Ok(message), Ok(streamed)) => {
            assert_eq!(control(message), control(&streamed.head), "the same control data");
            assert!(message.headers() == streamed.head.headers(), "the same header fields");
            assert!(streamed.head.body().is_empty(), "the streamed head has no body");
            assert!(message.body() == streamed.body.as_slice(), "the same content");
        }
        (Err(_), Err(_)) => {}
        // The incremental decoder bounds what it buffers; the one-shot decoder has the whole
        // message in memory already.
        (Ok(_), Err(Error::BinaryHttpLimit(_))) => {}
        (Ok(_), Err(e)) => panic!("only the one-shot decoder accepted the message (incremental: {e})"),
        (Err(e), Ok(_)) => panic!("only the incremental decoder accepted the message (one-shot: {e})"),
    }
}

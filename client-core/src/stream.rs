//! Streamed exchanges: an NDJSON batch sent line by line in a chunked OHTTP request
//! (draft-ietf-ohai-chunked-ohttp-08) and its answer read line by line, without I/O.
//!
//! [`Session::start_stream`] seals the request header and the inner request's head (an
//! indeterminate-length Binary HTTP request, RFC 9292 section 3.2, `content-type:
//! application/x-ndjson`, the bearer token inside) and splits the exchange in two halves the
//! caller drives independently, since the gateway answers while the request is still being
//! sent: a [`StreamSender`] that turns each request line into one sealed chunk, and a
//! [`StreamReceiver`] that judges the outer answer once and then turns whatever slices of the
//! chunked response arrive into [`StreamEvent`]s.
//!
//! The receiver cuts answer lines itself: the plaintext of a chunk (and a Binary HTTP body
//! piece within it) may end anywhere in a line, and their boundaries carry no meaning, so a
//! line split across chunks (or one byte per chunk) reads the same as one in a single chunk
//! (a browser client once broke on exactly that, brave-core#36291). What it holds is bounded:
//! one partial line of at most `max_line` bytes, else [`Error::LineTooLong`]. A response that
//! ends without its final chunk is [`Error::Protocol`] (truncation), never a quiet end, so a
//! caller cannot take a cut-off stream for a complete one. A gateway error line
//! (`{"error": ..., "status": 400, "line": 3}`) is a line like any other; [`line_error`] reads
//! it, so the SDK and the browser client report it the same way.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use rand_core::CryptoRng;
use sealgate_protocol::bhttp::{self, stream as bstream};
use sealgate_protocol::chunked::{ChunkedClientRequest, RequestSealer, ResponseOpener};
use sealgate_protocol::media_type;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::json::{self, Member};
use crate::session::{OuterResponse, Session, check_status, classify_outer};

/// The media type of a stream of JSON lines, inside the encryption.
pub const NDJSON: &str = "application/x-ndjson";

/// The largest chunk plaintext a stream sends and accepts: the gateway seals answer chunks of
/// at most 64 KiB (its `RESPONSE_CHUNK`) and accepts request chunks up to its body limit.
pub const STREAM_MAX_CHUNK: usize = 64 * 1024;

/// The least plaintext a request line's chunk carries (line break included): shorter lines
/// are padded with spaces before the line break, which JSON ignores. Every sealed line is so
/// at least 256 bytes on the wire, the size under which HTTP/2 implementations count a DATA
/// frame as small: hyper's h2 answers a peer that has sent more than about a thousand small
/// frames it has not consumed yet with GOAWAY `ENHANCE_YOUR_CALM`, which a batch of short
/// lines sent faster than the gateway scores them would otherwise reach. The padding also
/// hides the length of short lines.
pub const MIN_LINE_BYTES: usize = 240;

/// The default longest answer line [`Session::start_stream`] callers pass: 1 MiB, well over
/// any KServe answer of the demo models and under the gateway's answer cap.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

impl Session {
    /// Starts a streamed exchange: `method path` with an NDJSON body, the bearer token and
    /// `extra_headers` inside the encryption, dated `now` (UNIX seconds). Returns the first bytes to send as the body of
    /// `POST` to the gateway resource with `content-type: message/ohttp-chunked-req` (the
    /// request header and the sealed head, so the gateway can start answering at once), the
    /// sender for the lines, and the receiver for the answer. Answer lines longer than
    /// `max_line` bytes are refused ([`Error::LineTooLong`]).
    pub fn start_stream(
        &self,
        method: &str,
        path: &str,
        extra_headers: &[(&str, &str)],
        max_line: usize,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, StreamSender, StreamReceiver)> {
        let mut head = self.preferences.inner_request(method, path, Vec::new());
        head.headers.retain(|field| !field.name.eq_ignore_ascii_case("accept"));
        head.headers.push(bhttp::Field::new("accept", NDJSON));
        head.headers.push(bhttp::Field::new("content-type", NDJSON));
        head.headers.extend(extra_headers.iter().map(|(name, value)| bhttp::Field::new(name, *value)));
        crate::date::set_date(&mut head, now);
        let (mut first, mut sealer, opener) =
            ChunkedClientRequest::new(&self.config, self.suite)?.with_max_chunk(STREAM_MAX_CHUNK).start(rng)?;
        let (encoded_head, encoder) = bstream::Encoder::request(&head);
        // The head is secret too (the token): zeroize the plaintext once sealed.
        first.extend(sealer.seal(&Zeroizing::new(encoded_head))?);
        let receiver = StreamReceiver {
            opener: Some(opener),
            decoder: Some(bstream::Decoder::response()),
            gateway_url: self.gateway_url.clone(),
            max_age: self.max_age,
            max_line: max_line.max(1),
            status: None,
            partial: Zeroizing::new(Vec::new()),
            failed: None,
        };
        Ok((first, StreamSender { sealer, encoder, lines: 0 }, receiver))
    }
}

/// Seals the lines of a streamed request, each as its own chunk, in order. Consumed by
/// [`StreamSender::finish`], which ends the request.
pub struct StreamSender {
    sealer: RequestSealer,
    encoder: bstream::Encoder,
    lines: u64,
}

impl core::fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamSender").field("lines", &self.lines).finish_non_exhaustive()
    }
}

impl StreamSender {
    /// Seals one request line (a JSON value without its newline; a trailing `\n` is allowed)
    /// as one Binary HTTP body piece in one chunk (more than one only past
    /// [`STREAM_MAX_CHUNK`]), padded to [`MIN_LINE_BYTES`], and returns the bytes to send. A
    /// line break inside the line is [`Error::InvalidLine`]: it would shift the numbering of
    /// every answer after it.
    pub fn line(&mut self, line: &[u8]) -> Result<Vec<u8>> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.iter().any(|&b| b == b'\n' || b == b'\r') {
            return Err(Error::InvalidLine);
        }
        let mut text = Zeroizing::new(Vec::with_capacity(MIN_LINE_BYTES.max(line.len() + 1)));
        text.extend_from_slice(line);
        text.resize(MIN_LINE_BYTES.saturating_sub(1).max(line.len()), b' ');
        text.push(b'\n');
        let piece = Zeroizing::new(self.encoder.body(&text));
        self.lines += 1;
        Ok(self.sealer.seal(&piece)?)
    }

    /// The number of lines sealed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Ends the request: the Binary HTTP content terminator (no trailers) in the final chunk.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.sealer.finish(&self.encoder.finish(&[]))?)
    }
}

/// What the outer answer to a streamed request means.
#[derive(Debug)]
pub enum StreamStart {
    /// `200 message/ohttp-chunked-res`: feed its body to [`StreamReceiver::push`].
    Answering,
    /// The gateway no longer accepts the key configuration: fetch it again. Whether the
    /// stream can be sent once more is the caller's to decide (its lines may be gone).
    RefetchKeys(Error),
}

/// One thing read from a streamed answer.
#[derive(Debug)]
pub enum StreamEvent {
    /// The inner response's status, once, before anything else. A 2xx is followed by
    /// [`StreamEvent::Line`]s; any other status by one [`StreamEvent::Refused`].
    Head {
        /// The inner HTTP status.
        status: u16,
    },
    /// One answer line, without its line break, in request order; zeroized on drop. It may
    /// be a gateway error line: see [`line_error`].
    Line(Zeroizing<Vec<u8>>),
    /// The inner response was an error for the whole stream (401, 403, 404, 429 ...), read
    /// like a single request's ([`check_status`]): [`Error::Inference`].
    Refused(Error),
}

/// Opens a streamed answer and cuts it into [`StreamEvent`]s. After an error it stays
/// failed and returns the same error.
pub struct StreamReceiver {
    opener: Option<ResponseOpener>,
    decoder: Option<bstream::Decoder>,
    gateway_url: String,
    max_age: Option<Duration>,
    max_line: usize,
    /// The inner status, once the head was read.
    status: Option<u16>,
    /// The line read so far (or, after an error status, the error body).
    partial: Zeroizing<Vec<u8>>,
    failed: Option<Error>,
}

impl core::fmt::Debug for StreamReceiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamReceiver")
            .field("status", &self.status)
            .field("max_line", &self.max_line)
            .finish_non_exhaustive()
    }
}

impl StreamReceiver {
    /// Judges the outer answer (its status and headers; the body too when it is not a
    /// success): `200 message/ohttp-chunked-res` goes on, the `ohttp-key` problem is
    /// [`StreamStart::RefetchKeys`], and anything else is the error [`crate::Pending::finish`]
    /// would give (problem details, overloaded, not a gateway).
    pub fn check_outer(&self, answer: &OuterResponse<'_>) -> Result<StreamStart> {
        self.check_outer_at(answer, Duration::ZERO)
    }

    /// [`StreamReceiver::check_outer`] for a key configuration fetched `config_age` ago,
    /// with the max-age rule of [`crate::Pending::finish_at`].
    pub fn check_outer_at(&self, answer: &OuterResponse<'_>, config_age: Duration) -> Result<StreamStart> {
        let expected = media_type::OHTTP_CHUNKED_RESPONSE;
        Ok(match classify_outer(answer, expected, &self.gateway_url, self.max_age, config_age)? {
            Some(e) => StreamStart::RefetchKeys(e),
            None => StreamStart::Answering,
        })
    }

    /// Feeds the next bytes of the outer response body, any number at a time, and returns
    /// the events they complete.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<StreamEvent>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.consume(input);
        self.fail_on(result)
    }

    /// Ends the response: opens the final chunk and returns the last events. A response
    /// without its final chunk is [`Error::Protocol`] (truncated).
    pub fn finish(mut self) -> Result<Vec<StreamEvent>> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut events = Vec::new();
        let opener = self.opener.take().ok_or(Error::Protocol(sealgate_protocol::Error::MissingFinalChunk))?;
        let last = opener.finish()?;
        let decoder = self.decoder.as_mut().ok_or(Error::Protocol(sealgate_protocol::Error::MissingFinalChunk))?;
        let mut parts = decoder.push(&last)?;
        if let Some(decoder) = self.decoder.take() {
            parts.extend(decoder.finish()?);
        }
        self.parts(parts, &mut events)?;
        match self.status {
            Some(status) if (200..300).contains(&status) => {
                let rest = core::mem::take(&mut *self.partial);
                if !is_blank(&rest) {
                    events.push(StreamEvent::Line(Zeroizing::new(rest)));
                }
            }
            Some(status) => {
                let body = core::mem::take(&mut *self.partial);
                let refused = check_status(bhttp::Response::new(status, Vec::new(), body)).err();
                events.push(StreamEvent::Refused(
                    refused.unwrap_or(Error::Inference { status, message: alloc::format!("HTTP status {status}") }),
                ));
            }
            None => return Err(Error::Protocol(sealgate_protocol::Error::BinaryHttp("no response head"))),
        }
        Ok(events)
    }

    fn fail_on<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.partial.clear();
        }
        result
    }

    fn consume(&mut self, input: &[u8]) -> Result<Vec<StreamEvent>> {
        let mut events = Vec::new();
        let (Some(opener), Some(decoder)) = (self.opener.as_mut(), self.decoder.as_mut()) else {
            return Ok(events);
        };
        let mut parts = Vec::new();
        for chunk in opener.push(input)? {
            parts.extend(decoder.push(&chunk)?);
        }
        self.parts(parts, &mut events)?;
        Ok(events)
    }

    fn parts(&mut self, parts: Vec<bstream::Part>, events: &mut Vec<StreamEvent>) -> Result<()> {
        for part in parts {
            match part {
                bstream::Part::Response(head) => {
                    self.status = Some(head.status);
                    events.push(StreamEvent::Head { status: head.status });
                }
                bstream::Part::Body(piece) => self.body(&piece, events)?,
                // The end of the message comes with the final chunk; `finish` handles it.
                bstream::Part::End { .. } | bstream::Part::Request(_) => {}
            }
        }
        Ok(())
    }

    /// Cuts `piece` into lines, joining the partial line held from earlier pieces.
    fn body(&mut self, mut piece: &[u8], events: &mut Vec<StreamEvent>) -> Result<()> {
        let lines = self.status.is_some_and(|status| (200..300).contains(&status));
        if !lines {
            // An error body is one small JSON object, held to the same bound.
            return self.extend_partial(piece);
        }
        while let Some(end) = piece.iter().position(|&b| b == b'\n') {
            let (head, rest) = piece.split_at(end);
            self.extend_partial(head)?;
            piece = rest.get(1..).unwrap_or_default();
            let line = core::mem::replace(&mut self.partial, Zeroizing::new(Vec::new()));
            if !is_blank(&line) {
                let mut line = line;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                events.push(StreamEvent::Line(line));
            }
        }
        self.extend_partial(piece)
    }

    fn extend_partial(&mut self, bytes: &[u8]) -> Result<()> {
        if self.partial.len().saturating_add(bytes.len()) > self.max_line {
            return Err(Error::LineTooLong { max: self.max_line });
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Reads a gateway error line, `{"error": "...", "status": 400, "line": 3}`, as
/// [`Error::Line`]; `None` for any other line (an answer). The gateway never puts an `error`
/// member, a `status` and a `line` together in a KServe answer, so an answer is never taken
/// for an error.
pub fn line_error(line: &[u8]) -> Option<Error> {
    // Answers are the common case: skip the full read when the line cannot be an error line.
    if !line.windows(7).any(|w| w == b"\"error\"") {
        return None;
    }
    match json::members(line, ["error", "status", "line"])? {
        [Some(Member::String(message)), Some(Member::Unsigned(status)), Some(Member::Unsigned(number))] => {
            Some(Error::Line { line: number, status: u16::try_from(status).ok()?, message })
        }
        _ => None,
    }
}

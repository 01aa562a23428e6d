//! Binary HTTP messages produced and consumed piece by piece (RFC 9292): the encoder writes
//! the indeterminate-length form (section 3.2) as the body comes, and the decoder reads
//! either form from slices of any size, yielding the head, the body in pieces and the end.
//!
//! This is what travels inside chunked OHTTP ([`crate::chunked`]): the gateway starts
//! answering before the request is complete, and neither side holds a whole body. The
//! decoder buffers only one length-prefixed item of the head or the trailers at a time,
//! bounded by [`Limits`]; body bytes are passed through as they arrive. Truncation
//! (section 3.8: a message that ends after its header section or its content, or right
//! after its control data as RFC 9458 Appendix A's messages do) and zero padding are
//! accepted, as by the known-length decoder in the parent module; every other
//! malformation is an [`Error::BinaryHttp`] naming the field, and a limit is
//! [`Error::BinaryHttpLimit`].
//!
//! ```
//! use sealgate_protocol::bhttp::{Request, stream::{Decoder, Encoder, Part}};
//! let mut head = Request::new("POST", "https", "gw.example", "/v2/models/m/infer");
//! head.headers.push(sealgate_protocol::bhttp::Field::new("content-type", "application/x-ndjson"));
//! let (mut wire, mut encoder) = Encoder::request(&head);
//! wire.extend(encoder.body(b"{\"a\":1}\n"));
//! wire.extend(encoder.body(b"{\"a\":2}\n"));
//! wire.extend(encoder.finish(&[]));
//!
//! let mut decoder = Decoder::request();
//! let mut body = Vec::new();
//! for byte in &wire {
//!     for part in decoder.push(core::slice::from_ref(byte))? {
//!         match part {
//!             Part::Request(head) => assert_eq!(head.path, "/v2/models/m/infer"),
//!             Part::Body(piece) => body.extend_from_slice(&piece),
//!             Part::End { trailers } => assert!(trailers.is_empty()),
//!             Part::Response(_) => unreachable!(),
//!         }
//!     }
//! }
//! decoder.finish()?;
//! assert_eq!(body, b"{\"a\":1}\n{\"a\":2}\n");
//! # Ok::<(), sealgate_protocol::Error>(())
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use super::{
    Field, INDETERMINATE_REQUEST, INDETERMINATE_RESPONSE, KNOWN_REQUEST, KNOWN_RESPONSE, Request, Response, is_tchar,
    put_prefixed, read_field,
};
use crate::error::{Error, Result};
use crate::varint::{self, Reader};

/// Writes one message in the indeterminate-length form: the head, then body pieces, then
/// the content terminator and the trailers. Single use: [`Encoder::finish`] consumes it.
#[derive(Debug)]
pub struct Encoder {
    _private: (),
}

impl Encoder {
    /// Starts a request: framing indicator 2, control data and header section, and the
    /// request's `body` (if any) as the first body piece.
    pub fn request(head: &Request) -> (Vec<u8>, Self) {
        let mut out = Vec::with_capacity(64 + head.body.len());
        varint::encode(INDETERMINATE_REQUEST, &mut out);
        for part in [&head.method, &head.scheme, &head.authority, &head.path] {
            put_prefixed(part.as_bytes(), &mut out);
        }
        put_fields(&head.headers, &mut out);
        put_piece(&head.body, &mut out);
        (out, Self { _private: () })
    }

    /// Starts a response: framing indicator 3, status and header section, and the
    /// response's `body` (if any) as the first body piece.
    pub fn response(head: &Response) -> (Vec<u8>, Self) {
        let mut out = Vec::with_capacity(32 + head.body.len());
        varint::encode(INDETERMINATE_RESPONSE, &mut out);
        varint::encode(u64::from(head.status), &mut out);
        put_fields(&head.headers, &mut out);
        put_piece(&head.body, &mut out);
        (out, Self { _private: () })
    }

    /// One body piece, `varint(len) | bytes`; an empty piece writes nothing, since a zero
    /// length is the content terminator.
    pub fn body(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 8);
        put_piece(bytes, &mut out);
        out
    }

    /// The content terminator and the trailer section, which end the message.
    pub fn finish(self, trailers: &[Field]) -> Vec<u8> {
        let mut out = Vec::new();
        varint::encode(0, &mut out);
        put_fields(trailers, &mut out);
        out
    }
}

fn put_piece(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() {
        put_prefixed(bytes, out);
    }
}

/// An indeterminate-length field section: name/value pairs and a zero-length name.
fn put_fields(fields: &[Field], out: &mut Vec<u8>) {
    for field in fields {
        put_prefixed(field.name.as_bytes(), out);
        put_prefixed(&field.value, out);
    }
    varint::encode(0, out);
}

/// Bounds on what the decoder buffers. Body bytes are never buffered, and not bounded here
/// either: the caller counts them as they come (a gateway has its own body limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of control data and header fields together (and, separately, of
    /// trailer fields): names, values and their length prefixes. Default 64 KiB.
    pub max_header_bytes: usize,
    /// The most fields in the header section (and, separately, in the trailers).
    /// Default 256.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_header_bytes: 64 * 1024, max_fields: 256 }
    }
}

/// What the decoder yields, in this order: the head once, body pieces, the end once.
pub enum Part {
    /// The head of a request; its `body` is empty (the body follows as [`Part::Body`]).
    Request(Request),
    /// The head of the final response (informational responses are skipped); its `body`
    /// is empty.
    Response(Response),
    /// The next bytes of the body, zeroized on drop. Their boundaries carry no meaning.
    Body(Zeroizing<Vec<u8>>),
    /// The message is complete; trailer fields, if any.
    End {
        /// The trailer section.
        trailers: Vec<Field>,
    },
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Request(r) => f.debug_tuple("Request").field(r).finish(),
            Part::Response(r) => f.debug_tuple("Response").field(r).finish(),
            Part::Body(b) => write!(f, "Body(<{} bytes>)", b.len()),
            Part::End { trailers } => f.debug_struct("End").field("trailers", trailers).finish(),
        }
    }
}

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Framing,
    /// Request control data: method, scheme, authority, path (index 0..4).
    Control(u8),
    /// A response status code (informational ones loop back here).
    Status,
    /// A field section: `trailers` or headers; for an informational response's headers,
    /// `informational`.
    Fields {
        trailers: bool,
        informational: bool,
    },
    /// The content: its length (known-length) or the next chunk length (indeterminate).
    ContentLength,
    /// Inside content; `remaining` bytes of the current block or chunk.
    Content {
        remaining: u64,
    },
    /// After the end: only zero padding.
    Padding,
}

/// Reads one Binary HTTP message incrementally, in either form. Build it with
/// [`Decoder::request`] or [`Decoder::response`], feed it with [`Decoder::push`], end it
/// with [`Decoder::finish`].
pub struct Decoder {
    expect_request: bool,
    limits: Limits,
    indeterminate: bool,
    step: Step,
    /// Bytes of an item not complete yet.
    buf: Vec<u8>,
    /// Head under construction.
    control: [String; 4],
    status: u16,
    fields: Vec<Field>,
    /// Whether any of the content has been read (a cut after the header section is a
    /// clean truncation, a cut inside the content is not).
    content_started: bool,
    /// Bytes of the current section counted against `max_header_bytes`.
    section_bytes: usize,
    /// An error that happened; it is returned again.
    failed: Option<Error>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").field("step", &self.step).field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// What the next item parse produced.
enum Item<'a> {
    /// More bytes are needed.
    Incomplete,
    /// A varint and the number of bytes it took.
    Varint(u64, usize),
    /// A length-prefixed byte string and the number of bytes it took in all.
    Bytes(&'a [u8], usize),
}

fn peek_varint(bytes: &[u8]) -> Item<'_> {
    let Some(&first) = bytes.first() else { return Item::Incomplete };
    let len = 1usize << (first >> 6);
    match bytes.get(..len) {
        Some(encoded) => match Reader::new(encoded).varint() {
            Ok(v) => Item::Varint(v, len),
            Err(_) => Item::Incomplete,
        },
        None => Item::Incomplete,
    }
}

impl Decoder {
    /// A decoder for a request, with default [`Limits`].
    pub fn request() -> Self {
        Self::new(true, Limits::default())
    }

    /// A decoder for a response, with default [`Limits`].
    pub fn response() -> Self {
        Self::new(false, Limits::default())
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn new(expect_request: bool, limits: Limits) -> Self {
        Self {
            expect_request,
            limits,
            indeterminate: false,
            step: Step::Framing,
            buf: Vec::new(),
            control: Default::default(),
            status: 0,
            fields: Vec::new(),
            content_started: false,
            section_bytes: 0,
            failed: None,
        }
    }

    /// Feeds the next bytes and returns the parts they complete.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<Part>> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut parts = Vec::new();
        match self.consume(input, &mut parts) {
            Ok(()) => Ok(parts),
            Err(error) => {
                self.failed = Some(error.clone());
                self.buf.clear();
                Err(error)
            }
        }
    }

    /// Ends the input. A message cut after its header section or after its content is
    /// complete (RFC 9292 section 3.8) and yields its [`Part::End`] here; a message cut
    /// anywhere else is an error.
    pub fn finish(mut self) -> Result<Vec<Part>> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let mut parts = Vec::new();
        if !self.buf.is_empty() && self.step != Step::Padding {
            return Err(Error::BinaryHttp("message truncated inside an item"));
        }
        match self.step {
            Step::Padding => {}
            // The message ends after its header section, or after its content: the rest
            // was truncated, which section 3.8 allows.
            Step::ContentLength if !self.content_started => parts.push(Part::End { trailers: Vec::new() }),
            Step::Fields { trailers: true, .. } if self.fields.is_empty() && self.section_bytes == 0 => {
                parts.push(Part::End { trailers: Vec::new() })
            }
            // The message ends right after its control data or final status: the header
            // section is omitted too, which the known-length decoder accepts and RFC 9458's
            // own example messages do (Appendix A's request and its `0140c8` response). Only
            // when nothing of the section was read: a field or a partial item is a cut.
            // (Found by the `bhttp` fuzz target comparing this decoder with the other.)
            Step::Fields { trailers: false, informational: false } if self.fields.is_empty() => {
                self.section_done(false, false, &mut parts);
                parts.push(Part::End { trailers: Vec::new() });
            }
            Step::Framing => return Err(Error::BinaryHttp("empty message")),
            Step::Content { .. } | Step::ContentLength => return Err(Error::BinaryHttp("content truncated")),
            Step::Fields { trailers: true, .. } => return Err(Error::BinaryHttp("trailer section truncated")),
            Step::Control(_) | Step::Status | Step::Fields { .. } => {
                return Err(Error::BinaryHttp("header section truncated"));
            }
        }
        Ok(parts)
    }

    /// Runs the input through, keeping only an incomplete item in `buf`.
    fn consume(&mut self, input: &[u8], parts: &mut Vec<Part>) -> Result<()> {
        if self.buf.is_empty() {
            let rest = self.run(input, parts)?;
            self.buf.extend_from_slice(rest);
        } else {
            // Complete the pending item with the new bytes; a pending item is never body.
            let mut owned = core::mem::take(&mut self.buf);
            owned.extend_from_slice(input);
            let rest = self.run(&owned, parts)?.len();
            let start = owned.len() - rest;
            if start > 0 {
                owned.drain(..start);
            }
            self.buf = owned;
        }
        self.check_pending()
    }

    /// Parses items and passes body bytes through; returns the unconsumed tail, which is
    /// the start of an item not complete yet.
    fn run<'a>(&mut self, mut input: &'a [u8], parts: &mut Vec<Part>) -> Result<&'a [u8]> {
        loop {
            match self.step {
                Step::Content { remaining } => {
                    if input.is_empty() {
                        return Ok(input);
                    }
                    let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                    let (piece, rest) = input.split_at(take);
                    parts.push(Part::Body(Zeroizing::new(piece.to_vec())));
                    input = rest;
                    let remaining = remaining - take as u64;
                    self.step = Step::Content { remaining };
                    if remaining == 0 {
                        self.end_content_block();
                    }
                }
                Step::Padding => {
                    if input.iter().any(|&b| b != 0) {
                        return Err(Error::TrailingData);
                    }
                    return Ok(&[]);
                }
                _ => {
                    if input.is_empty() {
                        return Ok(input);
                    }
                    let used = self.step_once(input, parts)?;
                    if used == 0 {
                        return Ok(input);
                    }
                    input = input.get(used..).unwrap_or_default();
                }
            }
        }
    }

    /// Refuses a pending item that already exceeds the section budget. Items are checked
    /// against the budget as soon as their length prefix is in, so this only catches what
    /// those checks cannot see: the slack is the two varint prefixes (8 bytes each) of an
    /// indeterminate-length field's name and value waiting together.
    fn check_pending(&self) -> Result<()> {
        if self.section_bytes.saturating_add(self.buf.len()) > self.limits.max_header_bytes.saturating_add(16) {
            return Err(Error::BinaryHttpLimit("header section too large"));
        }
        Ok(())
    }

    /// After a content block: a known-length body is over; an indeterminate one expects
    /// the next chunk length.
    fn end_content_block(&mut self) {
        if self.indeterminate {
            self.step = Step::ContentLength;
        } else {
            self.start_fields(true, false);
        }
    }

    fn start_fields(&mut self, trailers: bool, informational: bool) {
        self.step = Step::Fields { trailers, informational };
        self.fields.clear();
        self.section_bytes = 0;
    }

    /// Counts `n` bytes against the current section's budget.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.section_bytes = self.section_bytes.saturating_add(n);
        if self.section_bytes > self.limits.max_header_bytes {
            return Err(Error::BinaryHttpLimit("header section too large"));
        }
        Ok(())
    }

    /// A length-prefixed item whose length is checked against the budget before its bytes
    /// are waited for.
    fn bytes_item<'a>(&mut self, bytes: &'a [u8]) -> Result<Item<'a>> {
        let Item::Varint(len, n) = peek_varint(bytes) else { return Ok(Item::Incomplete) };
        let budget = self.limits.max_header_bytes.saturating_sub(self.section_bytes);
        if len > budget as u64 {
            return Err(Error::BinaryHttpLimit("header section too large"));
        }
        // `len <= budget`, a `usize`.
        let len = usize::try_from(len).map_err(|_| Error::BinaryHttpLimit("header section too large"))?;
        match bytes.get(n..n + len) {
            Some(value) => Ok(Item::Bytes(value, n + len)),
            None => Ok(Item::Incomplete),
        }
    }

    /// Parses at most one item from the start of `bytes`; returns how many bytes it took
    /// (0: incomplete).
    fn step_once(&mut self, bytes: &[u8], parts: &mut Vec<Part>) -> Result<usize> {
        match self.step {
            Step::Framing => {
                let Item::Varint(v, n) = peek_varint(bytes) else { return Ok(0) };
                let (known, indeterminate) = if self.expect_request {
                    (KNOWN_REQUEST, INDETERMINATE_REQUEST)
                } else {
                    (KNOWN_RESPONSE, INDETERMINATE_RESPONSE)
                };
                self.indeterminate = match v {
                    v if v == known => false,
                    v if v == indeterminate => true,
                    _ => {
                        return Err(Error::BinaryHttp(if self.expect_request {
                            "not a request"
                        } else {
                            "not a response"
                        }));
                    }
                };
                self.section_bytes = 0;
                self.step = if self.expect_request { Step::Control(0) } else { Step::Status };
                Ok(n)
            }
            Step::Control(i) => {
                let what =
                    ["method", "scheme", "authority", "path"].get(usize::from(i)).copied().unwrap_or("control data");
                let Item::Bytes(value, n) = self.bytes_item(bytes)? else { return Ok(0) };
                let text = core::str::from_utf8(value).map_err(|_| Error::BinaryHttp(what))?;
                match i {
                    0 if text.is_empty() || !text.bytes().all(is_tchar) => return Err(Error::BinaryHttp("method")),
                    3 if !(text.starts_with('/') || text == "*") || text.bytes().any(|b| b <= b' ' || b == 0x7f) => {
                        return Err(Error::BinaryHttp("path"));
                    }
                    _ => {}
                }
                if let Some(slot) = self.control.get_mut(usize::from(i)) {
                    *slot = text.into();
                }
                self.charge(n)?;
                if i == 3 {
                    // The header section's budget includes the control data.
                    let spent = self.section_bytes;
                    self.start_fields(false, false);
                    self.section_bytes = spent;
                } else {
                    self.step = Step::Control(i + 1);
                }
                Ok(n)
            }
            Step::Status => {
                let Item::Varint(status, n) = peek_varint(bytes) else { return Ok(0) };
                self.charge(n)?;
                let spent = self.section_bytes;
                match status {
                    100..=199 => self.start_fields(false, true),
                    200..=599 => {
                        self.status = status as u16;
                        self.start_fields(false, false);
                    }
                    _ => return Err(Error::BinaryHttp("status")),
                }
                self.section_bytes = spent;
                Ok(n)
            }
            Step::Fields { trailers, informational } => {
                let used =
                    if self.indeterminate { self.indeterminate_field(bytes)? } else { self.known_section(bytes)? };
                if used.is_none() {
                    return Ok(0);
                }
                let (n, done) = used.unwrap_or((0, false));
                if done {
                    self.section_done(trailers, informational, parts);
                }
                Ok(n)
            }
            Step::ContentLength => {
                let Item::Varint(len, n) = peek_varint(bytes) else { return Ok(0) };
                self.content_started = true;
                if len == 0 {
                    // An empty known-length content, or the content terminator.
                    self.start_fields(true, false);
                } else {
                    self.step = Step::Content { remaining: len };
                }
                Ok(n)
            }
            Step::Content { .. } | Step::Padding => Ok(0),
        }
    }

    /// One field (or the terminator) of an indeterminate-length section:
    /// `Some((bytes, section ended))`, or `None` when incomplete.
    fn indeterminate_field(&mut self, bytes: &[u8]) -> Result<Option<(usize, bool)>> {
        let Item::Varint(name_len, k) = peek_varint(bytes) else { return Ok(None) };
        if name_len == 0 {
            return Ok(Some((k, true)));
        }
        let Item::Bytes(name, n) = self.bytes_item(bytes)? else { return Ok(None) };
        let rest = bytes.get(n..).unwrap_or_default();
        // The value's length is charged together with the name.
        let spent = self.section_bytes;
        self.section_bytes = spent.saturating_add(n);
        let value = self.bytes_item(rest);
        self.section_bytes = spent;
        let Item::Bytes(_, m) = value? else { return Ok(None) };
        let mut r = Reader::new(rest);
        let field = read_field(&mut r, name)?;
        self.charge(n + m)?;
        self.push_field(field)?;
        Ok(Some((n + m, false)))
    }

    /// A whole known-length field section, `varint(len) | fields`.
    fn known_section(&mut self, bytes: &[u8]) -> Result<Option<(usize, bool)>> {
        let Item::Bytes(section, n) = self.bytes_item(bytes)? else { return Ok(None) };
        self.charge(n)?;
        let mut fields = Vec::new();
        let mut r = Reader::new(section);
        while !r.is_empty() {
            let name = r.varint_prefixed().map_err(|_| Error::BinaryHttp("field name"))?;
            fields.push(read_field(&mut r, name)?);
            if fields.len() > self.limits.max_fields {
                return Err(Error::BinaryHttpLimit("too many fields"));
            }
        }
        self.fields = fields;
        Ok(Some((n, true)))
    }

    fn push_field(&mut self, field: Field) -> Result<()> {
        if self.fields.len() >= self.limits.max_fields {
            return Err(Error::BinaryHttpLimit("too many fields"));
        }
        self.fields.push(field);
        Ok(())
    }

    /// A field section is complete: yield the head or the end, or go on to the next part.
    fn section_done(&mut self, trailers: bool, informational: bool, parts: &mut Vec<Part>) {
        let fields = core::mem::take(&mut self.fields);
        if trailers {
            parts.push(Part::End { trailers: fields });
            self.step = Step::Padding;
        } else if informational {
            // Informational responses are skipped; the next status follows.
            self.step = Step::Status;
            self.section_bytes = 0;
        } else {
            if self.expect_request {
                let [method, scheme, authority, path] = core::mem::take(&mut self.control);
                parts.push(Part::Request(Request {
                    method,
                    scheme,
                    authority,
                    path,
                    headers: fields,
                    body: Vec::new(),
                }));
            } else {
                parts.push(Part::Response(Response { status: self.status, headers: fields, body: Vec::new() }));
            }
            self.step = Step::ContentLength;
            self.section_bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Request {
        let mut req = Request::new("POST", "https", "gw.example", "/v2/models/m/infer");
        req.headers.push(Field::new("content-type", "application/x-ndjson"));
        req.headers.push(Field::new("authorization", "Bearer canary-token"));
        req
    }

    /// Feeds `wire` in slices of `step` bytes; returns head, body, trailers.
    fn decode_request(wire: &[u8], step: usize) -> Result<(Request, Vec<u8>, Vec<Field>)> {
        let mut decoder = Decoder::request();
        let mut parts = Vec::new();
        for piece in wire.chunks(step) {
            parts.extend(decoder.push(piece)?);
        }
        parts.extend(decoder.finish()?);
        collect(parts)
    }

    fn collect(parts: Vec<Part>) -> Result<(Request, Vec<u8>, Vec<Field>)> {
        let mut head = None;
        let mut body = Vec::new();
        let mut end = None;
        for part in parts {
            match part {
                Part::Request(r) => {
                    assert!(head.is_none() && body.is_empty());
                    head = Some(r);
                }
                Part::Body(b) => body.extend_from_slice(&b),
                Part::End { trailers } => {
                    assert!(end.is_none());
                    end = Some(trailers);
                }
                Part::Response(_) => panic!("a response head from a request decoder"),
            }
        }
        Ok((head.unwrap(), body, end.unwrap()))
    }

    #[test]
    fn indeterminate_round_trip_in_any_slicing() {
        let (mut wire, mut encoder) = Encoder::request(&sample());
        wire.extend(encoder.body(b"{\"a\":1}\n"));
        wire.extend(encoder.body(b""));
        wire.extend(encoder.body(b"{\"a\":2}\n"));
        wire.extend(encoder.finish(&[Field::new("x-checksum", "abc")]));
        // The known-length decoder of the parent module reads the same bytes.
        let whole = Request::decode(&wire).unwrap();
        assert_eq!(whole.body, b"{\"a\":1}\n{\"a\":2}\n");
        for step in [1, 2, 3, 7, 1000] {
            let (head, body, trailers) = decode_request(&wire, step).unwrap();
            assert_eq!(head.path, "/v2/models/m/infer");
            assert_eq!(head.header("authorization"), Some(&b"Bearer canary-token"[..]));
            assert_eq!(body, whole.body, "step {step}");
            assert_eq!(trailers, [Field::new("x-checksum", "abc")]);
        }
    }

    #[test]
    fn known_length_messages_decode_incrementally() {
        let mut req = sample();
        req.body = (0..5000u32).map(|i| i as u8).collect();
        let wire = req.encode();
        for step in [1, 5, 4096] {
            let (head, body, trailers) = decode_request(&wire, step).unwrap();
            assert_eq!(head.method, "POST");
            assert_eq!(body, req.body);
            assert!(trailers.is_empty());
        }
    }

    #[test]
    fn body_bytes_are_passed_through_as_they_arrive() {
        let (mut wire, mut encoder) = Encoder::request(&sample());
        let head_len = wire.len();
        wire.extend(encoder.body(&[7; 100]));
        let mut decoder = Decoder::request();
        assert!(matches!(decoder.push(&wire[..head_len]).unwrap()[..], [Part::Request(_)]));
        // The two-byte chunk length, then 10 bytes: 10 bytes of body come out at once.
        let parts = decoder.push(&wire[head_len..head_len + 12]).unwrap();
        assert!(matches!(&parts[..], [Part::Body(b)] if b.len() == 10));
    }

    #[test]
    fn responses_skip_informational_heads() {
        let informational = [3u8, 0x40, 103, 4, b'l', b'i', b'n', b'k', 1, b'x', 0];
        let (head, mut encoder) =
            Encoder::response(&Response::new(200, alloc::vec![Field::new("a", "b")], b"hi".to_vec()));
        let mut wire = informational.to_vec();
        wire.extend_from_slice(&head[1..]);
        wire.extend(encoder.body(b"!"));
        wire.extend(encoder.finish(&[]));
        let mut decoder = Decoder::response();
        let mut parts = Vec::new();
        for b in &wire {
            parts.extend(decoder.push(core::slice::from_ref(b)).unwrap());
        }
        parts.extend(decoder.finish().unwrap());
        assert!(matches!(&parts[0], Part::Response(r) if r.status == 200 && r.header("a") == Some(b"b")));
        let body: Vec<u8> = parts
            .iter()
            .filter_map(|p| if let Part::Body(b) = p { Some(b.to_vec()) } else { None })
            .flatten()
            .collect();
        assert_eq!(body, b"hi!");
        assert!(matches!(parts.last(), Some(Part::End { .. })));
    }

    #[test]
    fn truncation_after_the_head_is_a_complete_message_and_inside_it_is_not() {
        let (mut wire, mut encoder) = Encoder::request(&sample());
        let head_len = wire.len();
        let (_, body, _) = decode_request(&wire, 3).unwrap();
        assert!(body.is_empty());
        wire.extend(encoder.body(b"partial"));
        assert_eq!(decode_request(&wire, 3).unwrap_err(), Error::BinaryHttp("content truncated"));
        assert_eq!(
            decode_request(&wire[..head_len - 1], 3).unwrap_err(),
            Error::BinaryHttp("header section truncated")
        );
        assert_eq!(
            decode_request(&wire[..head_len - 2], 3).unwrap_err(),
            Error::BinaryHttp("message truncated inside an item")
        );
        assert_eq!(decode_request(&[], 1).unwrap_err(), Error::BinaryHttp("empty message"));
    }

    #[test]
    fn a_message_that_ends_after_its_control_data_or_status_is_complete() {
        // RFC 9458 Appendix A's request and response omit their header sections, and the
        // known-length decoder has always read them; this decoder used to refuse them
        // ("header section truncated"; found by the `bhttp` fuzz target).
        let request = b"\x00\x03GET\x05https\x0bexample.com\x01/";
        for step in [1, 2, 100] {
            let (head, body, trailers) = decode_request(request, step).unwrap();
            assert_eq!(
                (head.method.as_str(), head.authority.as_str(), head.path.as_str()),
                ("GET", "example.com", "/")
            );
            assert!(head.headers.is_empty() && body.is_empty() && trailers.is_empty());
        }
        let mut decoder = Decoder::response();
        let mut parts = decoder.push(&[0x01, 0x40, 0xc8]).unwrap();
        parts.extend(decoder.finish().unwrap());
        assert!(
            matches!(&parts[..], [Part::Response(r), Part::End { trailers }] if r.status == 200 && trailers.is_empty())
        );
        // A cut after a field, or after an informational status, is still a cut.
        let mut decoder = Decoder::response();
        decoder.push(&[0x01, 0x40, 0x67]).unwrap();
        assert_eq!(decoder.finish().unwrap_err(), Error::BinaryHttp("header section truncated"));
    }

    #[test]
    fn padding_is_accepted_and_other_trailing_bytes_are_not() {
        let (mut wire, encoder) = Encoder::request(&sample());
        wire.extend(encoder.finish(&[]));
        wire.extend_from_slice(&[0, 0, 0]);
        assert!(decode_request(&wire, 2).is_ok());
        wire.push(1);
        assert_eq!(decode_request(&wire, 2).unwrap_err(), Error::TrailingData);
    }

    #[test]
    fn limits_refuse_before_buffering() {
        // A header value announced at 1 MiB is refused from its length prefix alone.
        let mut wire = alloc::vec![2u8];
        for part in ["GET", "https", "", "/"] {
            put_prefixed(part.as_bytes(), &mut wire);
        }
        put_prefixed(b"x-big", &mut wire);
        varint::encode(1 << 20, &mut wire);
        let mut decoder = Decoder::request();
        assert_eq!(decoder.push(&wire).unwrap_err(), Error::BinaryHttpLimit("header section too large"));
        // ... and the decoder stays failed.
        assert_eq!(decoder.push(&[0]).unwrap_err(), Error::BinaryHttpLimit("header section too large"));

        // Many small fields add up against the byte budget and the count.
        let mut head = Request::new("GET", "https", "", "/");
        head.headers = (0..300).map(|i| Field::new(&alloc::format!("h{i}"), "v")).collect();
        let (wire, _) = Encoder::request(&head);
        let mut decoder = Decoder::request();
        assert_eq!(decoder.push(&wire).unwrap_err(), Error::BinaryHttpLimit("too many fields"));
        let small = Limits { max_header_bytes: 100, max_fields: 1000 };
        let mut decoder = Decoder::request().with_limits(small);
        assert_eq!(decoder.push(&wire).unwrap_err(), Error::BinaryHttpLimit("header section too large"));
        // The known-length form is held to the same limits.
        let mut decoder = Decoder::request().with_limits(small);
        assert_eq!(decoder.push(&head.encode()).unwrap_err(), Error::BinaryHttpLimit("header section too large"));
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert_eq!(Decoder::request().push(&[1]).unwrap_err(), Error::BinaryHttp("not a request"));
        assert_eq!(Decoder::response().push(&[2]).unwrap_err(), Error::BinaryHttp("not a response"));
        assert_eq!(Decoder::request().push(&[2, 1, b' ']).unwrap_err(), Error::BinaryHttp("method"));
        assert_eq!(Decoder::request().push(&[2, 1, b'G', 0, 0, 1, b'x']).unwrap_err(), Error::BinaryHttp("path"));
        assert_eq!(Decoder::response().push(&[3, 0x40, 99]).unwrap_err(), Error::BinaryHttp("status"));
        let mut bad = Request::new("GET", "https", "", "/");
        bad.headers.push(Field::new("x", "a\r\nb"));
        let (wire, _) = Encoder::request(&bad);
        assert_eq!(Decoder::request().push(&wire).unwrap_err(), Error::BinaryHttp("field value"));
    }

    #[test]
    fn debug_output_hides_body_and_values() {
        let (wire, _) = Encoder::request(&sample());
        let parts = Decoder::request().push(&wire).unwrap();
        let text = alloc::format!("{parts:?} {:?}", Part::Body(Zeroizing::new(b"secret-body".to_vec())));
        assert!(!text.contains("canary-token") && !text.contains("secret-body"), "{text}");
    }
}

//! Binary HTTP messages (RFC 9292): the inner requests and responses that OHTTP encrypts.
//!
//! [`Request::encode`] and [`Response::encode`] produce the known-length form; the
//! indeterminate-length form, written and read piece by piece for streaming, is in
//! [`stream`]. Decoding accepts both the known-length
//! and the indeterminate-length forms, truncated trailing sections (section 3.8) and zero
//! padding (section 3.8), and nothing else: every other malformation is an
//! [`Error::BinaryHttp`] naming the field, never a panic.
//!
//! Messages hold plaintext (feature values, bearer tokens), so their buffers are zeroized on
//! drop and their `Debug` output shows only the method, path, status, header names and the
//! body length.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::varint::{self, Reader};

pub mod stream;

const KNOWN_REQUEST: u64 = 0;
const KNOWN_RESPONSE: u64 = 1;
const INDETERMINATE_REQUEST: u64 = 2;
const INDETERMINATE_RESPONSE: u64 = 3;

/// One header or trailer field. Names are lowercase, as in HTTP/2 and HTTP/3.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Field {
    /// The field name, lowercase.
    pub name: String,
    /// The field value, as bytes.
    pub value: Vec<u8>,
}

impl Field {
    /// Builds a field; the name is lowercased.
    pub fn new(name: &str, value: impl Into<Vec<u8>>) -> Self {
        Self { name: name.to_ascii_lowercase(), value: value.into() }
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <{} bytes>", self.name, self.value.len())
    }
}

/// A Binary HTTP request.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Request {
    /// The method, such as `POST`.
    pub method: String,
    /// The scheme, such as `https`.
    pub scheme: String,
    /// The authority; may be empty (then a `host` field may carry it).
    pub authority: String,
    /// The path and query, starting with `/`.
    pub path: String,
    /// Header fields.
    pub headers: Vec<Field>,
    /// The content.
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A Binary HTTP response (final status only; informational responses are skipped).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Response {
    /// The status code, 200 to 599.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<Field>,
    /// The content.
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// Builds a request with no headers and no body.
    pub fn new(method: &str, scheme: &str, authority: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            scheme: scheme.into(),
            authority: authority.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// Encodes in the known-length form (RFC 9292 section 3.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// [`Request::encode`], appended to `out` (for
    /// [`PrecomputedRequest::encapsulate_with`](crate::PrecomputedRequest::encapsulate_with)).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_with_fields_into(&self.headers, out);
    }

    /// [`Request::encode_into`] with `headers` in place of the request's own: a client that
    /// dates each attempt of a request it built once encodes it without copying its body.
    pub fn encode_with_fields_into(&self, headers: &[Field], out: &mut Vec<u8>) {
        varint::encode(KNOWN_REQUEST, out);
        for part in [&self.method, &self.scheme, &self.authority, &self.path] {
            put_prefixed(part.as_bytes(), out);
        }
        put_message_end(headers, &self.body, out);
    }

    /// An upper bound on the length of [`Request::encode`]'s output, for one allocation.
    pub fn encoded_len(&self) -> usize {
        let control =
            [&self.method, &self.scheme, &self.authority, &self.path].iter().map(|p| 8 + p.len()).sum::<usize>();
        1 + control + fields_len(&self.headers) + 8 + self.body.len() + 1
    }

    /// Decodes either form.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut request, content) = Self::decode_head(bytes)?;
        if let Some(range) = content {
            request.body = bytes.get(range).unwrap_or_default().to_vec();
        }
        Ok(request)
    }

    /// [`Request::decode`] without copying the content when it lies in one piece (the
    /// known-length form): then the request's `body` is empty and its content is
    /// `bytes[range]`, the range returned. For the indeterminate-length form the chunks are
    /// joined into `body` and the range is `None`.
    pub fn decode_head(bytes: &[u8]) -> Result<(Self, Option<Range<usize>>)> {
        let mut r = Reader::new(bytes);
        let indeterminate = framing(&mut r, KNOWN_REQUEST, INDETERMINATE_REQUEST, "not a request")?;
        let method = text(&mut r, "method")?;
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(Error::BinaryHttp("method"));
        }
        let scheme = text(&mut r, "scheme")?;
        let authority = text(&mut r, "authority")?;
        let path = text(&mut r, "path")?;
        if !(path.starts_with('/') || path == "*") || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Error::BinaryHttp("path"));
        }
        let headers = read_fields(&mut r, indeterminate)?;
        let (body, range) = content_of(bytes, &mut r, indeterminate)?;
        read_fields(&mut r, indeterminate)?; // Trailers are parsed for validity and dropped.
        check_padding(&r)?;
        Ok((Self { method, scheme, authority, path, headers, body }, range))
    }
}

impl Response {
    /// Builds a response.
    pub fn new(status: u16, headers: Vec<Field>, body: Vec<u8>) -> Self {
        Self { status, headers, body }
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }

    /// Encodes in the known-length form (RFC 9292 section 3.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// [`Response::encode`], appended to `out` (for
    /// [`ServerResponse::encapsulate_with`](crate::ServerResponse::encapsulate_with)).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        varint::encode(KNOWN_RESPONSE, out);
        varint::encode(u64::from(self.status), out);
        put_message_end(&self.headers, &self.body, out);
    }

    /// An upper bound on the length of [`Response::encode`]'s output, for one allocation.
    pub fn encoded_len(&self) -> usize {
        1 + 8 + fields_len(&self.headers) + 8 + self.body.len() + 1
    }

    /// Decodes either form, skipping informational (1xx) responses.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut response, content) = Self::decode_head(bytes)?;
        if let Some(range) = content {
            response.body = bytes.get(range).unwrap_or_default().to_vec();
        }
        Ok(response)
    }

    /// [`Response::decode`] of `buffer[message]` (as
    /// [`ClientResponse::decapsulate_in_place`](crate::ClientResponse::decapsulate_in_place)
    /// leaves it) whose content keeps the buffer's allocation, moved to its front, instead
    /// of being copied into a new one. The buffer is wiped if decoding fails.
    pub fn decode_in(buffer: Vec<u8>, message: Range<usize>) -> Result<Self> {
        let mut buffer = zeroize::Zeroizing::new(buffer);
        let bytes = buffer.get(message.clone()).ok_or(Error::BinaryHttp("message"))?;
        let (mut response, content) = Self::decode_head(bytes)?;
        if let Some(content) = content {
            let len = content.len();
            let start = message.start + content.start;
            buffer.copy_within(start..start + len, 0);
            buffer.truncate(len);
            // Taken whole: the body is zeroized on drop with its spare capacity.
            response.body = core::mem::take(&mut *buffer);
        }
        Ok(response)
    }

    /// [`Request::decode_head`] for a response.
    fn decode_head(bytes: &[u8]) -> Result<(Self, Option<Range<usize>>)> {
        let mut r = Reader::new(bytes);
        let indeterminate = framing(&mut r, KNOWN_RESPONSE, INDETERMINATE_RESPONSE, "not a response")?;
        let status = loop {
            let status = r.varint().map_err(bhttp("status"))?;
            match status {
                100..=199 => {
                    read_fields(&mut r, indeterminate)?;
                }
                200..=599 => break status as u16,
                _ => return Err(Error::BinaryHttp("status")),
            }
        };
        let headers = read_fields(&mut r, indeterminate)?;
        let (body, range) = content_of(bytes, &mut r, indeterminate)?;
        read_fields(&mut r, indeterminate)?;
        check_padding(&r)?;
        Ok((Self { status, headers, body }, range))
    }
}

fn find_header<'a>(headers: &'a [Field], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value.as_slice())
}

fn bhttp(what: &'static str) -> impl Fn(Error) -> Error {
    move |_| Error::BinaryHttp(what)
}

/// Reads the framing indicator: `false` for the known-length form, `true` for the
/// indeterminate-length one, `wrong` for anything else (RFC 9292 section 3.3).
fn framing(r: &mut Reader<'_>, known: u64, indeterminate: u64, wrong: &'static str) -> Result<bool> {
    match r.varint().map_err(bhttp("framing indicator"))? {
        v if v == known => Ok(false),
        v if v == indeterminate => Ok(true),
        _ => Err(Error::BinaryHttp(wrong)),
    }
}

/// The end every known-length message shares: header section, content, an empty trailer
/// section.
fn put_message_end(headers: &[Field], body: &[u8], out: &mut Vec<u8>) {
    put_fields(headers, out);
    put_prefixed(body, out);
    varint::encode(0, out);
}

fn put_prefixed(bytes: &[u8], out: &mut Vec<u8>) {
    varint::encode(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_fields(fields: &[Field], out: &mut Vec<u8>) {
    let mut section = Vec::new();
    for field in fields {
        put_prefixed(field.name.as_bytes(), &mut section);
        put_prefixed(&field.value, &mut section);
    }
    put_prefixed(&section, out);
    section.zeroize();
}

fn text(r: &mut Reader<'_>, what: &'static str) -> Result<String> {
    let bytes = r.varint_prefixed().map_err(bhttp(what))?;
    let s = core::str::from_utf8(bytes).map_err(|_| Error::BinaryHttp(what))?;
    Ok(s.into())
}

/// RFC 9110 `tchar`, the characters of methods and field names.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn read_field(r: &mut Reader<'_>, name: &[u8]) -> Result<Field> {
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(Error::BinaryHttp("field name"));
    }
    let value = r.varint_prefixed().map_err(bhttp("field value"))?;
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Error::BinaryHttp("field value"));
    }
    // Names were checked to be ASCII tokens, so this conversion cannot fail.
    let name = core::str::from_utf8(name).map_err(|_| Error::BinaryHttp("field name"))?;
    Ok(Field { name: name.to_ascii_lowercase(), value: value.to_vec() })
}

/// Reads a field section. At the very end of the message a missing section is an empty one
/// (RFC 9292 section 3.8, truncation).
fn read_fields(r: &mut Reader<'_>, indeterminate: bool) -> Result<Vec<Field>> {
    let mut fields = Vec::new();
    if r.is_empty() {
        return Ok(fields);
    }
    if indeterminate {
        loop {
            let name = r.varint_prefixed().map_err(bhttp("field name"))?;
            if name.is_empty() {
                break;
            }
            fields.push(read_field(r, name)?);
        }
    } else {
        let mut section = Reader::new(r.varint_prefixed().map_err(bhttp("field section"))?);
        while !section.is_empty() {
            let name = section.varint_prefixed().map_err(bhttp("field name"))?;
            fields.push(read_field(&mut section, name)?);
        }
    }
    Ok(fields)
}

/// A message's content as read: in one piece of the message, or its chunks joined.
enum Content<'a> {
    In(&'a [u8]),
    Joined(Vec<u8>),
}

/// Reads content: one length-prefixed block, or a sequence of chunks ended by an empty one.
fn read_content<'a>(r: &mut Reader<'a>, indeterminate: bool) -> Result<Content<'a>> {
    if r.is_empty() {
        return Ok(Content::In(&[]));
    }
    if !indeterminate {
        return Ok(Content::In(r.varint_prefixed().map_err(bhttp("content"))?));
    }
    let mut body = Vec::new();
    loop {
        let chunk = r.varint_prefixed().map_err(bhttp("content chunk"))?;
        if chunk.is_empty() {
            return Ok(Content::Joined(body));
        }
        body.extend_from_slice(chunk);
    }
}

/// Reads the content of the message `bytes` from `r`: its range when it is in one piece
/// (the body left empty), or the indeterminate form's chunks joined.
fn content_of(bytes: &[u8], r: &mut Reader<'_>, indeterminate: bool) -> Result<(Vec<u8>, Option<Range<usize>>)> {
    Ok(match read_content(r, indeterminate)? {
        Content::In(content) => {
            // The content ends where the reader now stands.
            let end = bytes.len() - r.remaining().len();
            (Vec::new(), Some(end - content.len()..end))
        }
        Content::Joined(body) => (body, None),
    })
}

/// An upper bound on the encoded length of a field section.
fn fields_len(fields: &[Field]) -> usize {
    8 + fields.iter().map(|f| 16 + f.name.len() + f.value.len()).sum::<usize>()
}

fn check_padding(r: &Reader<'_>) -> Result<()> {
    if r.remaining().iter().all(|&b| b == 0) { Ok(()) } else { Err(Error::TrailingData) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_request() -> Request {
        let mut req = Request::new("POST", "https", "gateway.example", "/v2/models/m/infer");
        req.headers.push(Field::new("Content-Type", "application/json"));
        req.headers.push(Field::new("authorization", "Bearer secret"));
        req.body = b"{\"inputs\":[]}".to_vec();
        req
    }

    #[test]
    fn request_round_trip_and_padding() {
        let req = sample_request();
        let mut bytes = req.encode();
        assert_eq!(Request::decode(&bytes).unwrap(), req);
        bytes.extend_from_slice(&[0, 0, 0]);
        assert_eq!(Request::decode(&bytes).unwrap(), req);
        bytes.push(1);
        assert_eq!(Request::decode(&bytes), Err(Error::TrailingData));
    }

    #[test]
    fn decode_head_points_at_one_piece_of_content_and_joins_chunks() {
        let req = sample_request();
        let bytes = req.encode();
        let (head, range) = Request::decode_head(&bytes).unwrap();
        assert!(head.body.is_empty());
        assert_eq!(&bytes[range.unwrap()], req.body.as_slice());
        assert_eq!(head.headers, req.headers);

        // The indeterminate-length form: fields `a: b`, content in two chunks, no trailers.
        let mut chunked = alloc::vec![2, 4];
        chunked.extend_from_slice(b"POST");
        chunked.extend_from_slice(&[5, b'h', b't', b't', b'p', b's', 2, b'g', b'w', 1, b'/']);
        chunked.extend_from_slice(&[1, b'a', 1, b'b', 0, 2, b'h', b'i', 3, b'y', b'o', b'u', 0, 0]);
        let (head, range) = Request::decode_head(&chunked).unwrap();
        assert_eq!((range, head.body.as_slice()), (None, b"hiyou".as_slice()));
        assert_eq!(Request::decode(&chunked).unwrap().body, b"hiyou");

        // A request with no content at all (truncated after its fields) has an empty range.
        let mut bare = Request::new("GET", "https", "gw", "/");
        bare.headers.push(Field::new("x", "1"));
        let mut bytes = bare.encode();
        bytes.truncate(bytes.len() - 2);
        let (_, range) = Request::decode_head(&bytes).unwrap();
        assert_eq!(range, Some(bytes.len()..bytes.len()));
    }

    #[test]
    fn decode_in_keeps_the_buffer_and_agrees_with_decode() {
        let response =
            Response::new(200, alloc::vec![Field::new("content-type", "text/plain")], b"the answer".to_vec());
        let encoded = response.encode();
        // The message after a 16-byte prefix and before a tag, as an opened response lies.
        let mut buffer = alloc::vec![0xAA; 16];
        buffer.extend_from_slice(&encoded);
        buffer.extend_from_slice(&[0xBB; 16]);
        let decoded = Response::decode_in(buffer, 16..16 + encoded.len()).unwrap();
        assert_eq!(decoded, response);

        // Informational responses and no content at all.
        let bytes = [1, 0x40, 102, 4, 1, b'a', 1, b'b', 0x40, 204];
        assert_eq!(Response::decode_in(bytes.to_vec(), 0..bytes.len()), Response::decode(&bytes));
        assert!(Response::decode_in(bytes.to_vec(), 0..bytes.len()).unwrap().body.is_empty());

        // Bad input is refused as by `decode`, and so is a range outside the buffer.
        let bad = [1, 0x40, 99];
        assert_eq!(Response::decode_in(bad.to_vec(), 0..3), Response::decode(&bad));
        assert_eq!(Response::decode_in(encoded.clone(), 0..encoded.len() + 1), Err(Error::BinaryHttp("message")));
    }

    #[test]
    fn debug_output_hides_values_and_body() {
        let text = alloc::format!("{:?}", sample_request());
        assert!(!text.contains("secret"));
        assert!(!text.contains("inputs"));
        assert!(text.contains("authorization"));
    }

    #[test]
    fn response_with_informational_and_truncation() {
        // Known-length response: a 102 with one field, then 200, no fields, content "hi",
        // trailers omitted (truncated).
        let bytes = [1, 0x40, 102, 4, 1, b'a', 1, b'b', 0x40, 200, 0, 2, b'h', b'i'];
        let resp = Response::decode(&bytes).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hi");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let good = sample_request().encode();
        // Every strict prefix that cuts inside a length-prefixed item must fail or decode to
        // something shorter; none may panic.
        for cut in 0..good.len() {
            let _ = Request::decode(&good[..cut]);
        }
        assert!(Request::decode(&[]).is_err());
        assert!(Request::decode(&[1]).is_err());
        assert!(Request::decode(&[0, 3, b'G', 0, b'T', 0, 0, 1, b'/']).is_err());
        let mut bad_header = Request::new("GET", "https", "", "/");
        bad_header.headers.push(Field::new("x", "a\r\nb"));
        assert!(Request::decode(&bad_header.encode()).is_err());
        assert!(Response::decode(&[1, 0x40, 99]).is_err());
    }
}

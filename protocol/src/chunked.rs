//! Chunked Oblivious HTTP (draft-ietf-ohai-chunked-ohttp-08): requests and responses
//! sealed and opened chunk by chunk, so that neither side has to hold a whole message.
//!
//! The wire format is the RFC 9458 one cut into pieces. A request is the usual header
//! (`key_id | kem_id | kdf_id | aead_id | enc`, HPKE `info` labelled
//! [`INFO_CHUNKED_REQUEST`]) followed by chunks, each `varint(len) | HPKE Seal("", chunk)`,
//! and a final chunk `varint(0) | HPKE Seal("final", chunk)` that runs to the end of the
//! outer message. A response is a random nonce of `max(Nn, Nk)` bytes followed by chunks
//! the same way, each sealed with the RFC 9458 response key (exported with
//! [`LABEL_CHUNKED_RESPONSE`]) and the response nonce XOR the chunk counter.
//!
//! Everything here is sans-I/O, like the rest of the crate: sealers take plaintext and
//! return the bytes to send; openers are fed whatever slices the transport delivers (one
//! byte at a time works) and return the plaintext of each chunk once it has authenticated.
//! The rules every opener enforces:
//!
//! - a chunk longer than `max_chunk` plaintext bytes (plus the AEAD tag) is
//!   [`Error::ChunkTooLarge`] as soon as its length prefix is read, before anything is
//!   buffered; the final chunk, whose length is implicit, is held to the same bound;
//! - a non-final chunk with no data is [`Error::EmptyChunk`];
//! - `finish()` without a final chunk is [`Error::MissingFinalChunk`] (truncation);
//! - bytes after the final chunk belong to it by the framing, so they make its
//!   authentication fail at `finish()` ([`Error::Decrypt`]);
//! - a chunk counter that would wrap is [`Error::ChunkCounterExhausted`];
//! - any authentication failure is [`Error::Decrypt`], without detail.
//!
//! After an error an opener stays failed and returns the same error. Plaintext comes back in
//! [`Zeroizing`] buffers. What is inside the chunks is up to the caller: usually a Binary
//! HTTP message in the indeterminate-length form, see [`crate::bhttp::stream`].
//!
//! ```
//! use sealgate_protocol::chunked::{ChunkedClientRequest, RequestHeaderReader};
//! use sealgate_protocol::{GatewayKey, GatewayKeys, Kem, SymmetricSuite};
//! # struct Rng(u8);
//! # impl rand_core::TryRng for Rng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(0) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { Ok(0) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> { self.0 += 1; d.fill(self.0); Ok(()) }
//! # }
//! # impl rand_core::TryCryptoRng for Rng {}
//! # let mut rng = Rng(0);
//! let gateway = GatewayKeys::new(vec![GatewayKey::generate(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng)?])?;
//!
//! // The client sends a header, then chunks as its data comes, then the final chunk.
//! let config = &gateway.configs()[0];
//! let (mut wire, mut sealer, mut response) = ChunkedClientRequest::new(config, SymmetricSuite::ALL[0])?.start(&mut rng)?;
//! wire.extend(sealer.seal(b"first line\n")?);
//! wire.extend(sealer.seal(b"second line\n")?);
//! wire.extend(sealer.finish(b"")?);
//!
//! // The gateway reads the header, then opens chunks as bytes arrive, then the final one.
//! let mut header = RequestHeaderReader::new();
//! let used = header.push(&wire)?;
//! let (mut opener, responder) = gateway.decapsulate_chunked(header)?;
//! let mut request = Vec::new();
//! for byte in &wire[used..] {
//!     for chunk in opener.push(core::slice::from_ref(byte))? {
//!         request.extend_from_slice(&chunk);
//!     }
//! }
//! request.extend_from_slice(&opener.finish()?);
//! assert_eq!(request, b"first line\nsecond line\n");
//!
//! // The answer streams back the same way.
//! let (mut answer, mut sealer) = responder.start(&mut rng)?;
//! answer.extend(sealer.seal(b"ok\n")?);
//! answer.extend(sealer.finish(b"")?);
//! let chunks = response.push(&answer)?;
//! assert_eq!(&chunks[0][..], b"ok\n");
//! assert!(response.finish()?.is_empty());
//! # Ok::<(), sealgate_protocol::Error>(())
//! ```

use alloc::vec::Vec;
use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{self, Backend, ReceiverContext, SenderContext};
use crate::error::{Error, Result};
use crate::key_config::KeyConfig;
use crate::request::{ClientRequest, GatewayKeys, RequestHeader};
use crate::response::{export_secret, response_key};
use crate::suite::{Kem, Suite, SymmetricSuite};
use crate::varint::{self, Reader};

/// The label that starts the HPKE `info` of a chunked request (draft section 6.1).
pub const INFO_CHUNKED_REQUEST: &[u8] = b"message/bhttp chunked request";

/// The HPKE exporter label for the secret of a chunked response (draft section 6.2).
pub const LABEL_CHUNKED_RESPONSE: &[u8] = b"message/bhttp chunked response";

/// The AAD of the final chunk in both directions (draft section 6).
pub const FINAL_CHUNK_AAD: &[u8] = b"final";

/// The default `max_chunk`: the largest chunk plaintext, in bytes, that a receiver accepts
/// and that a sealer's [`RequestSealer::seal`] puts into one chunk. The draft requires every
/// receiver to accept 2^14 bytes and senders to send no more unless they know better.
pub const DEFAULT_MAX_CHUNK: usize = 1 << 14;

/// The plaintext of one chunk; zeroized on drop.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// What seals the chunks of one message: the client's HPKE context for a request, the
/// response key and nonce for a response.
trait SealChunk {
    /// Seals the chunk numbered `counter` with `aad`.
    fn seal(&mut self, counter: u64, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
}

/// What opens the chunks of one message, in step with the matching [`SealChunk`].
trait OpenChunk {
    /// Opens the chunk numbered `counter` with `aad`.
    fn open(&mut self, counter: u64, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
}

/// The client's HPKE context: chunk `n` is the `n`-th `Seal`, so the context's own sequence
/// number is the counter.
struct RequestSend(SenderContext);

impl SealChunk for RequestSend {
    fn seal(&mut self, _: u64, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.0.seal(plaintext, aad)
    }
}

/// The gateway's HPKE context, in step with the client's.
struct RequestReceive(ReceiverContext);

impl OpenChunk for RequestReceive {
    fn open(&mut self, _: u64, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.0.open(ciphertext, aad)
    }
}

/// The response key and base nonce (RFC 9458 section 4.4 with the chunked label); chunk
/// `n` uses `nonce XOR encode(Nn, n)`.
struct ResponseCipher {
    backend: Backend,
    suite: Suite,
    key: Zeroizing<Vec<u8>>,
    nonce: Vec<u8>,
}

impl ResponseCipher {
    fn new(backend: Backend, suite: Suite, secret: &[u8], enc: &[u8], response_nonce: &[u8]) -> Result<Self> {
        let (key, nonce) = response_key(backend, suite, secret, enc, response_nonce)?;
        Ok(Self { backend, suite, key, nonce })
    }

    /// `aead_nonce XOR encode(Nn, counter)`: the counter is big-endian in the last bytes.
    fn chunk_nonce(&self, counter: u64) -> Vec<u8> {
        let mut nonce = self.nonce.clone();
        for (byte, c) in nonce.iter_mut().rev().zip(counter.to_le_bytes()) {
            *byte ^= c;
        }
        nonce
    }
}

impl SealChunk for ResponseCipher {
    fn seal(&mut self, counter: u64, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        crypto::aead_seal(self.backend, self.suite.aead, &self.key, &self.chunk_nonce(counter), plaintext, aad)
    }
}

impl OpenChunk for ResponseCipher {
    fn open(&mut self, counter: u64, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        crypto::aead_open(self.backend, self.suite.aead, &self.key, &self.chunk_nonce(counter), ciphertext, aad)
    }
}

/// The sending half shared by requests and responses.
struct Sealer<C> {
    cipher: C,
    max_chunk: usize,
    counter: u64,
}

impl<C: SealChunk> Sealer<C> {
    fn new(cipher: C, max_chunk: usize) -> Self {
        Self { cipher, max_chunk, counter: 0 }
    }

    /// Claims the next counter value; the last value of a `u64` is never used, so the
    /// counter cannot wrap (the nonce, of 96 bits, would only wrap much later).
    fn next_counter(&mut self) -> Result<u64> {
        let counter = self.counter;
        self.counter = counter.checked_add(1).ok_or(Error::ChunkCounterExhausted)?;
        Ok(counter)
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.max_chunk {
            return Err(Error::ChunkTooLarge { len: len as u64, max: self.max_chunk as u64 });
        }
        Ok(())
    }

    fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        if plaintext.is_empty() {
            return Err(Error::EmptyChunk);
        }
        self.check_len(plaintext.len())?;
        self.seal_framed(plaintext)
    }

    /// Seals a non-final chunk without the emptiness check.
    fn seal_framed(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let counter = self.next_counter()?;
        let sealed = self.cipher.seal(counter, plaintext, &[])?;
        let mut out = Vec::with_capacity(8 + sealed.len());
        varint::encode(sealed.len() as u64, &mut out);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + 32);
        // Every setter keeps `max_chunk` at 1 or more; `max(1)` makes `chunks` safe anyway.
        for piece in plaintext.chunks(self.max_chunk.max(1)) {
            out.extend_from_slice(&self.seal_chunk(piece)?);
        }
        Ok(out)
    }

    fn finish(mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.check_len(plaintext.len())?;
        let counter = self.next_counter()?;
        let sealed = self.cipher.seal(counter, plaintext, FINAL_CHUNK_AAD)?;
        let mut out = Vec::with_capacity(1 + sealed.len());
        varint::encode(0, &mut out);
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// Where an opener is in the stream of chunks.
enum OpenState {
    /// Reading a chunk's length prefix; `have` bytes of it are in `buf`.
    Length { buf: [u8; 8], have: usize },
    /// Reading a non-final chunk of `len` bytes.
    Chunk { len: usize, buf: Vec<u8> },
    /// After the zero length: the final chunk runs to the end of the stream.
    Final { buf: Vec<u8> },
    /// An error happened; it is returned again.
    Failed(Error),
}

/// The receiving half shared by requests and responses.
struct Opener<C> {
    cipher: C,
    max_chunk: usize,
    tag_len: usize,
    counter: u64,
    state: OpenState,
}

impl<C: OpenChunk> Opener<C> {
    fn new(cipher: C, max_chunk: usize, tag_len: usize) -> Self {
        Self { cipher, max_chunk, tag_len, counter: 0, state: OpenState::Length { buf: [0; 8], have: 0 } }
    }

    /// The largest chunk on the wire: `max_chunk` plaintext bytes and the tag.
    fn max_sealed(&self) -> usize {
        self.max_chunk.saturating_add(self.tag_len)
    }

    fn next_counter(&mut self) -> Result<u64> {
        let counter = self.counter;
        self.counter = counter.checked_add(1).ok_or(Error::ChunkCounterExhausted)?;
        Ok(counter)
    }

    fn push(&mut self, input: &[u8]) -> Result<Vec<Plaintext>> {
        let mut out = Vec::new();
        self.push_into(input, &mut out).map(|()| out)
    }

    /// Appends the plaintext of each chunk `input` completes to `out`, also those that
    /// authenticated before a failure in the same input: a streaming receiver hands on what
    /// arrived intact, then the error, however the transport sliced the bytes.
    fn push_into(&mut self, input: &[u8], out: &mut Vec<Plaintext>) -> Result<()> {
        if let OpenState::Failed(error) = &self.state {
            return Err(error.clone());
        }
        self.consume(input, out).inspect_err(|error| self.state = OpenState::Failed(error.clone()))
    }

    fn consume(&mut self, mut input: &[u8], out: &mut Vec<Plaintext>) -> Result<()> {
        while !input.is_empty() {
            match &mut self.state {
                OpenState::Length { buf, have } => {
                    let (&first, rest) = input.split_first().ok_or(Error::Truncated)?;
                    if *have == 0 {
                        buf[0] = first;
                        *have = 1;
                        input = rest;
                    }
                    let need = 1usize << (buf[0] >> 6);
                    let take = (need - *have).min(input.len());
                    let (head, rest) = input.split_at(take);
                    buf.get_mut(*have..*have + take).ok_or(Error::Truncated)?.copy_from_slice(head);
                    *have += take;
                    input = rest;
                    if *have < need {
                        return Ok(());
                    }
                    let len = Reader::new(buf.get(..need).ok_or(Error::Truncated)?).varint()?;
                    self.state = self.after_length(len)?;
                }
                OpenState::Chunk { len, buf } => {
                    let take = (*len - buf.len()).min(input.len());
                    let (head, rest) = input.split_at(take);
                    buf.extend_from_slice(head);
                    input = rest;
                    if buf.len() < *len {
                        return Ok(());
                    }
                    let sealed = core::mem::take(buf);
                    self.state = OpenState::Length { buf: [0; 8], have: 0 };
                    let counter = self.next_counter()?;
                    let plaintext = Zeroizing::new(self.cipher.open(counter, &sealed, &[])?);
                    if plaintext.is_empty() {
                        return Err(Error::EmptyChunk);
                    }
                    out.push(plaintext);
                }
                OpenState::Final { buf } => {
                    let max = self.max_chunk.saturating_add(self.tag_len);
                    let len = buf.len().saturating_add(input.len());
                    if len > max {
                        return Err(Error::ChunkTooLarge { len: len as u64, max: max as u64 });
                    }
                    buf.extend_from_slice(input);
                    return Ok(());
                }
                OpenState::Failed(error) => return Err(error.clone()),
            }
        }
        Ok(())
    }

    /// The state after a length prefix of `len`: zero starts the final chunk.
    fn after_length(&self, len: u64) -> Result<OpenState> {
        if len == 0 {
            return Ok(OpenState::Final { buf: Vec::new() });
        }
        let max = self.max_sealed();
        if len > max as u64 {
            return Err(Error::ChunkTooLarge { len, max: max as u64 });
        }
        // `len <= max`, a `usize`, so this conversion cannot fail.
        let len = usize::try_from(len).map_err(|_| Error::ChunkTooLarge { len, max: max as u64 })?;
        if len < self.tag_len {
            return Err(Error::Decrypt);
        }
        Ok(OpenState::Chunk { len, buf: Vec::with_capacity(len) })
    }

    fn finish(mut self) -> Result<Plaintext> {
        match core::mem::replace(&mut self.state, OpenState::Failed(Error::MissingFinalChunk)) {
            OpenState::Final { buf } => {
                let counter = self.next_counter()?;
                Ok(Zeroizing::new(self.cipher.open(counter, &buf, FINAL_CHUNK_AAD)?))
            }
            OpenState::Failed(error) => Err(error),
            OpenState::Length { .. } | OpenState::Chunk { .. } => Err(Error::MissingFinalChunk),
        }
    }
}

/// Sealer and opener types share their methods; this writes the public wrappers once.
macro_rules! sealer {
    ($(#[$doc:meta])* $name:ident, $cipher:ty) => {
        $(#[$doc])*
        pub struct $name(Sealer<$cipher>);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("max_chunk", &self.0.max_chunk)
                    .field("chunks", &self.0.counter)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            /// Seals `plaintext` as one or more non-final chunks of at most `max_chunk`
            /// bytes each and returns the bytes to send. Empty input gives empty output (no
            /// chunk: the draft forbids empty non-final chunks).
            pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
                self.0.seal(plaintext)
            }

            /// Seals `plaintext` as exactly one non-final chunk: [`Error::EmptyChunk`] if it
            /// is empty, [`Error::ChunkTooLarge`] if it is longer than `max_chunk`.
            pub fn seal_chunk(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
                self.0.seal_chunk(plaintext)
            }

            /// Seals the final chunk (at most `max_chunk` bytes, possibly empty) and returns
            /// its bytes, which end the message.
            pub fn finish(self, plaintext: &[u8]) -> Result<Vec<u8>> {
                self.0.finish(plaintext)
            }

            /// Changes the largest plaintext per chunk (at least 1).
            pub fn with_max_chunk(mut self, max_chunk: usize) -> Self {
                self.0.max_chunk = max_chunk.max(1);
                self
            }

            /// The number of chunks sealed so far.
            pub fn chunks(&self) -> u64 {
                self.0.counter
            }

            /// Seals an empty non-final chunk, which the draft forbids and every receiver
            /// refuses. **It exists only so tests can send that bad input.**
            pub fn danger_seal_empty_chunk(&mut self) -> Result<Vec<u8>> {
                self.0.seal_framed(&[])
            }
        }
    };
}

macro_rules! opener {
    ($(#[$doc:meta])* $name:ident, $cipher:ty) => {
        $(#[$doc])*
        pub struct $name(Opener<$cipher>);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("max_chunk", &self.0.max_chunk)
                    .field("chunks", &self.0.counter)
                    .finish_non_exhaustive()
            }
        }

        impl $name {
            /// Feeds the next bytes of the stream, any number at a time, and returns the
            /// plaintext of every non-final chunk completed and authenticated by them.
            pub fn push(&mut self, input: &[u8]) -> Result<Vec<Plaintext>> {
                self.0.push(input)
            }

            /// [`Self::push`], appending to `out`: on an error, `out` still holds the
            /// plaintext of the chunks that authenticated before it, in order.
            pub fn push_into(&mut self, input: &[u8], out: &mut Vec<Plaintext>) -> Result<()> {
                self.0.push_into(input, out)
            }

            /// Ends the stream: opens the final chunk and returns its plaintext (often
            /// empty). Without a final chunk this is [`Error::MissingFinalChunk`].
            pub fn finish(self) -> Result<Plaintext> {
                self.0.finish()
            }

            /// Changes the largest chunk plaintext accepted (at least 1; the draft requires
            /// receivers to accept [`DEFAULT_MAX_CHUNK`]).
            pub fn with_max_chunk(mut self, max_chunk: usize) -> Self {
                self.0.max_chunk = max_chunk.max(1);
                self
            }

            /// The number of chunks opened so far.
            pub fn chunks(&self) -> u64 {
                self.0.counter
            }
        }
    };
}

sealer!(
    /// Seals the chunks of a request, in order, with the client's HPKE context.
    RequestSealer,
    RequestSend
);
opener!(
    /// Opens the chunks of a request on the gateway, in order.
    RequestOpener,
    RequestReceive
);
sealer!(
    /// Seals the chunks of a response on the gateway, in order.
    ResponseSealer,
    ResponseCipher
);

/// Opens a chunked response on the client: the response nonce first, then the chunks.
pub struct ResponseOpener {
    state: ResponseOpenerState,
    max_chunk: usize,
}

enum ResponseOpenerState {
    /// Collecting the response nonce.
    Nonce { backend: Backend, suite: Suite, enc: Vec<u8>, secret: Zeroizing<Vec<u8>>, nonce: Vec<u8> },
    /// Opening chunks.
    Chunks(Opener<ResponseCipher>),
    /// Deriving the key failed.
    Failed(Error),
}

impl fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chunks = match &self.state {
            ResponseOpenerState::Chunks(opener) => opener.counter,
            _ => 0,
        };
        f.debug_struct("ResponseOpener")
            .field("max_chunk", &self.max_chunk)
            .field("chunks", &chunks)
            .finish_non_exhaustive()
    }
}

impl ResponseOpener {
    /// Feeds the next bytes of the response, any number at a time, and returns the
    /// plaintext of every non-final chunk completed and authenticated by them.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<Plaintext>> {
        let mut out = Vec::new();
        self.push_into(input, &mut out).map(|()| out)
    }

    /// [`Self::push`], appending to `out`: on an error, `out` still holds the plaintext of
    /// the chunks that authenticated before it, in order.
    pub fn push_into(&mut self, mut input: &[u8], out: &mut Vec<Plaintext>) -> Result<()> {
        if let ResponseOpenerState::Nonce { backend, suite, enc, secret, nonce } = &mut self.state {
            let take = (suite.response_nonce_len() - nonce.len()).min(input.len());
            let (head, rest) = input.split_at(take);
            nonce.extend_from_slice(head);
            input = rest;
            if nonce.len() < suite.response_nonce_len() {
                return Ok(());
            }
            self.state = match ResponseCipher::new(*backend, *suite, secret, enc, nonce) {
                Ok(cipher) => ResponseOpenerState::Chunks(Opener::new(cipher, self.max_chunk, suite.aead.tag_len())),
                Err(error) => ResponseOpenerState::Failed(error),
            };
        }
        match &mut self.state {
            ResponseOpenerState::Chunks(opener) => opener.push_into(input, out),
            ResponseOpenerState::Failed(error) => Err(error.clone()),
            // The nonce state was left above once complete.
            ResponseOpenerState::Nonce { .. } => Ok(()),
        }
    }

    /// Ends the response: opens the final chunk and returns its plaintext. A response cut
    /// anywhere before its final chunk (the nonce included) is [`Error::MissingFinalChunk`].
    pub fn finish(self) -> Result<Plaintext> {
        match self.state {
            ResponseOpenerState::Chunks(opener) => opener.finish(),
            ResponseOpenerState::Failed(error) => Err(error),
            ResponseOpenerState::Nonce { .. } => Err(Error::MissingFinalChunk),
        }
    }

    /// Changes the largest chunk plaintext accepted (at least 1). Takes effect for a
    /// response whose nonce has not been read yet.
    pub fn with_max_chunk(mut self, max_chunk: usize) -> Self {
        self.max_chunk = max_chunk.max(1);
        if let ResponseOpenerState::Chunks(opener) = &mut self.state {
            opener.max_chunk = self.max_chunk;
        }
        self
    }
}

/// A client's intent to send one chunked request to one key configuration. Single use:
/// [`ChunkedClientRequest::start`] consumes it.
#[derive(Debug, Clone)]
pub struct ChunkedClientRequest {
    inner: ClientRequest,
    max_chunk: usize,
}

impl ChunkedClientRequest {
    /// Prepares a request to `config` using `suite`, which the configuration must offer.
    pub fn new(config: &KeyConfig, suite: SymmetricSuite) -> Result<Self> {
        Ok(Self { inner: ClientRequest::new(config, suite)?, max_chunk: DEFAULT_MAX_CHUNK })
    }

    /// Uses `backend` for this request and its response.
    pub fn with_backend(self, backend: Backend) -> Self {
        Self { inner: self.inner.with_backend(backend), ..self }
    }

    /// Sets `max_chunk` (at least 1) for the request sealer and the response opener.
    pub fn with_max_chunk(self, max_chunk: usize) -> Self {
        Self { max_chunk: max_chunk.max(1), ..self }
    }

    /// Sets up the HPKE context. Returns the request header to send first
    /// (`key_id | kem_id | kdf_id | aead_id | enc`), the sealer for the chunks, and the
    /// opener for the response, which may be fed while the request is still being sent.
    pub fn start(self, rng: &mut impl CryptoRng) -> Result<(Vec<u8>, RequestSealer, ResponseOpener)> {
        let info = self.inner.header.info_with(INFO_CHUNKED_REQUEST);
        let (enc, ctx) =
            crypto::setup_sender(self.inner.backend, self.inner.header.suite, &self.inner.public_key, &info, rng)?;
        self.begin(enc, ctx)
    }

    /// [`ChunkedClientRequest::start`] with a fixed ephemeral X25519 private key, on the
    /// aws-lc-rs backend, to reproduce the draft's example byte for byte.
    ///
    /// **Never use it to send a real request**: a known or reused ephemeral key exposes the
    /// request and the response. Only DHKEM(X25519) is supported.
    #[cfg(feature = "aws-lc")]
    pub fn danger_start_with_ephemeral_key(
        self,
        ephemeral_private_key: &[u8],
    ) -> Result<(Vec<u8>, RequestSealer, ResponseOpener)> {
        let info = self.inner.header.info_with(INFO_CHUNKED_REQUEST);
        let (enc, ctx) = crypto::aws_lc::danger_setup_sender_with_ephemeral_key(
            self.inner.header.suite,
            &self.inner.public_key,
            &info,
            ephemeral_private_key,
        )?;
        let this = Self { inner: self.inner.with_backend(Backend::AwsLc), ..self };
        this.begin(enc, SenderContext::AwsLc(ctx))
    }

    fn begin(self, enc: Vec<u8>, ctx: SenderContext) -> Result<(Vec<u8>, RequestSealer, ResponseOpener)> {
        let suite = self.inner.header.suite;
        let secret = export_secret(suite, LABEL_CHUNKED_RESPONSE, |label, out| ctx.export(label, out))?;
        let mut header = Vec::with_capacity(RequestHeader::LEN + enc.len());
        header.extend_from_slice(&self.inner.header.encode());
        header.extend_from_slice(&enc);
        let nonce = Vec::with_capacity(suite.response_nonce_len());
        let response = ResponseOpener {
            state: ResponseOpenerState::Nonce { backend: self.inner.backend, suite, enc, secret, nonce },
            max_chunk: self.max_chunk,
        };
        Ok((header, RequestSealer(Sealer::new(RequestSend(ctx), self.max_chunk)), response))
    }
}

/// Collects the header of a chunked request on the gateway from bytes as they arrive:
/// the seven bytes of key identifier and algorithms, then the KEM's `enc`.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaderReader {
    buf: Vec<u8>,
    header: Option<RequestHeader>,
}

impl RequestHeaderReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns how many of them belong to the header. The rest are the first
    /// bytes of the chunks, for [`RequestOpener::push`]. An unknown algorithm is an
    /// `Unsupported*` error as soon as its seven bytes are in.
    pub fn push(&mut self, input: &[u8]) -> Result<usize> {
        let mut used = 0;
        if self.header.is_none() {
            let take = (RequestHeader::LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(input.get(..take).ok_or(Error::Truncated)?);
            used = take;
            if self.buf.len() < RequestHeader::LEN {
                return Ok(used);
            }
            self.header = Some(RequestHeader::decode(&mut Reader::new(&self.buf))?);
        }
        let full = self.len().ok_or(Error::Truncated)?;
        let rest = input.get(used..).ok_or(Error::Truncated)?;
        let take = (full - self.buf.len()).min(rest.len());
        self.buf.extend_from_slice(rest.get(..take).ok_or(Error::Truncated)?);
        Ok(used + take)
    }

    /// The key identifier and algorithms, once their seven bytes are in.
    pub fn header(&self) -> Option<RequestHeader> {
        self.header
    }

    /// The encapsulated key (`enc`), once the whole header is in: unique to the request, what
    /// a gateway remembers to refuse a replay (RFC 9458 section 6.5).
    pub fn enc(&self) -> Option<&[u8]> {
        if !self.is_complete() {
            return None;
        }
        self.buf.get(RequestHeader::LEN..)
    }

    /// True when the whole header, `enc` included, has been read.
    pub fn is_complete(&self) -> bool {
        self.len() == Some(self.buf.len())
    }

    /// The header's full length, once the KEM is known.
    fn len(&self) -> Option<usize> {
        self.header.map(|h| RequestHeader::LEN + h.suite.kem.enc_len())
    }
}

/// The gateway's state for answering one chunked request. Single use.
pub struct ChunkedServerResponse {
    backend: Backend,
    suite: Suite,
    enc: Vec<u8>,
    secret: Zeroizing<Vec<u8>>,
    max_chunk: usize,
}

impl fmt::Debug for ChunkedServerResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedServerResponse").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl ChunkedServerResponse {
    /// The suite the client chose; the response uses its AEAD.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Sets `max_chunk` (at least 1) for the response sealer.
    pub fn with_max_chunk(self, max_chunk: usize) -> Self {
        Self { max_chunk: max_chunk.max(1), ..self }
    }

    /// Draws the response nonce from `rng` and returns it (the first bytes to send) with the
    /// sealer for the response's chunks.
    pub fn start(self, rng: &mut impl CryptoRng) -> Result<(Vec<u8>, ResponseSealer)> {
        let mut response_nonce = alloc::vec![0u8; self.suite.response_nonce_len()];
        rng.fill_bytes(&mut response_nonce);
        let cipher = ResponseCipher::new(self.backend, self.suite, &self.secret, &self.enc, &response_nonce)?;
        Ok((response_nonce, ResponseSealer(Sealer::new(cipher, self.max_chunk))))
    }
}

impl GatewayKeys {
    /// Opens the header of a chunked request: finds the key, sets up the HPKE context, and
    /// returns the opener for the request's chunks and the state for the response. An
    /// incomplete header is [`Error::Truncated`]; a key identifier this gateway does not
    /// hold is [`Error::UnknownKeyId`]; a bad `enc` is [`Error::Decrypt`].
    pub fn decapsulate_chunked(&self, header: RequestHeaderReader) -> Result<(RequestOpener, ChunkedServerResponse)> {
        let parsed = header.header.ok_or(Error::Truncated)?;
        if !header.is_complete() {
            return Err(Error::Truncated);
        }
        let key = self.key_for(&parsed)?;
        let enc = header.buf.get(RequestHeader::LEN..).ok_or(Error::Truncated)?;
        let ctx = crypto::setup_receiver(parsed.suite, key, enc, &parsed.info_with(INFO_CHUNKED_REQUEST))?;
        let secret = export_secret(parsed.suite, LABEL_CHUNKED_RESPONSE, |label, out| ctx.export(label, out))?;
        let opener = RequestOpener(Opener::new(RequestReceive(ctx), DEFAULT_MAX_CHUNK, parsed.suite.aead.tag_len()));
        let response = ChunkedServerResponse {
            backend: key.backend(),
            suite: parsed.suite,
            enc: enc.to_vec(),
            secret,
            max_chunk: DEFAULT_MAX_CHUNK,
        };
        Ok((opener, response))
    }
}

/// The length of a chunked request header for `kem`: seven bytes of identifiers and `enc`.
pub fn header_len(kem: Kem) -> usize {
    RequestHeader::LEN + kem.enc_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::GatewayKey;

    struct Counter(u8);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
            Ok(0)
        }
        fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
            Ok(0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
            for b in dst {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}

    fn gateway(kem: Kem, backend: Backend) -> GatewayKeys {
        let key = GatewayKey::derive(5, kem, SymmetricSuite::ALL.to_vec(), &[9; 32]).unwrap();
        GatewayKeys::new(alloc::vec![key.with_backend(backend).unwrap()]).unwrap()
    }

    /// A request of `pieces` as chunks plus an empty final chunk; returns the wire bytes
    /// after the header, the opener and the responder.
    fn exchange(gw: &GatewayKeys, body: &[u8]) -> (Vec<u8>, RequestOpener, ChunkedServerResponse, ResponseOpener) {
        let config = &gw.configs()[0];
        let (header, mut sealer, response) =
            ChunkedClientRequest::new(config, SymmetricSuite::ALL[0]).unwrap().start(&mut Counter(0)).unwrap();
        let mut wire = sealer.seal(body).unwrap();
        wire.extend(sealer.finish(b"").unwrap());
        let mut reader = RequestHeaderReader::new();
        assert_eq!(reader.push(&header).unwrap(), header.len());
        let (opener, responder) = gw.decapsulate_chunked(reader).unwrap();
        (wire, opener, responder, response)
    }

    fn open_all(mut opener: RequestOpener, wire: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for b in wire {
            for chunk in opener.push(core::slice::from_ref(b))? {
                out.extend_from_slice(&chunk);
            }
        }
        out.extend_from_slice(&opener.finish()?);
        Ok(out)
    }

    #[test]
    fn round_trip_every_kem_and_backend_one_byte_at_a_time() {
        for kem in Kem::ALL {
            for &backend in Backend::ALL {
                let gw = gateway(kem, backend);
                let body: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
                let (wire, opener, responder, mut response) = exchange(&gw, &body);
                assert_eq!(open_all(opener, &wire).unwrap(), body, "{kem:?} {backend:?}");

                let (mut answer, mut sealer) = responder.start(&mut Counter(7)).unwrap();
                answer.extend(sealer.seal(b"line one\n").unwrap());
                answer.extend(sealer.seal(b"line two\n").unwrap());
                answer.extend(sealer.finish(b"end").unwrap());
                let mut got = Vec::new();
                for b in &answer {
                    for chunk in response.push(core::slice::from_ref(b)).unwrap() {
                        got.extend_from_slice(&chunk);
                    }
                }
                got.extend_from_slice(&response.finish().unwrap());
                assert_eq!(got, b"line one\nline two\nend");
            }
        }
    }

    #[test]
    fn header_reader_takes_only_the_header() {
        let gw = gateway(Kem::XWing, Backend::default());
        let (header, mut sealer, _) = ChunkedClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[1])
            .unwrap()
            .start(&mut Counter(0))
            .unwrap();
        assert_eq!(header.len(), header_len(Kem::XWing));
        let mut wire = header.clone();
        wire.extend(sealer.seal(b"abc").unwrap());
        wire.extend(sealer.finish(b"").unwrap());
        let mut reader = RequestHeaderReader::new();
        assert_eq!(reader.push(&wire[..3]).unwrap(), 3);
        assert!(reader.header().is_none());
        let used = reader.push(&wire[3..]).unwrap();
        assert_eq!(used + 3, header.len());
        assert!(reader.is_complete());
        assert_eq!(reader.push(&wire[header.len()..]).unwrap(), 0);
        let (opener, _) = gw.decapsulate_chunked(reader).unwrap();
        assert_eq!(open_all(opener, &wire[header.len()..]).unwrap(), b"abc");
    }

    #[test]
    fn incomplete_or_unknown_headers_are_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let mut reader = RequestHeaderReader::new();
        reader.push(&[5, 0, 0x20, 0, 1, 0, 1, 1, 2]).unwrap();
        assert_eq!(gw.decapsulate_chunked(reader).unwrap_err(), Error::Truncated);
        let mut reader = RequestHeaderReader::new();
        assert_eq!(reader.push(&[5, 0, 0x99, 0, 1, 0, 1]).unwrap_err(), Error::UnsupportedKem(0x99));
        let mut reader = RequestHeaderReader::new();
        reader.push(&[6, 0, 0x20, 0, 1, 0, 1]).unwrap();
        reader.push(&[1; 32]).unwrap();
        assert_eq!(gw.decapsulate_chunked(reader).unwrap_err(), Error::UnknownKeyId(6));
    }

    #[test]
    fn a_chunk_over_max_chunk_is_refused_from_its_length() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (_, opener, _, _) = exchange(&gw, b"");
        let mut opener = opener.with_max_chunk(100);
        // 117 = 100 + 16 + 1 bytes announced: refused before any of them arrive.
        let mut prefix = Vec::new();
        varint::encode(117, &mut prefix);
        assert_eq!(opener.push(&prefix).unwrap_err(), Error::ChunkTooLarge { len: 117, max: 116 });
        // The opener stays failed.
        assert_eq!(opener.push(&[0]).unwrap_err(), Error::ChunkTooLarge { len: 117, max: 116 });
        assert_eq!(opener.finish().unwrap_err(), Error::ChunkTooLarge { len: 117, max: 116 });
        // The largest varint also refused without panicking.
        let (_, mut opener, _, _) = exchange(&gw, b"");
        let huge = [0xff; 8];
        assert!(matches!(opener.push(&huge).unwrap_err(), Error::ChunkTooLarge { .. }));
    }

    #[test]
    fn a_final_chunk_over_max_chunk_is_refused_as_it_grows() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (_, opener, _, _) = exchange(&gw, b"");
        let mut opener = opener.with_max_chunk(10);
        opener.push(&[0]).unwrap();
        opener.push(&[1; 26]).unwrap();
        assert_eq!(opener.push(&[1]).unwrap_err(), Error::ChunkTooLarge { len: 27, max: 26 });
    }

    #[test]
    fn chunks_that_authenticated_before_a_failure_are_handed_on_by_push_into() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let config = &gw.configs()[0];
        let (header, mut sealer, _) =
            ChunkedClientRequest::new(config, SymmetricSuite::ALL[0]).unwrap().start(&mut Counter(0)).unwrap();
        let mut wire = sealer.seal_chunk(b"one").unwrap();
        wire.extend(sealer.seal_chunk(b"two").unwrap());
        let third = wire.len();
        wire.extend(sealer.seal_chunk(b"three").unwrap());
        wire[third + 3] ^= 1;
        let open = |into: bool| {
            let mut reader = RequestHeaderReader::new();
            reader.push(&header).unwrap();
            let (mut opener, _) = gw.decapsulate_chunked(reader).unwrap();
            if into {
                let mut out = Vec::new();
                let error = opener.push_into(&wire, &mut out).unwrap_err();
                (out.iter().map(|p| p.to_vec()).collect::<Vec<_>>(), error, opener.push(b"x").unwrap_err())
            } else {
                let error = opener.push(&wire).unwrap_err();
                (Vec::new(), error, opener.push(b"x").unwrap_err())
            }
        };
        let (opened, error, after) = open(true);
        assert_eq!(opened, alloc::vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!((error, after), (Error::Decrypt, Error::Decrypt), "and it stays failed");
        assert_eq!(open(false).1, Error::Decrypt);
    }

    #[test]
    fn sealers_refuse_empty_and_oversized_chunks() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (_, mut sealer, _) = ChunkedClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[0])
            .unwrap()
            .with_max_chunk(4)
            .start(&mut Counter(0))
            .unwrap();
        assert_eq!(sealer.seal_chunk(b"").unwrap_err(), Error::EmptyChunk);
        assert_eq!(sealer.seal_chunk(b"12345").unwrap_err(), Error::ChunkTooLarge { len: 5, max: 4 });
        assert!(sealer.seal(b"").unwrap().is_empty());
        // `seal` splits: 10 bytes in chunks of 4, 4, 2.
        assert_eq!(sealer.seal(b"0123456789").unwrap().len(), 3 * 17 + 10);
        assert_eq!(sealer.chunks(), 3);
        assert_eq!(sealer.finish(b"12345").unwrap_err(), Error::ChunkTooLarge { len: 5, max: 4 });
    }

    #[test]
    fn an_empty_non_final_chunk_is_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let config = &gw.configs()[0];
        let (header, mut sealer, _) =
            ChunkedClientRequest::new(config, SymmetricSuite::ALL[0]).unwrap().start(&mut Counter(0)).unwrap();
        let mut wire = sealer.seal(b"a").unwrap();
        wire.extend(sealer.danger_seal_empty_chunk().unwrap());
        wire.extend(sealer.finish(b"").unwrap());
        let mut reader = RequestHeaderReader::new();
        reader.push(&header).unwrap();
        let (opener, _) = gw.decapsulate_chunked(reader).unwrap();
        assert_eq!(open_all(opener, &wire).unwrap_err(), Error::EmptyChunk);
    }

    #[test]
    fn truncation_is_refused_anywhere() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (wire, _, _, _) = exchange(&gw, b"hello world");
        // Every cut before the final chunk's length byte: no final chunk.
        let final_at = 1 + 11 + 16;
        for cut in 0..=final_at {
            let (_, opener, _, _) = exchange(&gw, b"hello world");
            assert_eq!(open_all(opener, &wire[..cut]).unwrap_err(), Error::MissingFinalChunk, "cut {cut}");
        }
        // A cut inside the final chunk: it does not authenticate.
        for cut in final_at + 1..wire.len() {
            let (_, opener, _, _) = exchange(&gw, b"hello world");
            assert_eq!(open_all(opener, &wire[..cut]).unwrap_err(), Error::Decrypt, "cut {cut}");
        }
    }

    #[test]
    fn bytes_after_the_final_chunk_are_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (mut wire, opener, _, _) = exchange(&gw, b"hello");
        wire.push(0);
        assert_eq!(open_all(opener, &wire).unwrap_err(), Error::Decrypt);
    }

    #[test]
    fn a_flipped_byte_in_any_chunk_is_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (wire, _, _, _) = exchange(&gw, b"hello world");
        for i in 1..wire.len() {
            if i == 1 + 11 + 16 {
                continue; // The final chunk's length byte: 0 ^ 0x80 is a 2-byte varint prefix.
            }
            let (_, opener, _, _) = exchange(&gw, b"hello world");
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            assert_eq!(open_all(opener, &bad).unwrap_err(), Error::Decrypt, "byte {i}");
        }
    }

    #[test]
    fn reordered_or_misplaced_final_chunks_are_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let config = &gw.configs()[0];
        let (header, mut sealer, _) =
            ChunkedClientRequest::new(config, SymmetricSuite::ALL[0]).unwrap().start(&mut Counter(0)).unwrap();
        let first = sealer.seal(b"one").unwrap();
        let second = sealer.seal(b"two").unwrap();
        let last = sealer.finish(b"").unwrap();
        let open = |wire: Vec<u8>| {
            let mut reader = RequestHeaderReader::new();
            reader.push(&header).unwrap();
            let (opener, _) = gw.decapsulate_chunked(reader).unwrap();
            open_all(opener, &wire)
        };
        assert_eq!(open([second.clone(), first.clone(), last.clone()].concat()).unwrap_err(), Error::Decrypt);
        // A non-final chunk presented as final (length 0): wrong AAD.
        let mut as_final = alloc::vec![0u8];
        as_final.extend_from_slice(&second[1..]);
        assert_eq!(open([first.clone(), as_final].concat()).unwrap_err(), Error::Decrypt);
        assert_eq!(open([first, second, last].concat()).unwrap(), b"onetwo");
    }

    #[test]
    fn a_counter_that_would_wrap_is_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (_, _, responder, _) = exchange(&gw, b"x");
        let (_, mut sealer) = responder.start(&mut Counter(0)).unwrap();
        sealer.0.counter = u64::MAX - 1;
        sealer.seal_chunk(b"a").unwrap();
        assert_eq!(sealer.seal_chunk(b"b").unwrap_err(), Error::ChunkCounterExhausted);
        assert_eq!(sealer.finish(b"").unwrap_err(), Error::ChunkCounterExhausted);

        let (_, mut opener, _, _) = exchange(&gw, b"x");
        opener.0.counter = u64::MAX;
        let chunk = [&[17u8][..], &[0; 17]].concat();
        assert_eq!(opener.push(&chunk).unwrap_err(), Error::ChunkCounterExhausted);
    }

    #[test]
    fn response_nonces_are_base_xor_counter() {
        let cipher = ResponseCipher {
            backend: Backend::default(),
            suite: Suite {
                kem: Kem::X25519HkdfSha256,
                kdf: crate::suite::Kdf::HkdfSha256,
                aead: crate::suite::Aead::Aes128Gcm,
            },
            key: Zeroizing::new(alloc::vec![0; 16]),
            nonce: alloc::vec![0xfe, 0xad, 0x85, 0x46, 0x35, 0xd2, 0xd5, 0x52, 0x7d, 0x64, 0xf5, 0x46],
        };
        assert_eq!(cipher.chunk_nonce(1).last(), Some(&0x47));
        assert_eq!(cipher.chunk_nonce(2).last(), Some(&0x44));
        assert_eq!(cipher.chunk_nonce(0x0102)[10..], [0xf4, 0x44]);
    }

    #[test]
    fn a_truncated_response_is_refused() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (_, _, responder, response) = exchange(&gw, b"x");
        let (nonce, mut sealer) = responder.start(&mut Counter(0)).unwrap();
        let (_, _, _, mut cut_in_nonce) = exchange(&gw, b"x");
        assert!(cut_in_nonce.push(&nonce[..5]).unwrap().is_empty());
        assert_eq!(cut_in_nonce.finish().unwrap_err(), Error::MissingFinalChunk);
        // The nonce and a whole chunk, but no final chunk.
        let mut no_final = response;
        let chunk = sealer.seal(b"partial answer").unwrap();
        assert_eq!(no_final.push(&[nonce, chunk].concat()).unwrap().len(), 1);
        assert_eq!(no_final.finish().unwrap_err(), Error::MissingFinalChunk);
    }

    /// The response direction shares the opener with requests; its bad inputs once more.
    #[test]
    fn bad_responses_are_refused() {
        let gw = gateway(Kem::XWing, Backend::RustHpke);
        let respond = |bad: &dyn Fn(&mut ResponseSealer, &mut Vec<u8>)| {
            let (_, _, responder, response) = exchange(&gw, b"x");
            let (mut wire, mut sealer) = responder.start(&mut Counter(3)).unwrap();
            bad(&mut sealer, &mut wire);
            wire.extend(sealer.finish(b"").unwrap());
            let mut response = response.with_max_chunk(64);
            let mut opened = Vec::new();
            for b in &wire {
                opened.extend(response.push(core::slice::from_ref(b))?);
            }
            response.finish().map(|_| opened.len())
        };
        assert_eq!(respond(&|s, w| w.extend(s.seal(b"abc").unwrap())), Ok(1));
        let flip_third = |s: &mut ResponseSealer, w: &mut Vec<u8>| {
            w.extend(s.seal(b"one").unwrap());
            w.extend(s.seal(b"two").unwrap());
            let mut third = s.seal(b"three").unwrap();
            third[3] ^= 0x40;
            w.extend(third);
        };
        assert_eq!(respond(&flip_third), Err(Error::Decrypt));
        assert_eq!(respond(&|s, w| w.extend(s.danger_seal_empty_chunk().unwrap())), Err(Error::EmptyChunk));
        let oversized = |s: &mut ResponseSealer, w: &mut Vec<u8>| {
            w.extend(s.seal_chunk(&[1; 65]).unwrap());
        };
        assert_eq!(respond(&oversized), Err(Error::ChunkTooLarge { len: 81, max: 80 }));
    }

    #[test]
    fn debug_output_shows_no_secrets() {
        let gw = gateway(Kem::X25519HkdfSha256, Backend::default());
        let (_, opener, responder, response) = exchange(&gw, b"x");
        let text = alloc::format!("{opener:?} {responder:?} {response:?}");
        assert!(text.contains("RequestOpener") && !text.contains("secret:"), "{text}");
    }
}

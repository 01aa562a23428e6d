//! Encapsulated requests (RFC 9458 section 4.3): the client side that seals a Binary HTTP
//! request to a key configuration, and the gateway side that opens it.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{self, Backend, SecretKey};
use crate::error::{Error, Result};
use crate::key_config::KeyConfig;
use crate::response::{ClientResponse, LABEL_RESPONSE, ServerResponse};
use crate::suite::{Aead, Kdf, Kem, Suite, SymmetricSuite};
use crate::varint::Reader;

/// The label that starts the HPKE `info` of a request (RFC 9458 section 4.3).
pub const INFO_REQUEST: &[u8] = b"message/bhttp request";

/// The seven-byte header of an encapsulated request: `key_id | kem_id | kdf_id | aead_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// The key identifier of the key configuration used.
    pub key_id: u8,
    /// The HPKE algorithms used.
    pub suite: Suite,
}

impl RequestHeader {
    /// Encoded length.
    pub const LEN: usize = 7;

    /// Encodes the header.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let [k0, k1] = self.suite.kem.id().to_be_bytes();
        let [d0, d1] = self.suite.kdf.id().to_be_bytes();
        let [a0, a1] = self.suite.aead.id().to_be_bytes();
        [self.key_id, k0, k1, d0, d1, a0, a1]
    }

    /// Decodes the header at the start of `bytes`; an unknown algorithm identifier is an
    /// `Unsupported*` error.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let key_id = r.u8()?;
        let (kem, kdf, aead) = (r.u16()?, r.u16()?, r.u16()?);
        let suite = Suite { kem: Kem::from_id(kem)?, kdf: Kdf::from_id(kdf)?, aead: Aead::from_id(aead)? };
        Ok(Self { key_id, suite })
    }

    /// The HPKE `info`: `"message/bhttp request" || 0x00 || header`.
    fn info(&self) -> Vec<u8> {
        self.info_with(INFO_REQUEST)
    }

    /// The HPKE `info` for `label`: `label || 0x00 || header` (the chunked variant uses
    /// `"message/bhttp chunked request"`).
    pub(crate) fn info_with(&self, label: &[u8]) -> Vec<u8> {
        let mut info = Vec::with_capacity(label.len() + 1 + Self::LEN);
        info.extend_from_slice(label);
        info.push(0);
        info.extend_from_slice(&self.encode());
        info
    }
}

/// A client's intent to send one request to one key configuration. Single use:
/// [`ClientRequest::encapsulate`] consumes it, so an HPKE context is never reused.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub(crate) header: RequestHeader,
    pub(crate) public_key: Vec<u8>,
    pub(crate) backend: Backend,
}

impl ClientRequest {
    /// Prepares a request to `config` using `suite`, which the configuration must offer.
    /// The cryptography is done by [`Backend::default`].
    pub fn new(config: &KeyConfig, suite: SymmetricSuite) -> Result<Self> {
        if !config.offers(suite) {
            return Err(Error::SuiteNotOffered);
        }
        let suite = Suite { kem: config.kem(), kdf: suite.kdf, aead: suite.aead };
        Ok(Self {
            header: RequestHeader { key_id: config.key_id(), suite },
            public_key: config.public_key().to_vec(),
            backend: Backend::default(),
        })
    }

    /// Uses `backend` for this request and its response. Both backends produce messages the
    /// other can read.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The backend this request will use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Encrypts a Binary HTTP request. Returns the encapsulated request
    /// (`header | enc | ciphertext`) and the state needed to open the response.
    pub fn encapsulate(self, request: &[u8], rng: &mut impl CryptoRng) -> Result<(Vec<u8>, ClientResponse)> {
        self.precompute(rng)?.encapsulate(request)
    }

    /// Does the public-key half of [`ClientRequest::encapsulate`] now (RFC 9180 `SetupBaseS`:
    /// a fresh ephemeral key pair, the KEM's shared secret and the key schedule), so that
    /// [`PrecomputedRequest::encapsulate`] later pays only the AEAD and the framing. The
    /// ephemeral private key is gone when this returns; what is kept is the sender's context
    /// for exactly one request.
    pub fn precompute(self, rng: &mut impl CryptoRng) -> Result<PrecomputedRequest> {
        let info = self.header.info();
        let (enc, ctx) = crypto::setup_sender(self.backend, self.header.suite, &self.public_key, &info, rng)?;
        Ok(PrecomputedRequest { request: self, enc, ctx })
    }

    /// [`ClientRequest::encapsulate`] with a fixed ephemeral X25519 private key instead of a
    /// random one, on the aws-lc-rs backend whatever [`ClientRequest::backend`] says. It
    /// exists to reproduce published test vectors (RFC 9458 Appendix A) byte for byte.
    ///
    /// **Never use it to send a real request**: reusing an ephemeral key, or one an attacker
    /// knows, exposes the request and the response. Only DHKEM(X25519) is supported; X-Wing is
    /// [`Error::UnsupportedKem`].
    #[cfg(feature = "aws-lc")]
    pub fn danger_encapsulate_with_ephemeral_key(
        self,
        request: &[u8],
        ephemeral_private_key: &[u8],
    ) -> Result<(Vec<u8>, ClientResponse)> {
        let info = self.header.info();
        let (enc, ctx) = crypto::aws_lc::danger_setup_sender_with_ephemeral_key(
            self.header.suite,
            &self.public_key,
            &info,
            ephemeral_private_key,
        )?;
        Self { backend: Backend::AwsLc, ..self }.finish(request, enc, crypto::SenderContext::AwsLc(ctx))
    }

    /// Exports the response secret, seals the request and frames `header | enc | ciphertext`.
    fn finish(self, request: &[u8], enc: Vec<u8>, ctx: crypto::SenderContext) -> Result<(Vec<u8>, ClientResponse)> {
        self.finish_with(request.len(), |out| out.extend_from_slice(request), enc, ctx)
    }

    /// [`ClientRequest::finish`] with the request written by `write` straight into the buffer
    /// it is sealed in, after `header | enc` (`len` is its size, or a guess).
    fn finish_with(
        self,
        len: usize,
        write: impl FnOnce(&mut Vec<u8>),
        enc: Vec<u8>,
        mut ctx: crypto::SenderContext,
    ) -> Result<(Vec<u8>, ClientResponse)> {
        let secret =
            crate::response::export_secret(self.header.suite, LABEL_RESPONSE, |label, out| ctx.export(label, out))?;
        let start = RequestHeader::LEN + enc.len();
        let mut out = Vec::with_capacity(start + len + self.header.suite.aead.tag_len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&enc);
        write(&mut out);
        if let Err(e) = ctx.seal_in_place(&mut out, start, &[]) {
            // The plaintext is in the buffer until it is sealed.
            drop(Zeroizing::new(out));
            return Err(e);
        }
        Ok((out, ClientResponse::new(self.backend, self.header.suite, enc, secret)))
    }
}

/// A request to one key configuration whose HPKE encapsulation is done and whose message is
/// not yet known ([`ClientRequest::precompute`]). Single use: [`PrecomputedRequest::encapsulate`]
/// consumes it, and it is neither `Clone` nor `Copy`, so one context never seals two requests.
pub struct PrecomputedRequest {
    request: ClientRequest,
    enc: Vec<u8>,
    ctx: crypto::SenderContext,
}

impl fmt::Debug for PrecomputedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrecomputedRequest")
            .field("key_id", &self.request.header.key_id)
            .field("suite", &self.request.header.suite)
            .field("context", &"<redacted>")
            .finish()
    }
}

impl PrecomputedRequest {
    /// The key configuration's id this request is sealed to.
    pub fn key_id(&self) -> u8 {
        self.request.header.key_id
    }

    /// Seals `request` with the prepared context: the second half of
    /// [`ClientRequest::encapsulate`], with the same output.
    pub fn encapsulate(self, request: &[u8]) -> Result<(Vec<u8>, ClientResponse)> {
        self.request.finish(request, self.enc, self.ctx)
    }

    /// [`PrecomputedRequest::encapsulate`] of the request that `write` appends to the buffer
    /// it is given (a Binary HTTP encoder, such as [`crate::bhttp::Request::encode_into`]):
    /// the request is written into the buffer it is sealed in, so it is never copied and no
    /// other buffer holds it. `len` is its size (or a guess), to allocate once.
    pub fn encapsulate_with(self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Result<(Vec<u8>, ClientResponse)> {
        self.request.finish_with(len, write, self.enc, self.ctx)
    }
}

/// One private key of the gateway together with its public key configuration.
#[derive(Clone)]
pub struct GatewayKey {
    config: KeyConfig,
    secret: SecretKey,
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey")
            .field("config", &self.config)
            .field("backend", &self.secret.backend())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl GatewayKey {
    /// Generates a fresh key pair with randomness from `rng`, held by [`Backend::default`].
    pub fn generate(key_id: u8, kem: Kem, suites: Vec<SymmetricSuite>, rng: &mut impl CryptoRng) -> Result<Self> {
        let mut ikm = Zeroizing::new(alloc::vec![0u8; kem.private_key_len()]);
        rng.fill_bytes(&mut ikm);
        Self::derive(key_id, kem, suites, &ikm)
    }

    /// Derives a key pair from input keying material (RFC 9180 `DeriveKeyPair`; for X-Wing
    /// the SHAKE256 derivation of draft-ietf-hpke-pq).
    pub fn derive(key_id: u8, kem: Kem, suites: Vec<SymmetricSuite>, ikm: &[u8]) -> Result<Self> {
        let (secret, public_key) = SecretKey::derive(Backend::default(), kem, ikm)?;
        Ok(Self { config: KeyConfig::new(key_id, kem, public_key, suites)?, secret })
    }

    /// Imports an encoded private key (as produced by [`GatewayKey::secret_bytes`]; for
    /// X-Wing the 32-byte seed).
    pub fn from_secret_bytes(key_id: u8, kem: Kem, suites: Vec<SymmetricSuite>, secret: &[u8]) -> Result<Self> {
        let (secret, public_key) = SecretKey::from_bytes(Backend::default(), kem, secret)?;
        Ok(Self { config: KeyConfig::new(key_id, kem, public_key, suites)?, secret })
    }

    /// The same key held by `backend` (the key is re-imported; the configuration stays).
    pub fn with_backend(self, backend: Backend) -> Result<Self> {
        if self.secret.backend() == backend {
            return Ok(self);
        }
        let (secret, public_key) = SecretKey::from_bytes(backend, self.config.kem(), &self.secret.to_bytes())?;
        if public_key != self.config.public_key() {
            return Err(Error::InvalidPrivateKey);
        }
        Ok(Self { config: self.config, secret })
    }

    /// The backend that holds the key and decapsulates requests to it.
    pub fn backend(&self) -> Backend {
        self.secret.backend()
    }

    /// The encoded private key, for sealing at rest. The buffer zeroizes itself on drop.
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.secret.to_bytes()
    }

    /// The public key configuration.
    pub fn config(&self) -> &KeyConfig {
        &self.config
    }
}

/// The set of keys a gateway accepts requests for; several at once during rotation.
#[derive(Debug, Clone)]
pub struct GatewayKeys {
    keys: Vec<GatewayKey>,
}

impl GatewayKeys {
    /// Builds the set; key identifiers must be distinct, and at least one key is needed.
    pub fn new(keys: Vec<GatewayKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Malformed("a gateway needs at least one key"));
        }
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().skip(i + 1).any(|other| other.config.key_id() == key.config.key_id()) {
                return Err(Error::Malformed("duplicate key identifier"));
            }
        }
        Ok(Self { keys })
    }

    /// The public configurations, in the order keys were given (newest first by convention).
    pub fn configs(&self) -> Vec<KeyConfig> {
        self.keys.iter().map(|k| k.config.clone()).collect()
    }

    /// The body of `GET /.well-known/ohttp-gateway` (`application/ohttp-keys`).
    pub fn encoded_configs(&self) -> Vec<u8> {
        KeyConfig::encode_list(&self.configs())
    }

    /// The private key a request header names, if this gateway holds it and its
    /// configuration offers the header's algorithms.
    pub(crate) fn key_for(&self, header: &RequestHeader) -> Result<&SecretKey> {
        let key =
            self.keys.iter().find(|k| k.config.key_id() == header.key_id).ok_or(Error::UnknownKeyId(header.key_id))?;
        let symmetric = SymmetricSuite::new(header.suite.kdf, header.suite.aead);
        if key.config.kem() != header.suite.kem || !key.config.offers(symmetric) {
            return Err(Error::SuiteNotOffered);
        }
        Ok(&key.secret)
    }

    /// Opens an encapsulated request. Returns the Binary HTTP request (zeroized on drop) and
    /// the state needed to encrypt the response.
    ///
    /// Errors before decryption name the problem (so the gateway can answer 400 or 422);
    /// a decryption failure is [`Error::Decrypt`] with no further detail.
    pub fn decapsulate(&self, encapsulated: &[u8]) -> Result<(Zeroizing<Vec<u8>>, ServerResponse)> {
        let (header, key, enc_end) = self.parse(encapsulated)?;
        let mut plaintext = Zeroizing::new(encapsulated.get(enc_end..).unwrap_or_default().to_vec());
        let (len, responder) = self.open(header, key, encapsulated.get(RequestHeader::LEN..enc_end), &mut plaintext)?;
        plaintext.truncate(len);
        Ok((plaintext, responder))
    }

    /// [`GatewayKeys::decapsulate`] in the buffer that holds the encapsulated request: on
    /// success the Binary HTTP request is `encapsulated[range]` (the range returned), where the
    /// ciphertext was; the header and `enc` before it are left as they were. Nothing is copied.
    ///
    /// The buffer holds plaintext afterwards, and on failure garbage: keep it in a
    /// [`Zeroizing`] (or wipe it otherwise) as the decrypted request would be.
    pub fn decapsulate_in_place(&self, encapsulated: &mut [u8]) -> Result<(Range<usize>, ServerResponse)> {
        let (header, key, enc_end) = self.parse(encapsulated)?;
        let (head, ciphertext) = encapsulated.split_at_mut(enc_end);
        let (len, responder) = self.open(header, key, head.get(RequestHeader::LEN..), ciphertext)?;
        Ok((enc_end..enc_end + len, responder))
    }

    /// Reads the header and finds its key: the header, the key and where `enc` ends.
    fn parse(&self, encapsulated: &[u8]) -> Result<(RequestHeader, &SecretKey, usize)> {
        let mut r = Reader::new(encapsulated);
        let header = RequestHeader::decode(&mut r)?;
        let key = self.key_for(&header)?;
        r.take(header.suite.kem.enc_len())?;
        if r.remaining().len() < header.suite.aead.tag_len() {
            return Err(Error::Truncated);
        }
        Ok((header, key, encapsulated.len() - r.remaining().len()))
    }

    /// `SetupBaseR` with `enc`, and the ciphertext opened in place: the plaintext's length
    /// and the response state.
    fn open(
        &self,
        header: RequestHeader,
        key: &SecretKey,
        enc: Option<&[u8]>,
        ciphertext: &mut [u8],
    ) -> Result<(usize, ServerResponse)> {
        let enc = enc.ok_or(Error::Truncated)?;
        let mut ctx = crypto::setup_receiver(header.suite, key, enc, &header.info())?;
        let len = ctx.open_in_place(ciphertext, &[])?;
        let secret = crate::response::export_secret(header.suite, LABEL_RESPONSE, |label, out| ctx.export(label, out))?;
        Ok((len, ServerResponse::new(key.backend(), header.suite, enc.to_vec(), secret)))
    }
}

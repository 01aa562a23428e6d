//! Encapsulated responses (RFC 9458 section 4.4). The response key and nonce come from an
//! HPKE export of the request context, salted with `enc` and a fresh random response nonce;
//! the nonce comes from the caller's RNG so that tests can reproduce RFC 9458 Appendix A.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{self, Backend};
use crate::error::{Error, Result};
use crate::suite::Suite;

/// The HPKE exporter label for the response secret.
pub const LABEL_RESPONSE: &[u8] = b"message/bhttp response";

/// Runs `secret = context.Export(label, max(Nn, Nk))`; the label is
/// [`LABEL_RESPONSE`], or `"message/bhttp chunked response"` for a chunked response.
pub(crate) fn export_secret(
    suite: Suite,
    label: &[u8],
    export: impl FnOnce(&[u8], &mut [u8]) -> Result<()>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut secret = Zeroizing::new(alloc::vec![0u8; suite.response_nonce_len()]);
    export(label, &mut secret)?;
    Ok(secret)
}

/// The response AEAD key and nonce for `enc`, `response_nonce` and the exported secret
/// (RFC 9458 section 4.4; the chunked variant derives them the same way).
pub(crate) fn response_key(
    backend: Backend,
    suite: Suite,
    secret: &[u8],
    enc: &[u8],
    response_nonce: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let mut salt = Vec::with_capacity(enc.len() + response_nonce.len());
    salt.extend_from_slice(enc);
    salt.extend_from_slice(response_nonce);
    let prk = crypto::hkdf_sha256_extract(backend, &salt, secret);
    let mut key = Zeroizing::new(alloc::vec![0u8; suite.aead.key_len()]);
    crypto::hkdf_sha256_expand(backend, &prk, b"key", &mut key)?;
    let mut nonce = alloc::vec![0u8; suite.aead.nonce_len()];
    crypto::hkdf_sha256_expand(backend, &prk, b"nonce", &mut nonce)?;
    Ok((key, nonce))
}

/// The gateway's state for answering one request. Single use.
pub struct ServerResponse {
    backend: Backend,
    suite: Suite,
    enc: Vec<u8>,
    secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ServerResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerResponse").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl ServerResponse {
    pub(crate) fn new(backend: Backend, suite: Suite, enc: Vec<u8>, secret: Zeroizing<Vec<u8>>) -> Self {
        Self { backend, suite, enc, secret }
    }

    /// The suite the client chose; the response uses the same AEAD.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts a Binary HTTP response: `response_nonce | ciphertext`.
    pub fn encapsulate(self, response: &[u8], rng: &mut impl CryptoRng) -> Result<Vec<u8>> {
        self.encapsulate_with(response.len(), |out| out.extend_from_slice(response), rng)
    }

    /// [`ServerResponse::encapsulate`] of the response that `write` appends to the buffer it
    /// is given (such as [`crate::bhttp::Response::encode_into`]): written into the buffer it
    /// is sealed in, never copied. `len` is its size (or a guess), to allocate once.
    pub fn encapsulate_with(
        self,
        len: usize,
        write: impl FnOnce(&mut Vec<u8>),
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>> {
        let start = self.suite.response_nonce_len();
        let mut out = Vec::with_capacity(start + len + self.suite.aead.tag_len());
        out.resize(start, 0);
        rng.fill_bytes(&mut out);
        let (key, nonce) = response_key(self.backend, self.suite, &self.secret, &self.enc, &out)?;
        write(&mut out);
        if let Err(e) = crypto::aead_seal_in_place(self.backend, self.suite.aead, &key, &nonce, &mut out, start, &[]) {
            // The plaintext is in the buffer until it is sealed.
            drop(Zeroizing::new(out));
            return Err(e);
        }
        Ok(out)
    }
}

/// The client's state for opening the response to one request. Single use.
pub struct ClientResponse {
    backend: Backend,
    suite: Suite,
    enc: Vec<u8>,
    secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl ClientResponse {
    pub(crate) fn new(backend: Backend, suite: Suite, enc: Vec<u8>, secret: Zeroizing<Vec<u8>>) -> Self {
        Self { backend, suite, enc, secret }
    }

    /// Decrypts an encapsulated response into the Binary HTTP response.
    pub fn decapsulate(self, encapsulated: &[u8]) -> Result<Vec<u8>> {
        let (key, nonce, nonce_len) = self.key_for(encapsulated)?;
        let ciphertext = encapsulated.get(nonce_len..).unwrap_or_default();
        crypto::aead_open(self.backend, self.suite.aead, &key, &nonce, ciphertext, &[])
    }

    /// [`ClientResponse::decapsulate`] in the buffer that holds the encapsulated response: on
    /// success the Binary HTTP response is `encapsulated[range]` (the range returned). The
    /// buffer holds plaintext afterwards (garbage on failure): keep it in a [`Zeroizing`].
    pub fn decapsulate_in_place(self, encapsulated: &mut [u8]) -> Result<Range<usize>> {
        let (key, nonce, nonce_len) = self.key_for(encapsulated)?;
        let ciphertext = encapsulated.get_mut(nonce_len..).unwrap_or_default();
        let len = crypto::aead_open_in_place(self.backend, self.suite.aead, &key, &nonce, ciphertext, &[])?;
        Ok(nonce_len..nonce_len + len)
    }

    /// The response key and nonce for `response_nonce | ciphertext`, and the nonce's length.
    fn key_for(&self, encapsulated: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, usize)> {
        let nonce_len = self.suite.response_nonce_len();
        if encapsulated.len() < nonce_len + self.suite.aead.tag_len() {
            return Err(Error::Truncated);
        }
        let response_nonce = encapsulated.get(..nonce_len).unwrap_or_default();
        let (key, nonce) = response_key(self.backend, self.suite, &self.secret, &self.enc, response_nonce)?;
        Ok((key, nonce, nonce_len))
    }
}

//! The cryptographic backends: HPKE (RFC 9180) base mode and the OHTTP response key schedule.
//!
//! Everything above this module speaks in algorithm identifiers and byte strings; only this
//! module knows which library does the work. No primitive is implemented here. There are two
//! backends, in the manner of rustls' `CryptoProvider`:
//!
//! - [`Backend::RustHpke`] (`rust_hpke.rs` + `symmetric.rs`): the `hpke` crate (RustCrypto,
//!   x25519-dalek, the `x-wing` and `ml-kem` crates inside). Pure Rust and portable; always
//!   built, and the only backend of the browser client (wasm32), which builds this crate with
//!   `default-features = false`.
//! - [`Backend::AwsLc`] (`aws_lc.rs`, cargo feature `aws-lc`, on by default): RFC 9180
//!   composed from aws-lc-rs primitives (X25519 agreement, HMAC/HKDF-SHA256, AES-GCM,
//!   ChaCha20-Poly1305, ML-KEM-768, SHA3-256). It keeps each private key parsed and its public
//!   key computed, where the `hpke` crate recomputes the public key (X25519) or re-expands the
//!   whole key from its seed (X-Wing) on every request. The gateway and the Rust SDK use it.
//!
//! [`Backend::default`] is the aws-lc-rs backend when the feature is on. Keys and request
//! contexts remember the backend they were made with (`GatewayKey::with_backend`,
//! `ClientRequest::with_backend` choose another), so both backends can be used side by side:
//! the cross-tests and the benchmarks do that. Each backend implements [`HpkeBackend`]; the
//! enums below dispatch to it with one `match` and no allocation.
//!
//! Both backends produce the same bytes from the same randomness for DHKEM(X25519): the
//! sender draws `Nsk` bytes and runs `DeriveKeyPair` on them, as the `hpke` crate does. For
//! X-Wing the aws-lc-rs backend takes the X25519 half of the encapsulation randomness from
//! the caller's RNG, while ML-KEM-768 encapsulation draws from aws-lc's own generator (aws-lc-rs
//! offers no derandomized encapsulation).

#[cfg(feature = "aws-lc")]
pub(crate) mod aws_lc;
mod rust_hpke;
mod symmetric;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::vec::Vec;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::suite::{Aead, Kem, Suite};

/// Which library performs the cryptography of a key or a request.
///
/// Both backends implement the same algorithms ([`Kem::ALL`] with every
/// [`SymmetricSuite`](crate::SymmetricSuite)) and interoperate byte for byte; they differ in
/// speed and portability. See the `crypto` module of the source for the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The `hpke` crate (RustCrypto): pure Rust, builds for wasm32.
    RustHpke,
    /// RFC 9180 composed from aws-lc-rs primitives (cargo feature `aws-lc`): faster, needs
    /// `std` and a C toolchain.
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

impl Backend {
    /// Every backend compiled in, the default first.
    #[cfg(feature = "aws-lc")]
    pub const ALL: &'static [Backend] = &[Backend::AwsLc, Backend::RustHpke];
    /// Every backend compiled in, the default first.
    #[cfg(not(feature = "aws-lc"))]
    pub const ALL: &'static [Backend] = &[Backend::RustHpke];

    /// A short name for logs and benchmark reports.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::RustHpke => "hpke-crate",
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc-rs",
        }
    }
}

impl Default for Backend {
    /// The aws-lc-rs backend when the `aws-lc` feature is on, else the `hpke` crate.
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Backend::AwsLc;
        #[cfg(not(feature = "aws-lc"))]
        return Backend::RustHpke;
    }
}

/// What a backend provides: RFC 9180 base mode for the suites of [`crate::suite`], plus the
/// HKDF-SHA256 and one-shot AEAD of the OHTTP response (RFC 9458 section 4.4).
///
/// Errors follow the crate's rule: anything that fails while opening is [`Error::Decrypt`]
/// without detail.
///
/// [`Error::Decrypt`]: crate::Error::Decrypt
pub(crate) trait HpkeBackend {
    /// A KEM private key with whatever the backend precomputes from it. Zeroized on drop.
    type SecretKey: Clone + Send + Sync;
    /// The sender's HPKE context.
    type SenderContext: Send;
    /// The recipient's HPKE context.
    type ReceiverContext: Send;

    /// `DeriveKeyPair(ikm)` (RFC 9180 section 7.1.3; draft-ietf-hpke-pq for X-Wing): the
    /// private key and the encoded public key.
    fn derive_key_pair(kem: Kem, ikm: &[u8]) -> Result<(Self::SecretKey, Vec<u8>)>;
    /// `DeserializePrivateKey`, returning the key and its encoded public key.
    fn import_private_key(kem: Kem, private_key: &[u8]) -> Result<(Self::SecretKey, Vec<u8>)>;
    /// `SerializePrivateKey` (for X-Wing: the 32-byte seed).
    fn private_key_bytes(key: &Self::SecretKey) -> Zeroizing<Vec<u8>>;
    /// `SetupBaseS` (RFC 9180 section 5.1.1): `enc` and the context.
    fn setup_sender(
        suite: Suite,
        public_key: &[u8],
        info: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, Self::SenderContext)>;
    /// `SetupBaseR` (RFC 9180 section 5.1.1).
    fn setup_receiver(suite: Suite, key: &Self::SecretKey, enc: &[u8], info: &[u8]) -> Result<Self::ReceiverContext>;
    /// `ContextS.Seal` (RFC 9180 section 5.2) in place: encrypts `buf[start..]` and appends
    /// the tag; advances the sequence number.
    fn seal_in_place(ctx: &mut Self::SenderContext, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()>;
    /// `ContextR.Open` (RFC 9180 section 5.2) in place: `buf` holds ciphertext and tag, and
    /// on success its first `n` bytes (`n` returned) the plaintext; advances the sequence
    /// number. On failure `buf` holds garbage.
    fn open_in_place(ctx: &mut Self::ReceiverContext, buf: &mut [u8], aad: &[u8]) -> Result<usize>;
    /// `Context.Export` (RFC 9180 section 5.3) on the sender's side.
    fn sender_export(ctx: &Self::SenderContext, exporter_context: &[u8], out: &mut [u8]) -> Result<()>;
    /// `Context.Export` (RFC 9180 section 5.3) on the recipient's side.
    fn receiver_export(ctx: &Self::ReceiverContext, exporter_context: &[u8], out: &mut [u8]) -> Result<()>;
    /// `HKDF-Extract(salt, ikm)` with SHA-256 (RFC 5869).
    fn hkdf_sha256_extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>>;
    /// `HKDF-Expand(prk, info, out.len())` with SHA-256 (RFC 5869).
    fn hkdf_sha256_expand(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<()>;
    /// One-shot AEAD encryption in place: encrypts `buf[start..]` and appends the tag. The
    /// response AAD is empty, except on the final chunk of a chunked response (`"final"`,
    /// draft-ietf-ohai-chunked-ohttp-08 section 6.2).
    fn aead_seal_in_place(
        aead: Aead,
        key: &[u8],
        nonce: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
        aad: &[u8],
    ) -> Result<()>;
    /// One-shot AEAD decryption in place, with the AAD as for
    /// [`HpkeBackend::aead_seal_in_place`] and the result as for [`HpkeBackend::open_in_place`].
    fn aead_open_in_place(aead: Aead, key: &[u8], nonce: &[u8], buf: &mut [u8], aad: &[u8]) -> Result<usize>;
}

use rust_hpke::RustHpke;

#[cfg(feature = "aws-lc")]
use aws_lc::AwsLc;

/// A KEM private key held by one backend.
#[derive(Clone)]
pub(crate) enum SecretKey {
    RustHpke(<RustHpke as HpkeBackend>::SecretKey),
    #[cfg(feature = "aws-lc")]
    AwsLc(<AwsLc as HpkeBackend>::SecretKey),
}

impl SecretKey {
    /// Derives a key pair from input keying material (RFC 9180 `DeriveKeyPair`).
    pub(crate) fn derive(backend: Backend, kem: Kem, ikm: &[u8]) -> Result<(Self, Vec<u8>)> {
        Ok(match backend {
            Backend::RustHpke => {
                let (sk, pk) = RustHpke::derive_key_pair(kem, ikm)?;
                (SecretKey::RustHpke(sk), pk)
            }
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                let (sk, pk) = AwsLc::derive_key_pair(kem, ikm)?;
                (SecretKey::AwsLc(sk), pk)
            }
        })
    }

    /// Imports an encoded private key and computes its public key.
    pub(crate) fn from_bytes(backend: Backend, kem: Kem, bytes: &[u8]) -> Result<(Self, Vec<u8>)> {
        Ok(match backend {
            Backend::RustHpke => {
                let (sk, pk) = RustHpke::import_private_key(kem, bytes)?;
                (SecretKey::RustHpke(sk), pk)
            }
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                let (sk, pk) = AwsLc::import_private_key(kem, bytes)?;
                (SecretKey::AwsLc(sk), pk)
            }
        })
    }

    /// The encoded private key, for sealing at rest.
    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SecretKey::RustHpke(sk) => RustHpke::private_key_bytes(sk),
            #[cfg(feature = "aws-lc")]
            SecretKey::AwsLc(sk) => AwsLc::private_key_bytes(sk),
        }
    }

    /// The backend holding the key.
    pub(crate) fn backend(&self) -> Backend {
        match self {
            SecretKey::RustHpke(_) => Backend::RustHpke,
            #[cfg(feature = "aws-lc")]
            SecretKey::AwsLc(_) => Backend::AwsLc,
        }
    }
}

/// A sender (client) context of one backend. The `hpke` crate's contexts hold expanded
/// AEAD key schedules (about 700 bytes), hence the box.
pub(crate) enum SenderContext {
    RustHpke(Box<<RustHpke as HpkeBackend>::SenderContext>),
    #[cfg(feature = "aws-lc")]
    AwsLc(<AwsLc as HpkeBackend>::SenderContext),
}

/// A receiver (gateway) context of one backend, boxed like [`SenderContext`].
pub(crate) enum ReceiverContext {
    RustHpke(Box<<RustHpke as HpkeBackend>::ReceiverContext>),
    #[cfg(feature = "aws-lc")]
    AwsLc(<AwsLc as HpkeBackend>::ReceiverContext),
}

/// Runs `SetupBaseS` (RFC 9180 section 5.1.1) and returns `enc` and the context.
pub(crate) fn setup_sender(
    backend: Backend,
    suite: Suite,
    public_key: &[u8],
    info: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, SenderContext)> {
    Ok(match backend {
        Backend::RustHpke => {
            let (enc, ctx) = RustHpke::setup_sender(suite, public_key, info, rng)?;
            (enc, SenderContext::RustHpke(Box::new(ctx)))
        }
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc => {
            let (enc, ctx) = AwsLc::setup_sender(suite, public_key, info, rng)?;
            (enc, SenderContext::AwsLc(ctx))
        }
    })
}

/// Runs `SetupBaseR` (RFC 9180 section 5.1.1) with the backend that holds `key`.
pub(crate) fn setup_receiver(suite: Suite, key: &SecretKey, enc: &[u8], info: &[u8]) -> Result<ReceiverContext> {
    Ok(match key {
        SecretKey::RustHpke(sk) => ReceiverContext::RustHpke(Box::new(RustHpke::setup_receiver(suite, sk, enc, info)?)),
        #[cfg(feature = "aws-lc")]
        SecretKey::AwsLc(sk) => ReceiverContext::AwsLc(AwsLc::setup_receiver(suite, sk, enc, info)?),
    })
}

impl SenderContext {
    /// `ContextS.Seal` into a new buffer.
    pub(crate) fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        sealed_copy(plaintext, |buf| self.seal_in_place(buf, 0, aad))
    }

    /// `ContextS.Seal` of `buf[start..]` in place, the tag appended.
    pub(crate) fn seal_in_place(&mut self, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()> {
        match self {
            SenderContext::RustHpke(ctx) => RustHpke::seal_in_place(ctx, buf, start, aad),
            #[cfg(feature = "aws-lc")]
            SenderContext::AwsLc(ctx) => AwsLc::seal_in_place(ctx, buf, start, aad),
        }
    }

    /// `Context.Export`.
    pub(crate) fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        match self {
            SenderContext::RustHpke(ctx) => RustHpke::sender_export(ctx, exporter_context, out),
            #[cfg(feature = "aws-lc")]
            SenderContext::AwsLc(ctx) => AwsLc::sender_export(ctx, exporter_context, out),
        }
    }
}

impl ReceiverContext {
    /// `ContextR.Open` into a new buffer.
    pub(crate) fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        opened_copy(ciphertext, |buf| self.open_in_place(buf, aad))
    }

    /// `ContextR.Open` in place ([`HpkeBackend::open_in_place`]).
    pub(crate) fn open_in_place(&mut self, buf: &mut [u8], aad: &[u8]) -> Result<usize> {
        match self {
            ReceiverContext::RustHpke(ctx) => RustHpke::open_in_place(ctx, buf, aad),
            #[cfg(feature = "aws-lc")]
            ReceiverContext::AwsLc(ctx) => AwsLc::open_in_place(ctx, buf, aad),
        }
    }

    /// `Context.Export`.
    pub(crate) fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        match self {
            ReceiverContext::RustHpke(ctx) => RustHpke::receiver_export(ctx, exporter_context, out),
            #[cfg(feature = "aws-lc")]
            ReceiverContext::AwsLc(ctx) => AwsLc::receiver_export(ctx, exporter_context, out),
        }
    }
}

/// `HKDF-Extract(salt, ikm)` with SHA-256, returning the pseudorandom key.
pub(crate) fn hkdf_sha256_extract(backend: Backend, salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
    match backend {
        Backend::RustHpke => RustHpke::hkdf_sha256_extract(salt, ikm),
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc => AwsLc::hkdf_sha256_extract(salt, ikm),
    }
}

/// `HKDF-Expand(prk, info, out.len())` with SHA-256.
pub(crate) fn hkdf_sha256_expand(backend: Backend, prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    match backend {
        Backend::RustHpke => RustHpke::hkdf_sha256_expand(prk, info, out),
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc => AwsLc::hkdf_sha256_expand(prk, info, out),
    }
}

/// One-shot AEAD encryption into a new buffer.
pub(crate) fn aead_seal(
    backend: Backend,
    aead: Aead,
    key: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    sealed_copy(plaintext, |buf| aead_seal_in_place(backend, aead, key, nonce, buf, 0, aad))
}

/// One-shot AEAD encryption of `buf[start..]` in place, the tag appended.
pub(crate) fn aead_seal_in_place(
    backend: Backend,
    aead: Aead,
    key: &[u8],
    nonce: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
    aad: &[u8],
) -> Result<()> {
    match backend {
        Backend::RustHpke => RustHpke::aead_seal_in_place(aead, key, nonce, buf, start, aad),
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc => AwsLc::aead_seal_in_place(aead, key, nonce, buf, start, aad),
    }
}

/// One-shot AEAD decryption into a new buffer.
pub(crate) fn aead_open(
    backend: Backend,
    aead: Aead,
    key: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    opened_copy(ciphertext, |buf| aead_open_in_place(backend, aead, key, nonce, buf, aad))
}

/// One-shot AEAD decryption in place ([`HpkeBackend::aead_open_in_place`]).
pub(crate) fn aead_open_in_place(
    backend: Backend,
    aead: Aead,
    key: &[u8],
    nonce: &[u8],
    buf: &mut [u8],
    aad: &[u8],
) -> Result<usize> {
    match backend {
        Backend::RustHpke => RustHpke::aead_open_in_place(aead, key, nonce, buf, aad),
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc => AwsLc::aead_open_in_place(aead, key, nonce, buf, aad),
    }
}

/// The plaintext copied into a buffer with room for the tag and sealed there. The
/// allocating forms of sealing for callers that keep their plaintext (the chunked format's
/// small chunks); on failure the copy is wiped.
fn sealed_copy(plaintext: &[u8], seal: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buf.extend_from_slice(plaintext);
    match seal(&mut buf) {
        Ok(()) => Ok(buf),
        Err(e) => {
            drop(Zeroizing::new(buf));
            Err(e)
        }
    }
}

/// The ciphertext copied and opened in place; the buffer is cut to the plaintext, or wiped
/// when opening fails.
fn opened_copy(ciphertext: &[u8], open: impl FnOnce(&mut [u8]) -> Result<usize>) -> Result<Vec<u8>> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = open(&mut buf)?;
    buf.truncate(len);
    Ok(core::mem::take(&mut *buf))
}

/// The tag length of every AEAD of [`crate::suite`] (`Aead::tag_len`).
pub(crate) const TAG_LEN: usize = 16;

//! HPKE (RFC 9180) base mode composed from aws-lc-rs primitives: the fast backend.
//!
//! Nothing here is a primitive. The file strings aws-lc-rs calls together exactly as RFC 9180
//! writes them: `LabeledExtract` is HMAC-SHA256 (`aws_lc_rs::hmac`, which is HKDF-Extract
//! with the output kept as bytes, as the key schedule needs), `LabeledExpand` is
//! `aws_lc_rs::hkdf` Expand, DHKEM(X25519) uses `aws_lc_rs::agreement`, and the AEADs are
//! `aws_lc_rs::aead`. X-Wing is in `aws_lc/xwing.rs`.
//!
//! Unlike the `hpke` crate, a recipient key here is parsed once and its public key (which
//! DHKEM's `kem_context` needs) computed once, when the key is loaded: the gateway pays one
//! X25519 agreement per request and nothing else of that size.

mod xwing;

use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::OnceLock;

use aws_lc_rs::aead::{self as lc_aead, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::{hkdf, hmac};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::HpkeBackend;
use crate::error::{Error, Result};
use crate::suite::{Aead, Kdf, Kem, Suite};

/// `Nh` of HKDF-SHA256.
const NH: usize = 32;
/// `Nsk`, `Npk` and `Ndh` of X25519.
const X25519_LEN: usize = 32;
/// The version label of every labeled KDF call (RFC 9180 section 4).
const VERSION_LABEL: &[u8] = b"HPKE-v1";
/// `mode_base` (RFC 9180 section 5.1).
const MODE_BASE: u8 = 0x00;

/// The aws-lc-rs backend.
pub(crate) struct AwsLc;

/// A recipient private key, parsed once. Shared (`Arc`) because aws-lc key handles cannot
/// be cloned; aws-lc frees and wipes them when the last reference goes.
#[derive(Clone)]
pub(crate) struct SecretKey(Arc<KeyPair>);

enum KeyPair {
    X25519 {
        /// The private key as aws-lc holds it.
        private: agreement::PrivateKey,
        /// The same key serialized, for sealing it at rest.
        bytes: Zeroizing<[u8; X25519_LEN]>,
        /// `pkRm`, computed once.
        public: [u8; X25519_LEN],
    },
    XWing(xwing::DecapsulationKey),
}

/// `"KEM" || I2OSP(kem_id, 2)`, the suite of KEM-internal labeled calls (RFC 9180 section 4.1).
fn kem_suite_id(kem: Kem) -> [u8; 5] {
    let [k0, k1] = kem.id().to_be_bytes();
    [b'K', b'E', b'M', k0, k1]
}

/// `"HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2)` (RFC 9180 section 5.1).
fn hpke_suite_id(suite: Suite) -> [u8; 10] {
    let [k0, k1] = suite.kem.id().to_be_bytes();
    let [d0, d1] = suite.kdf.id().to_be_bytes();
    let [a0, a1] = suite.aead.id().to_be_bytes();
    [b'H', b'P', b'K', b'E', k0, k1, d0, d1, a0, a1]
}

/// `LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm)`
/// (RFC 9180 section 4), where `Extract` is HKDF-Extract = HMAC-SHA256 keyed with the salt.
/// An empty salt equals the RFC's default of `Nh` zero bytes: HMAC pads its key with zeros.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    if salt.is_empty() {
        // Three of the five extractions per request have no salt; HMAC's keyed state for
        // the empty key is computed once.
        static EMPTY_SALT: OnceLock<hmac::Key> = OnceLock::new();
        let key = EMPTY_SALT.get_or_init(|| hmac::Key::new(hmac::HMAC_SHA256, b""));
        return labeled_extract_with(key, suite_id, label, ikm);
    }
    labeled_extract_with(&hmac::Key::new(hmac::HMAC_SHA256, salt), suite_id, label, ikm)
}

fn labeled_extract_with(key: &hmac::Key, suite_id: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    let mut ctx = hmac::Context::with_key(key);
    for part in [VERSION_LABEL, suite_id, label, ikm] {
        ctx.update(part);
    }
    let mut prk = Zeroizing::new([0u8; NH]);
    for (out, byte) in prk.iter_mut().zip(ctx.sign().as_ref()) {
        *out = *byte;
    }
    prk
}

/// `LabeledExtract("", "psk_id_hash", psk_id)` for base mode's empty `psk_id`: a constant
/// of the suite, computed once per suite.
fn psk_id_hash(suite: Suite) -> core::result::Result<&'static [u8; NH], Unspecified> {
    static TABLE: OnceLock<Vec<(Suite, [u8; NH])>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let aeads = [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305];
        let suites = Kem::ALL.into_iter().flat_map(|kem| aeads.map(|aead| Suite { kem, kdf: Kdf::HkdfSha256, aead }));
        suites.map(|suite| (suite, *labeled_extract(&hpke_suite_id(suite), b"", b"psk_id_hash", b""))).collect()
    });
    table.iter().find(|(s, _)| *s == suite).map(|(_, hash)| hash).ok_or(Unspecified)
}

/// An HKDF output length for aws-lc-rs.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id ||
/// label || info, L)` (RFC 9180 section 4), `L = out.len()`.
fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8; NH],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> core::result::Result<(), Unspecified> {
    let length = u16::try_from(out.len()).map_err(|_| Unspecified)?.to_be_bytes();
    // `new_less_safe` panics only for a PRK longer than the hash's block; ours is `Nh` bytes.
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk);
    let info = [&length[..], VERSION_LABEL, suite_id, label, info];
    prk.expand(&info, Len(out.len()))?.fill(out)
}

/// `DeriveKeyPair(ikm)` for DHKEM(X25519, HKDF-SHA256) (RFC 9180 section 7.1.3).
fn x25519_derive(ikm: &[u8]) -> Result<KeyPair> {
    let suite_id = kem_suite_id(Kem::X25519HkdfSha256);
    let dkp_prk = labeled_extract(&suite_id, b"", b"dkp_prk", ikm);
    let mut sk = Zeroizing::new([0u8; X25519_LEN]);
    labeled_expand(&suite_id, &dkp_prk, b"sk", b"", &mut *sk).map_err(|_| Error::InvalidPrivateKey)?;
    x25519_import(&*sk)
}

/// `DeserializePrivateKey` for X25519, computing `pk(skX)` once. RFC 9180 section 7.1.2 has
/// both (de)serialization functions clamp (RFC 7748 section 5); aws-lc clamps internally, and
/// the bytes kept for `SerializePrivateKey` are clamped here, as the `hpke` crate keeps them.
fn x25519_import(bytes: &[u8]) -> Result<KeyPair> {
    let bytes: [u8; X25519_LEN] = bytes.try_into().map_err(|_| Error::InvalidPrivateKey)?;
    let mut bytes = Zeroizing::new(bytes);
    if let ([first, ..], [.., last]) = bytes.split_at_mut(1) {
        *first &= 0b1111_1000;
        *last = (*last & 0b0111_1111) | 0b0100_0000;
    }
    let private = agreement::PrivateKey::from_private_key(&X25519, &*bytes).map_err(|_| Error::InvalidPrivateKey)?;
    let public = private.compute_public_key().map_err(|_| Error::InvalidPrivateKey)?;
    let public: [u8; X25519_LEN] = public.as_ref().try_into().map_err(|_| Error::InvalidPrivateKey)?;
    Ok(KeyPair::X25519 { private, bytes, public })
}

/// `DH(sk, pk)`: one X25519 agreement. aws-lc refuses an all-zero result (a low-order `pk`),
/// which RFC 9180 section 7.1.4 requires implementations to check for.
fn x25519_dh(private: &agreement::PrivateKey, public: &[u8], error: Error) -> Result<Zeroizing<[u8; X25519_LEN]>> {
    agreement::agree(private, UnparsedPublicKey::new(&X25519, public), error.clone(), |dh| {
        dh.try_into().map(Zeroizing::new).map_err(|_| error.clone())
    })
}

/// `ExtractAndExpand(dh, kem_context)` with `kem_context = enc || pkRm` (RFC 9180 section 4.1).
fn x25519_shared_secret(dh: &[u8], enc: &[u8; X25519_LEN], pk_r: &[u8; X25519_LEN]) -> Result<Zeroizing<[u8; NH]>> {
    let suite_id = kem_suite_id(Kem::X25519HkdfSha256);
    let eae_prk = labeled_extract(&suite_id, b"", b"eae_prk", dh);
    let mut kem_context = [0u8; 2 * X25519_LEN];
    for (out, byte) in kem_context.iter_mut().zip(enc.iter().chain(pk_r)) {
        *out = *byte;
    }
    let mut shared_secret = Zeroizing::new([0u8; NH]);
    labeled_expand(&suite_id, &eae_prk, b"shared_secret", &kem_context, &mut *shared_secret)
        .map_err(|_| Error::Decrypt)?;
    Ok(shared_secret)
}

/// DHKEM `Encap(pkR)` with a given ephemeral key pair (RFC 9180 section 4.1).
fn x25519_encap_with(ephemeral: &KeyPair, pk_r: &[u8]) -> Result<(Zeroizing<[u8; NH]>, Vec<u8>)> {
    let KeyPair::X25519 { private, public: pk_e, .. } = ephemeral else {
        return Err(Error::Encrypt);
    };
    let pk_r: &[u8; X25519_LEN] = pk_r.try_into().map_err(|_| Error::InvalidPublicKey)?;
    let dh = x25519_dh(private, pk_r, Error::InvalidPublicKey)?;
    let shared_secret = x25519_shared_secret(&*dh, pk_e, pk_r).map_err(|_| Error::Encrypt)?;
    Ok((shared_secret, pk_e.to_vec()))
}

/// An HPKE context (RFC 9180 section 5.2); sender and recipient hold the same state.
pub(crate) struct Context {
    suite_id: [u8; 10],
    key: LessSafeKey,
    base_nonce: [u8; lc_aead::NONCE_LEN],
    seq: u64,
    exporter_secret: Zeroizing<[u8; NH]>,
}

impl Context {
    /// `KeySchedule(mode_base, shared_secret, info, "", "")` (RFC 9180 section 5.1).
    fn key_schedule(suite: Suite, shared_secret: &[u8], info: &[u8]) -> core::result::Result<Self, Unspecified> {
        let Kdf::HkdfSha256 = suite.kdf;
        let suite_id = hpke_suite_id(suite);
        let psk_id_hash = psk_id_hash(suite)?;
        let info_hash = labeled_extract(&suite_id, b"", b"info_hash", info);
        let mut key_schedule_context = [0u8; 1 + 2 * NH];
        let parts = [MODE_BASE].into_iter().chain(psk_id_hash.iter().copied()).chain(info_hash.iter().copied());
        for (out, byte) in key_schedule_context.iter_mut().zip(parts) {
            *out = byte;
        }
        let secret = labeled_extract(&suite_id, shared_secret, b"secret", b"");

        let mut key_buffer = Zeroizing::new([0u8; 32]);
        let key_bytes = key_buffer.get_mut(..suite.aead.key_len()).ok_or(Unspecified)?;
        labeled_expand(&suite_id, &secret, b"key", &key_schedule_context, key_bytes)?;
        let mut base_nonce = [0u8; lc_aead::NONCE_LEN];
        labeled_expand(&suite_id, &secret, b"base_nonce", &key_schedule_context, &mut base_nonce)?;
        let mut exporter_secret = Zeroizing::new([0u8; NH]);
        labeled_expand(&suite_id, &secret, b"exp", &key_schedule_context, &mut *exporter_secret)?;

        let key = LessSafeKey::new(UnboundKey::new(algorithm(suite.aead), key_bytes)?);
        Ok(Self { suite_id, key, base_nonce, seq: 0, exporter_secret })
    }

    /// `ComputeNonce(seq)`: the base nonce XOR the big-endian sequence number.
    fn nonce(&self) -> Nonce {
        let mut nonce = self.base_nonce;
        for (byte, seq) in nonce.iter_mut().rev().zip(self.seq.to_le_bytes()) {
            *byte ^= seq;
        }
        Nonce::assume_unique_for_key(nonce)
    }

    /// `IncrementSeq`: a u64 cannot reach `Nn`'s limit, but it must never wrap.
    fn increment_seq(&mut self) -> core::result::Result<(), Unspecified> {
        self.seq = self.seq.checked_add(1).ok_or(Unspecified)?;
        Ok(())
    }

    fn seal_in_place(&mut self, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> core::result::Result<(), Unspecified> {
        seal_tail(&self.key, self.nonce(), buf, start, aad)?;
        self.increment_seq()
    }

    fn open_in_place(&mut self, buf: &mut [u8], aad: &[u8]) -> core::result::Result<usize, Unspecified> {
        let len = self.key.open_in_place(self.nonce(), Aad::from(aad), buf)?.len();
        self.increment_seq()?;
        Ok(len)
    }

    /// `Context.Export(exporter_context, L) = LabeledExpand(exporter_secret, "sec",
    /// exporter_context, L)` (RFC 9180 section 5.3).
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> core::result::Result<(), Unspecified> {
        labeled_expand(&self.suite_id, &self.exporter_secret, b"sec", exporter_context, out)
    }
}

/// Encrypts `buf[start..]` in place and appends the tag.
fn seal_tail(
    key: &LessSafeKey,
    nonce: Nonce,
    buf: &mut Vec<u8>,
    start: usize,
    aad: &[u8],
) -> core::result::Result<(), Unspecified> {
    let plaintext = buf.get_mut(start..).ok_or(Unspecified)?;
    let tag = key.seal_in_place_separate_tag(nonce, Aad::from(aad), plaintext)?;
    buf.extend_from_slice(tag.as_ref());
    Ok(())
}

fn algorithm(aead: Aead) -> &'static lc_aead::Algorithm {
    match aead {
        Aead::Aes128Gcm => &lc_aead::AES_128_GCM,
        Aead::Aes256Gcm => &lc_aead::AES_256_GCM,
        Aead::ChaCha20Poly1305 => &lc_aead::CHACHA20_POLY1305,
    }
}

/// `SetupBaseS` with a fixed ephemeral X25519 private key instead of a random one, to
/// reproduce published test vectors (RFC 9458 Appendix A gives `skE`, not the IKM). Never
/// for production: an ephemeral key used twice breaks confidentiality.
pub(crate) fn danger_setup_sender_with_ephemeral_key(
    suite: Suite,
    public_key: &[u8],
    info: &[u8],
    ephemeral_private_key: &[u8],
) -> Result<(Vec<u8>, Context)> {
    let Kem::X25519HkdfSha256 = suite.kem else {
        return Err(Error::UnsupportedKem(suite.kem.id()));
    };
    let ephemeral = x25519_import(ephemeral_private_key)?;
    let (shared_secret, enc) = x25519_encap_with(&ephemeral, public_key)?;
    let ctx = Context::key_schedule(suite, &*shared_secret, info).map_err(|_| Error::Encrypt)?;
    Ok((enc, ctx))
}

impl HpkeBackend for AwsLc {
    type SecretKey = SecretKey;
    type SenderContext = Context;
    type ReceiverContext = Context;

    fn derive_key_pair(kem: Kem, ikm: &[u8]) -> Result<(SecretKey, Vec<u8>)> {
        match kem {
            Kem::X25519HkdfSha256 => {
                let pair = x25519_derive(ikm)?;
                let public = public_key(&pair);
                Ok((SecretKey(Arc::new(pair)), public))
            }
            Kem::XWing => {
                let seed = xwing::derive_seed(ikm);
                Self::import_private_key(kem, &seed)
            }
        }
    }

    fn import_private_key(kem: Kem, private_key: &[u8]) -> Result<(SecretKey, Vec<u8>)> {
        let pair = match kem {
            Kem::X25519HkdfSha256 => x25519_import(private_key)?,
            Kem::XWing => KeyPair::XWing(xwing::DecapsulationKey::from_seed(private_key)?),
        };
        let public = public_key(&pair);
        Ok((SecretKey(Arc::new(pair)), public))
    }

    fn private_key_bytes(key: &SecretKey) -> Zeroizing<Vec<u8>> {
        match &*key.0 {
            KeyPair::X25519 { bytes, .. } => Zeroizing::new(bytes.to_vec()),
            KeyPair::XWing(key) => Zeroizing::new(key.seed().to_vec()),
        }
    }

    fn setup_sender(
        suite: Suite,
        public_key: &[u8],
        info: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, Context)> {
        let (shared_secret, enc) = match suite.kem {
            // GenerateKeyPair as the `hpke` crate does it, DeriveKeyPair(random(Nsk)), so both
            // backends turn the same randomness into the same `enc`.
            Kem::X25519HkdfSha256 => {
                let mut ikm = Zeroizing::new([0u8; X25519_LEN]);
                rng.fill_bytes(&mut *ikm);
                x25519_encap_with(&x25519_derive(&*ikm)?, public_key)?
            }
            Kem::XWing => xwing::encapsulate(public_key, rng)?,
        };
        let ctx = Context::key_schedule(suite, &*shared_secret, info).map_err(|_| Error::Encrypt)?;
        Ok((enc, ctx))
    }

    fn setup_receiver(suite: Suite, key: &SecretKey, enc: &[u8], info: &[u8]) -> Result<Context> {
        let shared_secret = match (&*key.0, suite.kem) {
            (KeyPair::X25519 { private, public, .. }, Kem::X25519HkdfSha256) => {
                let enc: &[u8; X25519_LEN] = enc.try_into().map_err(|_| Error::Decrypt)?;
                let dh = x25519_dh(private, enc, Error::Decrypt)?;
                x25519_shared_secret(&*dh, enc, public)?
            }
            (KeyPair::XWing(key), Kem::XWing) => key.decapsulate(enc)?,
            // The caller matches the key configuration's KEM first; only a bug gets here.
            _ => return Err(Error::Decrypt),
        };
        Context::key_schedule(suite, &*shared_secret, info).map_err(|_| Error::Decrypt)
    }

    fn seal_in_place(ctx: &mut Context, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()> {
        ctx.seal_in_place(buf, start, aad).map_err(|_| Error::Encrypt)
    }

    fn open_in_place(ctx: &mut Context, buf: &mut [u8], aad: &[u8]) -> Result<usize> {
        ctx.open_in_place(buf, aad).map_err(|_| Error::Decrypt)
    }

    fn sender_export(ctx: &Context, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        ctx.export(exporter_context, out).map_err(|_| Error::Encrypt)
    }

    fn receiver_export(ctx: &Context, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        ctx.export(exporter_context, out).map_err(|_| Error::Decrypt)
    }

    fn hkdf_sha256_extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
        // HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 section 2.2).
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
        Zeroizing::new(prk.as_ref().to_vec())
    }

    fn hkdf_sha256_expand(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
        if prk.len() != NH {
            return Err(Error::Encrypt);
        }
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk);
        let info = [info];
        prk.expand(&info, Len(out.len())).and_then(|okm| okm.fill(out)).map_err(|_| Error::Encrypt)
    }

    fn aead_seal_in_place(
        aead: Aead,
        key: &[u8],
        nonce: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
        aad: &[u8],
    ) -> Result<()> {
        let key = LessSafeKey::new(UnboundKey::new(algorithm(aead), key).map_err(|_| Error::Encrypt)?);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Encrypt)?;
        seal_tail(&key, nonce, buf, start, aad).map_err(|_| Error::Encrypt)
    }

    fn aead_open_in_place(aead: Aead, key: &[u8], nonce: &[u8], buf: &mut [u8], aad: &[u8]) -> Result<usize> {
        let key = LessSafeKey::new(UnboundKey::new(algorithm(aead), key).map_err(|_| Error::Decrypt)?);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Decrypt)?;
        Ok(key.open_in_place(nonce, Aad::from(aad), buf).map_err(|_| Error::Decrypt)?.len())
    }
}

/// The encoded public key of a key pair.
fn public_key(pair: &KeyPair) -> Vec<u8> {
    match pair {
        KeyPair::X25519 { public, .. } => public.to_vec(),
        KeyPair::XWing(key) => key.public_key().to_vec(),
    }
}

/// Test-only access to the X-Wing KEM for the draft's known-answer tests.
#[cfg(test)]
pub(crate) mod xwing_kem {
    pub(crate) use super::xwing::{DecapsulationKey, encapsulate_with_x25519_ephemeral};
}

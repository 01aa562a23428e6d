//! Known-answer tests and cross-tests of the HPKE backends, below the OHTTP layer.
//!
//! - RFC 9180 test vectors (`vectors/rfc9180-x25519-hkdf-sha256.json`): every suite with
//!   DHKEM(X25519), on every backend, as sender (fixed `ikmE`) and as recipient: `DeriveKeyPair`,
//!   `enc`, the ciphertexts at the RFC's sequence numbers (which pins the key and base nonce
//!   the key schedule derived) and the exports (which pin the exporter secret).
//! - The X-Wing HPKE vector of draft-ietf-hpke-pq (`vectors/hpke-pq-xwing.json`), and the
//!   X-Wing KEM vectors of draft-connolly-cfrg-xwing-kem (`vectors/xwing-kem.json`).
//! - Cross-tests: for every suite, each backend seals to and opens from the other, and both
//!   export the same secrets; the response key schedule and AEADs agree byte for byte.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;

use serde::Deserialize;
use std::format;

use super::{Backend, SecretKey, aead_open, aead_seal, hkdf_sha256_expand, hkdf_sha256_extract};
use crate::error::Error;
use crate::suite::{Aead, Kdf, Kem, Suite, SymmetricSuite};

/// An RNG that replays fixed bytes; it panics when asked for more than it holds.
struct ReplayRng(Vec<u8>);

impl rand_core::TryRng for ReplayRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("HPKE only asks for bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("HPKE only asks for bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "test RNG exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for ReplayRng {}

fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn hex_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    hex::decode(text).map_err(serde::de::Error::custom)
}

fn read_vectors<T: serde::de::DeserializeOwned>(file: &str) -> Vec<T> {
    #[derive(Deserialize)]
    struct File<T> {
        vectors: Vec<T>,
    }
    let path = format!("{}/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<File<T>>(&text).unwrap_or_else(|e| panic!("{path}: {e}")).vectors
}

#[derive(Deserialize)]
struct HpkeVector {
    mode: u8,
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    #[serde(deserialize_with = "hex_bytes")]
    info: Vec<u8>,
    #[serde(rename = "ikmR", deserialize_with = "hex_bytes")]
    ikm_r: Vec<u8>,
    #[serde(rename = "ikmE", deserialize_with = "hex_bytes")]
    ikm_e: Vec<u8>,
    #[serde(rename = "skRm", deserialize_with = "hex_bytes")]
    sk_r: Vec<u8>,
    #[serde(rename = "pkRm", deserialize_with = "hex_bytes")]
    pk_r: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    enc: Vec<u8>,
    encryptions: Vec<Encryption>,
    exports: Vec<Export>,
}

#[derive(Deserialize)]
struct Encryption {
    /// Absent in the draft-ietf-hpke-pq file, whose encryptions are consecutive from 0.
    seq: Option<u64>,
    #[serde(deserialize_with = "hex_bytes")]
    aad: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    pt: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    ct: Vec<u8>,
}

#[derive(Deserialize)]
struct Export {
    #[serde(deserialize_with = "hex_bytes")]
    exporter_context: Vec<u8>,
    #[serde(rename = "L")]
    len: usize,
    #[serde(deserialize_with = "hex_bytes")]
    exported_value: Vec<u8>,
}

impl HpkeVector {
    fn suite(&self) -> Suite {
        assert_eq!(self.mode, 0, "base mode only");
        Suite {
            kem: Kem::from_id(self.kem_id).unwrap(),
            kdf: Kdf::from_id(self.kdf_id).unwrap(),
            aead: Aead::from_id(self.aead_id).unwrap(),
        }
    }

    /// The encryptions by sequence number.
    fn numbered(&self) -> Vec<(u64, &Encryption)> {
        self.encryptions.iter().enumerate().map(|(i, e)| (e.seq.unwrap_or(i as u64), e)).collect()
    }
}

/// The `hpke` crate serializes X25519 private keys clamped (RFC 7748 section 5), the RFC
/// prints them unclamped; both denote the same key.
fn clamped(kem: Kem, sk: &[u8]) -> Vec<u8> {
    let mut sk = sk.to_vec();
    if kem == Kem::X25519HkdfSha256 {
        sk[0] &= 248;
        sk[31] &= 127;
        sk[31] |= 64;
    }
    sk
}

/// `DeriveKeyPair(ikmR)` and `DeserializePrivateKey(skRm)` give the vector's keys.
fn check_recipient_keys(backend: Backend, v: &HpkeVector) -> SecretKey {
    let kem = v.suite().kem;
    let (derived, pk) = SecretKey::derive(backend, kem, &v.ikm_r).unwrap();
    assert_eq!(clamped(kem, &derived.to_bytes()), clamped(kem, &v.sk_r), "{backend:?} DeriveKeyPair: skRm");
    assert_eq!(pk, v.pk_r, "{backend:?} DeriveKeyPair: pkRm");
    let (imported, pk) = SecretKey::from_bytes(backend, kem, &v.sk_r).unwrap();
    assert_eq!(pk, v.pk_r, "{backend:?} pk(skRm)");
    assert_eq!(imported.backend(), backend);
    imported
}

/// Opens every listed ciphertext at its sequence number; `filler` supplies ciphertexts for
/// the numbers in between (a failed open does not advance the sequence).
fn check_recipient(backend: Backend, v: &HpkeVector, key: &SecretKey, filler: &[Vec<u8>]) {
    let suite = v.suite();
    let mut ctx = super::setup_receiver(suite, key, &v.enc, &v.info).unwrap();
    let mut next = 0;
    for (seq, e) in v.numbered() {
        while next < seq {
            ctx.open(&filler[next as usize], b"filler").unwrap();
            next += 1;
        }
        assert_eq!(ctx.open(&e.ct, &e.aad).unwrap(), e.pt, "{backend:?} {suite:?} open at seq {seq}");
        next += 1;
    }
    for x in &v.exports {
        let mut out = vec![0u8; x.len];
        ctx.export(&x.exporter_context, &mut out).unwrap();
        assert_eq!(out, x.exported_value, "{backend:?} {suite:?} export");
    }
}

/// Seals the vector's plaintexts at their sequence numbers from `enc` produced with `ikmE`;
/// returns the ciphertexts of every sequence number up to the last listed one.
fn check_sender(backend: Backend, v: &HpkeVector) -> Vec<Vec<u8>> {
    let suite = v.suite();
    let (enc, mut ctx) =
        super::setup_sender(backend, suite, &v.pk_r, &v.info, &mut ReplayRng(v.ikm_e.clone())).unwrap();
    assert_eq!(enc, v.enc, "{backend:?} {suite:?} enc");
    let mut all = Vec::new();
    for (seq, e) in v.numbered() {
        while (all.len() as u64) < seq {
            all.push(ctx.seal(b"filler plaintext", b"filler").unwrap());
        }
        let ct = ctx.seal(&e.pt, &e.aad).unwrap();
        assert_eq!(ct, e.ct, "{backend:?} {suite:?} seal at seq {seq}");
        all.push(ct);
    }
    for x in &v.exports {
        let mut out = vec![0u8; x.len];
        ctx.export(&x.exporter_context, &mut out).unwrap();
        assert_eq!(out, x.exported_value, "{backend:?} {suite:?} export (sender)");
    }
    all
}

#[test]
fn rfc9180_vectors_for_every_suite_and_backend() {
    let vectors: Vec<HpkeVector> = read_vectors("rfc9180-x25519-hkdf-sha256.json");
    let suites: Vec<SymmetricSuite> =
        vectors.iter().map(|v| SymmetricSuite::new(v.suite().kdf, v.suite().aead)).collect();
    assert_eq!(suites, SymmetricSuite::ALL, "a vector for every symmetric suite offered");
    for &backend in Backend::ALL {
        for v in &vectors {
            let key = check_recipient_keys(backend, v);
            let filler = check_sender(backend, v);
            check_recipient(backend, v, &key, &filler);
        }
    }
}

#[test]
fn hpke_pq_xwing_vector_for_every_backend() {
    let vectors: Vec<HpkeVector> = read_vectors("hpke-pq-xwing.json");
    assert_eq!(vectors.len(), 1);
    let v = &vectors[0];
    assert_eq!(v.suite().kem, Kem::XWing);
    for &backend in Backend::ALL {
        let key = check_recipient_keys(backend, v);
        check_recipient(backend, v, &key, &[]);
    }
    // The `hpke` crate encapsulates with caller-supplied randomness, so it reproduces `enc`
    // and every ciphertext.
    check_sender(Backend::RustHpke, v);
}

/// aws-lc-rs encapsulates ML-KEM-768 with its own randomness, so its `enc` cannot match the
/// vector's; its X25519 half can, and the `hpke` crate must open what it sealed.
#[cfg(feature = "aws-lc")]
#[test]
fn hpke_pq_xwing_vector_aws_lc_sender() {
    let vectors: Vec<HpkeVector> = read_vectors("hpke-pq-xwing.json");
    let v = &vectors[0];
    let suite = v.suite();
    let x25519_randomness = v.ikm_e[32..].to_vec();
    let (enc, mut ctx) =
        super::setup_sender(Backend::AwsLc, suite, &v.pk_r, &v.info, &mut ReplayRng(x25519_randomness)).unwrap();
    assert_eq!(enc.len(), Kem::XWing.enc_len());
    assert_eq!(enc[1088..], v.enc[1088..], "ct_X from the vector's X25519 ephemeral key");
    let (key, _) = SecretKey::from_bytes(Backend::RustHpke, Kem::XWing, &v.sk_r).unwrap();
    let mut receiver = super::setup_receiver(suite, &key, &enc, &v.info).unwrap();
    for e in &v.encryptions {
        let ct = ctx.seal(&e.pt, &e.aad).unwrap();
        assert_eq!(receiver.open(&ct, &e.aad).unwrap(), e.pt);
    }
}

#[derive(Deserialize)]
struct XWingVector {
    #[serde(deserialize_with = "hex_bytes")]
    seed: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    eseed: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    ss: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    sk: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    pk: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    ct: Vec<u8>,
}

/// The `hpke` crate's X-Wing (the `x-wing` crate): key generation from the seed,
/// encapsulation with the vector's randomness, decapsulation.
#[test]
fn xwing_kem_vectors_hpke_crate() {
    use hpke::kem::XWing;
    use hpke::{Deserializable, Kem as _, Serializable};
    let vectors: Vec<XWingVector> = read_vectors("xwing-kem.json");
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        assert_eq!(v.sk, v.seed, "the private key is the seed the generator drew");
        let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(&v.sk).unwrap();
        let pk = XWing::sk_to_pk(&sk);
        assert_eq!(pk.to_bytes().to_vec(), v.pk);
        let (ss, ct) = XWing::encap_with_rng(&pk, None, &mut ReplayRng(v.eseed.clone())).unwrap();
        assert_eq!((ct.to_bytes().to_vec(), ss.0.to_vec()), (v.ct.clone(), v.ss.clone()));
        let ct = <XWing as hpke::Kem>::EncappedKey::from_bytes(&v.ct).unwrap();
        assert_eq!(XWing::decap(&sk, None, &ct).unwrap().0.to_vec(), v.ss);
    }
}

/// The aws-lc-rs X-Wing: key expansion from the seed, decapsulation of the vector's
/// ciphertext, and encapsulation with the vector's X25519 randomness (ML-KEM's comes from
/// aws-lc), which the `x-wing` crate must decapsulate to the same secret.
#[cfg(feature = "aws-lc")]
#[test]
fn xwing_kem_vectors_aws_lc() {
    use super::aws_lc::xwing_kem::{DecapsulationKey, encapsulate_with_x25519_ephemeral};
    use hpke::kem::XWing;
    use hpke::{Deserializable, Kem as _};
    let vectors: Vec<XWingVector> = read_vectors("xwing-kem.json");
    for v in vectors {
        let key = DecapsulationKey::from_seed(&v.sk).unwrap();
        assert_eq!(key.public_key(), &v.pk[..]);
        assert_eq!(&key.seed()[..], &v.sk[..]);
        assert_eq!(&key.decapsulate(&v.ct).unwrap()[..], &v.ss[..]);

        let x25519_ephemeral: [u8; 32] = v.eseed[32..].try_into().unwrap();
        let (ss, ct) = encapsulate_with_x25519_ephemeral(&v.pk, &x25519_ephemeral).unwrap();
        assert_eq!(ct[1088..], v.ct[1088..], "ct_X");
        assert_eq!(&key.decapsulate(&ct).unwrap()[..], &ss[..]);
        let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(&v.sk).unwrap();
        let ct = <XWing as hpke::Kem>::EncappedKey::from_bytes(&ct).unwrap();
        assert_eq!(&XWing::decap(&sk, None, &ct).unwrap().0[..], &ss[..], "x-wing crate decapsulates");

        // A wrong length is refused, a changed ciphertext gives another secret (implicit
        // rejection), never a panic.
        assert_eq!(key.decapsulate(&v.ct[..1119]).unwrap_err(), Error::Decrypt);
        let mut changed = v.ct.clone();
        changed[5] ^= 1;
        assert_ne!(&key.decapsulate(&changed).unwrap()[..], &v.ss[..]);
    }
    assert_eq!(DecapsulationKey::from_seed(&[0; 31]).err(), Some(Error::InvalidPrivateKey));
}

fn every_suite() -> impl Iterator<Item = Suite> {
    Kem::ALL.into_iter().flat_map(|kem| SymmetricSuite::ALL.map(|s| Suite { kem, kdf: s.kdf, aead: s.aead }))
}

/// For every suite and every ordered pair of backends: the sender's messages open on the
/// recipient, in order and with their AAD, and both export the same secrets.
#[test]
fn backends_interoperate_for_every_suite() {
    let mut rng = os_rng();
    for suite in every_suite() {
        for &sender in Backend::ALL {
            for &recipient in Backend::ALL {
                let mut ikm = [0u8; 32];
                rand_core::Rng::fill_bytes(&mut rng, &mut ikm);
                let (key, pk) = SecretKey::derive(recipient, suite.kem, &ikm).unwrap();
                let info = b"cross-test info";
                let (enc, mut ctx_s) = super::setup_sender(sender, suite, &pk, info, &mut rng).unwrap();
                assert_eq!(enc.len(), suite.kem.enc_len());
                let mut ctx_r = super::setup_receiver(suite, &key, &enc, info).unwrap();
                for i in 0..4u8 {
                    let pt = vec![i; 100 * usize::from(i)];
                    let aad = [i; 3];
                    let ct = ctx_s.seal(&pt, &aad).unwrap();
                    assert_eq!(ct.len(), pt.len() + suite.aead.tag_len());
                    assert_eq!(ctx_r.open(&ct, &aad).unwrap(), pt, "{sender:?} -> {recipient:?} {suite:?}");
                }
                for (context, len) in [(&b""[..], 32), (b"message/bhttp response", 16), (b"x", 100)] {
                    let (mut a, mut b) = (vec![0u8; len], vec![1u8; len]);
                    ctx_s.export(context, &mut a).unwrap();
                    ctx_r.export(context, &mut b).unwrap();
                    assert_eq!(a, b, "{sender:?} -> {recipient:?} {suite:?} export");
                }
                // A ciphertext replayed at the next sequence number, or with other AAD, fails.
                let ct = ctx_s.seal(b"once", b"").unwrap();
                assert_eq!(ctx_r.open(&ct, b"other").unwrap_err(), Error::Decrypt);
                assert_eq!(ctx_r.open(&ct, b"").unwrap(), b"once");
                assert_eq!(ctx_r.open(&ct, b"").unwrap_err(), Error::Decrypt);
            }
        }
    }
}

/// Given the same randomness, both backends encapsulate DHKEM(X25519) to the same bytes.
#[test]
fn backends_produce_identical_x25519_requests() {
    let (_, pk) = SecretKey::derive(Backend::RustHpke, Kem::X25519HkdfSha256, &[9; 32]).unwrap();
    for s in SymmetricSuite::ALL {
        let suite = Suite { kem: Kem::X25519HkdfSha256, kdf: s.kdf, aead: s.aead };
        let outputs: Vec<(Vec<u8>, Vec<u8>)> = Backend::ALL
            .iter()
            .map(|&b| {
                let (enc, mut ctx) = super::setup_sender(b, suite, &pk, b"info", &mut ReplayRng(vec![3; 32])).unwrap();
                (enc, ctx.seal(b"same plaintext", b"aad").unwrap())
            })
            .collect();
        assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{suite:?}");
    }
}

/// Keys, encapsulated keys and public keys of the wrong shape are errors, never panics.
#[test]
fn malformed_keys_and_encapsulations_are_refused() {
    let mut rng = os_rng();
    for &backend in Backend::ALL {
        for kem in Kem::ALL {
            let suite = Suite { kem, kdf: Kdf::HkdfSha256, aead: Aead::Aes128Gcm };
            assert_eq!(SecretKey::from_bytes(backend, kem, &[1; 31]).err(), Some(Error::InvalidPrivateKey));
            let (key, pk) = SecretKey::derive(backend, kem, &[5; 32]).unwrap();
            for bad in [&[][..], &pk[1..], &[0u8; 33][..]] {
                assert!(super::setup_sender(backend, suite, bad, b"", &mut rng).is_err(), "{backend:?} {kem:?}");
            }
            for len in [0, 1, kem.enc_len() - 1, kem.enc_len() + 1] {
                let result = super::setup_receiver(suite, &key, &vec![7; len], b"");
                assert_eq!(result.err().map(|_| ()), Some(()), "{backend:?} {kem:?} enc of {len} bytes");
            }
            // A key of the other KEM.
            let other = if kem == Kem::XWing { Kem::X25519HkdfSha256 } else { Kem::XWing };
            let (other_key, _) = SecretKey::derive(backend, other, &[5; 32]).unwrap();
            assert!(super::setup_receiver(suite, &other_key, &vec![7; kem.enc_len()], b"").is_err());
        }
        // X25519: a low-order point as `enc` gives an all-zero DH result, which RFC 9180
        // section 7.1.4 requires refusing.
        let suite = Suite { kem: Kem::X25519HkdfSha256, kdf: Kdf::HkdfSha256, aead: Aead::Aes128Gcm };
        let (key, _) = SecretKey::derive(backend, Kem::X25519HkdfSha256, &[5; 32]).unwrap();
        assert!(super::setup_receiver(suite, &key, &[0; 32], b"").is_err(), "{backend:?}");
    }
}

/// The OHTTP response key schedule's primitives agree across backends.
#[test]
fn response_primitives_agree_across_backends() {
    let mut rng = os_rng();
    let mut ikm = [0u8; 16];
    let mut salt = [0u8; 1152];
    rand_core::Rng::fill_bytes(&mut rng, &mut ikm);
    rand_core::Rng::fill_bytes(&mut rng, &mut salt);
    for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
        let results: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Backend::ALL
            .iter()
            .map(|&b| {
                let prk = hkdf_sha256_extract(b, &salt, &ikm);
                let mut key = vec![0u8; aead.key_len()];
                hkdf_sha256_expand(b, &prk, b"key", &mut key).unwrap();
                let mut nonce = vec![0u8; aead.nonce_len()];
                hkdf_sha256_expand(b, &prk, b"nonce", &mut nonce).unwrap();
                let ct = aead_seal(b, aead, &key, &nonce, b"response body", &[]).unwrap();
                for &other in Backend::ALL {
                    assert_eq!(aead_open(other, aead, &key, &nonce, &ct, &[]).unwrap(), b"response body");
                    let mut bad = ct.clone();
                    bad[0] ^= 1;
                    assert_eq!(aead_open(other, aead, &key, &nonce, &bad, &[]).unwrap_err(), Error::Decrypt);
                }
                // The AAD of a chunked response's final chunk binds on every backend.
                let last = aead_seal(b, aead, &key, &nonce, b"", b"final").unwrap();
                for &other in Backend::ALL {
                    assert_eq!(aead_open(other, aead, &key, &nonce, &last, b"final").unwrap(), b"");
                    assert_eq!(aead_open(other, aead, &key, &nonce, &last, &[]).unwrap_err(), Error::Decrypt);
                }
                (prk.to_vec(), key, ct)
            })
            .collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]), "{aead:?}");
    }
}

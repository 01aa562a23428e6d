//! HPKE base mode on the `hpke` crate, dispatched over the algorithms of [`crate::suite`].
//!
//! The `hpke` crate is generic over the suite at compile time; OHTTP picks the suite at
//! run time from the request header. The enums below hold one statically typed context
//! per supported KEM and AEAD, so each request pays one `match` and no allocation for
//! dispatch. This is the portable backend: pure Rust, and the one the browser client uses.
//!
//! Two costs of the `hpke` crate's API stay with this backend: `setup_receiver` recomputes
//! the recipient's X25519 public key on every call, and its X-Wing private key is the seed,
//! which the `x-wing` crate expands (SHAKE256 and ML-KEM key generation) on every
//! decapsulation. The aws-lc-rs backend (`aws_lc.rs`) keeps both precomputed.

use alloc::boxed::Box;
use alloc::vec::Vec;

use hpke::aead::{AeadCtxR, AeadCtxS, AeadTag, AesGcm128, AesGcm256, ChaCha20Poly1305};
use hpke::inout::InOutBuf;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{HpkeBackend, symmetric};
use crate::error::{Error, Result};
use crate::suite::{Aead, Kdf, Kem, Suite};

type X25519Sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
type XWingSk = <XWing as hpke::Kem>::PrivateKey;

/// The `hpke`-crate backend.
pub(crate) struct RustHpke;

/// A KEM private key. The `hpke` crate's key types zeroize themselves on drop. X-Wing's
/// holds its expanded public key (1.6 KB), hence the box.
#[derive(Clone)]
pub(crate) enum SecretKey {
    X25519HkdfSha256(X25519Sk),
    XWing(Box<XWingSk>),
}

/// Declares the per-suite context enums and the functions that create them in one place,
/// so the list of suites cannot drift between sender and receiver.
macro_rules! contexts {
    ($($variant:ident => ($kem:ident: $kem_ty:ty, $aead:ident: $aead_ty:ty)),* $(,)?) => {
        /// A sender context (client side of a request).
        pub(crate) enum SenderContext {
            $($variant(AeadCtxS<$aead_ty, HkdfSha256, $kem_ty>),)*
        }

        /// A receiver context (gateway side of a request).
        pub(crate) enum ReceiverContext {
            $($variant(AeadCtxR<$aead_ty, HkdfSha256, $kem_ty>),)*
        }

        fn setup_sender(
            suite: Suite,
            public_key: &[u8],
            info: &[u8],
            rng: &mut impl CryptoRng,
        ) -> Result<(Vec<u8>, SenderContext)> {
            let Kdf::HkdfSha256 = suite.kdf;
            match (suite.kem, suite.aead) {
                $((Kem::$kem, Aead::$aead) => {
                    let pk = <$kem_ty as hpke::Kem>::PublicKey::from_bytes(public_key)
                        .map_err(|_| Error::InvalidPublicKey)?;
                    let (enc, ctx) = hpke::setup_sender_with_rng::<$aead_ty, HkdfSha256, $kem_ty>(
                        &OpModeS::Base, &pk, info, rng,
                    ).map_err(|_| Error::Encrypt)?;
                    Ok((enc.to_bytes().to_vec(), SenderContext::$variant(ctx)))
                })*
            }
        }

        fn setup_receiver(suite: Suite, secret: &SecretKey, enc: &[u8], info: &[u8]) -> Result<ReceiverContext> {
            let Kdf::HkdfSha256 = suite.kdf;
            match (suite.kem, suite.aead, secret) {
                $((Kem::$kem, Aead::$aead, SecretKey::$kem(sk)) => {
                    let enc = <$kem_ty as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| Error::Decrypt)?;
                    let ctx = hpke::setup_receiver::<$aead_ty, HkdfSha256, $kem_ty>(&OpModeR::Base, sk, &enc, info)
                        .map_err(|_| Error::Decrypt)?;
                    Ok(ReceiverContext::$variant(ctx))
                })*
                // A key of one KEM asked to decapsulate for another: the caller checks the
                // key configuration first, so this is only reachable through a bug.
                _ => Err(Error::Decrypt),
            }
        }

        fn seal_in_place(ctx: &mut SenderContext, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()> {
            let plaintext = buf.get_mut(start..).ok_or(Error::Encrypt)?;
            let tag = match ctx {
                $(SenderContext::$variant(ctx) => ctx
                    .seal_inout_detached(InOutBuf::from(plaintext), aad)
                    .map_err(|_| Error::Encrypt)?
                    .to_bytes()
                    .to_vec(),)*
            };
            buf.extend_from_slice(&tag);
            Ok(())
        }

        fn sender_export(ctx: &SenderContext, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
            match ctx {
                $(SenderContext::$variant(ctx) => ctx.export(exporter_context, out).map_err(|_| Error::Encrypt),)*
            }
        }

        fn open_in_place(ctx: &mut ReceiverContext, buf: &mut [u8], aad: &[u8]) -> Result<usize> {
            let len = buf.len().checked_sub(super::TAG_LEN).ok_or(Error::Decrypt)?;
            let (ciphertext, tag) = buf.split_at_mut(len);
            match ctx {
                $(ReceiverContext::$variant(ctx) => {
                    let tag = AeadTag::<$aead_ty>::from_bytes(tag).map_err(|_| Error::Decrypt)?;
                    ctx.open_inout_detached(InOutBuf::from(ciphertext), aad, &tag).map_err(|_| Error::Decrypt)?;
                })*
            }
            Ok(len)
        }

        fn receiver_export(ctx: &ReceiverContext, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
            match ctx {
                $(ReceiverContext::$variant(ctx) => ctx.export(exporter_context, out).map_err(|_| Error::Decrypt),)*
            }
        }
    };
}

contexts! {
    X25519Aes128Gcm => (X25519HkdfSha256: X25519HkdfSha256, Aes128Gcm: AesGcm128),
    X25519Aes256Gcm => (X25519HkdfSha256: X25519HkdfSha256, Aes256Gcm: AesGcm256),
    X25519ChaCha20Poly1305 => (X25519HkdfSha256: X25519HkdfSha256, ChaCha20Poly1305: ChaCha20Poly1305),
    XWingAes128Gcm => (XWing: XWing, Aes128Gcm: AesGcm128),
    XWingAes256Gcm => (XWing: XWing, Aes256Gcm: AesGcm256),
    XWingChaCha20Poly1305 => (XWing: XWing, ChaCha20Poly1305: ChaCha20Poly1305),
}

impl HpkeBackend for RustHpke {
    type SecretKey = SecretKey;
    type SenderContext = SenderContext;
    type ReceiverContext = ReceiverContext;

    fn derive_key_pair(kem: Kem, ikm: &[u8]) -> Result<(SecretKey, Vec<u8>)> {
        Ok(match kem {
            Kem::X25519HkdfSha256 => {
                let (sk, pk) = X25519HkdfSha256::derive_keypair(ikm);
                (SecretKey::X25519HkdfSha256(sk), pk.to_bytes().to_vec())
            }
            Kem::XWing => {
                let (sk, pk) = XWing::derive_keypair(ikm);
                (SecretKey::XWing(Box::new(sk)), pk.to_bytes().to_vec())
            }
        })
    }

    fn import_private_key(kem: Kem, bytes: &[u8]) -> Result<(SecretKey, Vec<u8>)> {
        Ok(match kem {
            Kem::X25519HkdfSha256 => {
                let sk = X25519Sk::from_bytes(bytes).map_err(|_| Error::InvalidPrivateKey)?;
                let pk = X25519HkdfSha256::sk_to_pk(&sk);
                (SecretKey::X25519HkdfSha256(sk), pk.to_bytes().to_vec())
            }
            Kem::XWing => {
                let sk = XWingSk::from_bytes(bytes).map_err(|_| Error::InvalidPrivateKey)?;
                let pk = XWing::sk_to_pk(&sk);
                (SecretKey::XWing(Box::new(sk)), pk.to_bytes().to_vec())
            }
        })
    }

    fn private_key_bytes(key: &SecretKey) -> Zeroizing<Vec<u8>> {
        match key {
            SecretKey::X25519HkdfSha256(sk) => Zeroizing::new(sk.to_bytes().to_vec()),
            SecretKey::XWing(sk) => Zeroizing::new(sk.to_bytes().to_vec()),
        }
    }

    fn setup_sender(
        suite: Suite,
        public_key: &[u8],
        info: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, SenderContext)> {
        setup_sender(suite, public_key, info, rng)
    }

    fn setup_receiver(suite: Suite, key: &SecretKey, enc: &[u8], info: &[u8]) -> Result<ReceiverContext> {
        setup_receiver(suite, key, enc, info)
    }

    fn seal_in_place(ctx: &mut SenderContext, buf: &mut Vec<u8>, start: usize, aad: &[u8]) -> Result<()> {
        seal_in_place(ctx, buf, start, aad)
    }

    fn open_in_place(ctx: &mut ReceiverContext, buf: &mut [u8], aad: &[u8]) -> Result<usize> {
        open_in_place(ctx, buf, aad)
    }

    fn sender_export(ctx: &SenderContext, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        sender_export(ctx, exporter_context, out)
    }

    fn receiver_export(ctx: &ReceiverContext, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        receiver_export(ctx, exporter_context, out)
    }

    fn hkdf_sha256_extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
        symmetric::hkdf_sha256_extract(salt, ikm)
    }

    fn hkdf_sha256_expand(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
        symmetric::hkdf_sha256_expand(prk, info, out)
    }

    fn aead_seal_in_place(
        aead: Aead,
        key: &[u8],
        nonce: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
        aad: &[u8],
    ) -> Result<()> {
        symmetric::aead_seal_in_place(aead, key, nonce, buf, start, aad)
    }

    fn aead_open_in_place(aead: Aead, key: &[u8], nonce: &[u8], buf: &mut [u8], aad: &[u8]) -> Result<usize> {
        symmetric::aead_open_in_place(aead, key, nonce, buf, aad)
    }
}

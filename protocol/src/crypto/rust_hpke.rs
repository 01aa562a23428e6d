//! HPKE base mode on the `hpke` crate, dispatched over the algorithms of [`crate::suite`].
//!
//! The `hpke` crate is generic over the suite at compile time; OHTTP picks the suite at
//! run time from the request header. The enums below hold one statically typed context
//! per supported AEAD, so each request pays one `match` and no allocation for dispatch.

use alloc::vec::Vec;

use hpke::aead::{AeadCtxR, AeadCtxS, AesGcm128, AesGcm256, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::suite::{Aead, Kdf, Kem, Suite};

type X25519Sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
type X25519Pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey;
type X25519Enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey;

/// A KEM private key. The `hpke` crate's key types zeroize themselves on drop.
#[derive(Clone)]
pub(crate) enum SecretKey {
    X25519(X25519Sk),
}

impl SecretKey {
    /// Derives a key pair from input keying material (RFC 9180 `DeriveKeyPair`).
    pub(crate) fn derive(kem: Kem, ikm: &[u8]) -> (Self, Vec<u8>) {
        match kem {
            Kem::X25519HkdfSha256 => {
                let (sk, pk) = X25519HkdfSha256::derive_keypair(ikm);
                (SecretKey::X25519(sk), pk.to_bytes().to_vec())
            }
        }
    }

    /// Imports an encoded private key and computes its public key.
    pub(crate) fn from_bytes(kem: Kem, bytes: &[u8]) -> Result<(Self, Vec<u8>)> {
        match kem {
            Kem::X25519HkdfSha256 => {
                let sk = X25519Sk::from_bytes(bytes).map_err(|_| Error::InvalidPrivateKey)?;
                let pk = X25519HkdfSha256::sk_to_pk(&sk);
                Ok((SecretKey::X25519(sk), pk.to_bytes().to_vec()))
            }
        }
    }

    /// The encoded private key, for sealing at rest.
    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            SecretKey::X25519(sk) => Zeroizing::new(sk.to_bytes().to_vec()),
        }
    }
}

/// Declares the per-AEAD context enums and their dispatching methods in one place, so the
/// list of AEADs cannot drift between sender and receiver.
macro_rules! contexts {
    ($($variant:ident => $aead:ty),* $(,)?) => {
        /// A sender context (client side of a request).
        pub(crate) enum SenderContext {
            $($variant(AeadCtxS<$aead, HkdfSha256, X25519HkdfSha256>),)*
        }

        /// A receiver context (gateway side of a request).
        pub(crate) enum ReceiverContext {
            $($variant(AeadCtxR<$aead, HkdfSha256, X25519HkdfSha256>),)*
        }

        /// Runs `SetupBaseS` (RFC 9180 section 5.1.1) and returns `enc` and the context.
        pub(crate) fn setup_sender(
            suite: Suite,
            public_key: &[u8],
            info: &[u8],
            rng: &mut impl CryptoRng,
        ) -> Result<(Vec<u8>, SenderContext)> {
            let Kdf::HkdfSha256 = suite.kdf;
            match suite.kem {
                Kem::X25519HkdfSha256 => {
                    let pk = X25519Pk::from_bytes(public_key).map_err(|_| Error::InvalidPublicKey)?;
                    match suite.aead {
                        $(Aead::$variant => {
                            let (enc, ctx) = hpke::setup_sender_with_rng::<$aead, HkdfSha256, X25519HkdfSha256>(
                                &OpModeS::Base, &pk, info, rng,
                            ).map_err(|_| Error::Encrypt)?;
                            Ok((enc.to_bytes().to_vec(), SenderContext::$variant(ctx)))
                        })*
                    }
                }
            }
        }

        /// Runs `SetupBaseR` (RFC 9180 section 5.1.1).
        pub(crate) fn setup_receiver(
            suite: Suite,
            secret: &SecretKey,
            enc: &[u8],
            info: &[u8],
        ) -> Result<ReceiverContext> {
            let Kdf::HkdfSha256 = suite.kdf;
            match (suite.kem, secret) {
                (Kem::X25519HkdfSha256, SecretKey::X25519(sk)) => {
                    let enc = X25519Enc::from_bytes(enc).map_err(|_| Error::Decrypt)?;
                    match suite.aead {
                        $(Aead::$variant => {
                            let ctx = hpke::setup_receiver::<$aead, HkdfSha256, X25519HkdfSha256>(
                                &OpModeR::Base, sk, &enc, info,
                            ).map_err(|_| Error::Decrypt)?;
                            Ok(ReceiverContext::$variant(ctx))
                        })*
                    }
                }
            }
        }

        impl SenderContext {
            /// Seals one message; the context is single-use in OHTTP, so it is consumed.
            pub(crate) fn seal(mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
                match &mut self {
                    $(SenderContext::$variant(ctx) => ctx.seal(plaintext, aad).map_err(|_| Error::Encrypt),)*
                }
            }

            /// HPKE `Export` (RFC 9180 section 5.3).
            pub(crate) fn export(&self, label: &[u8], out: &mut [u8]) -> Result<()> {
                match self {
                    $(SenderContext::$variant(ctx) => ctx.export(label, out).map_err(|_| Error::Encrypt),)*
                }
            }
        }

        impl ReceiverContext {
            /// Opens one message.
            pub(crate) fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
                match self {
                    $(ReceiverContext::$variant(ctx) => ctx.open(ciphertext, aad).map_err(|_| Error::Decrypt),)*
                }
            }

            /// HPKE `Export` (RFC 9180 section 5.3).
            pub(crate) fn export(&self, label: &[u8], out: &mut [u8]) -> Result<()> {
                match self {
                    $(ReceiverContext::$variant(ctx) => ctx.export(label, out).map_err(|_| Error::Decrypt),)*
                }
            }
        }
    };
}

contexts! {
    Aes128Gcm => AesGcm128,
    Aes256Gcm => AesGcm256,
    ChaCha20Poly1305 => ChaCha20Poly1305,
}

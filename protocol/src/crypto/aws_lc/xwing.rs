//! X-Wing (draft-connolly-cfrg-xwing-kem, the version of the `x-wing` 0.1 crate) on
//! aws-lc-rs: ML-KEM-768 encapsulation and decapsulation (`aws_lc_rs::kem`), X25519
//! (`aws_lc_rs::agreement`) and the SHA3-256 combiner (`aws_lc_rs::digest`).
//!
//! aws-lc-rs lacks two steps, which come from the crates the `hpke` crate already uses:
//! expanding the 32-byte private seed (SHAKE256, the `shake` crate, then ML-KEM-768
//! `KeyGen_internal(d, z)`, the `ml-kem` crate) and HPKE's `DeriveKeyPair` for X-Wing
//! (SHAKE256 `LabeledDerive` of draft-ietf-hpke-pq, from the `hpke` crate). Both run once per
//! key, when it is loaded; the expanded key is kept, so a decapsulation is one ML-KEM-768
//! decapsulation, one X25519 agreement and one SHA3-256.
//!
//! One deliberate difference from the `x-wing` crate: aws-lc refuses an X25519 agreement
//! whose result is all zeros (a low-order `ct_X`), so such a ciphertext is refused here where
//! `x_wing::DecapsulationKey` accepts it. Honest senders never produce one.

use alloc::vec::Vec;

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::digest;
use aws_lc_rs::kem::{self as lc_kem, ML_KEM_768};
use ml_kem::{KeyExport, ml_kem_768};
use rand_core::CryptoRng;
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// The private key: a seed.
const SEED_LEN: usize = 32;
/// An ML-KEM-768 encapsulation key.
const ML_KEM_PUBLIC_KEY_LEN: usize = 1184;
/// An ML-KEM-768 ciphertext.
const ML_KEM_CIPHERTEXT_LEN: usize = 1088;
/// X25519 keys and shared secrets.
const X25519_LEN: usize = 32;
/// X-Wing's shared secret.
const SHARED_SECRET_LEN: usize = 32;
/// The combiner's domain separator, `XWingLabel`.
const LABEL: &[u8] = br"\.//^\";

/// An X-Wing private key with both halves expanded and parsed.
pub(crate) struct DecapsulationKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    ml_kem: lc_kem::DecapsulationKey,
    x25519: agreement::PrivateKey,
    /// `pk_M || pk_X`.
    public_key: Vec<u8>,
    /// `pk_X`, which the combiner hashes.
    x25519_public: [u8; X25519_LEN],
}

impl DecapsulationKey {
    /// `expandDecapsulationKey(sk)`: `SHAKE256(sk, 96) = d || z || sk_X`, ML-KEM-768 from
    /// `(d, z)`, X25519 from `sk_X`.
    pub(crate) fn from_seed(seed: &[u8]) -> Result<Self> {
        let seed: [u8; SEED_LEN] = seed.try_into().map_err(|_| Error::InvalidPrivateKey)?;
        let seed = Zeroizing::new(seed);
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut xof = Shake256::default();
        xof.update(&*seed);
        xof.finalize_xof().read(&mut *expanded);
        let (ml_kem_seed, x25519_private) = expanded.split_at(64);

        let mut ml_kem_seed = ml_kem::Seed::try_from(ml_kem_seed).map_err(|_| Error::InvalidPrivateKey)?;
        let ml_kem_key = ml_kem_768::DecapsulationKey::from_seed(ml_kem_seed);
        ml_kem_seed.as_mut_slice().zeroize();
        // aws-lc-rs imports an ML-KEM private key only in FIPS 203's expanded encoding.
        #[allow(deprecated)]
        let mut expanded_key = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(&ml_kem_key);
        let ml_kem = lc_kem::DecapsulationKey::new(&ML_KEM_768, &expanded_key);
        expanded_key.as_mut_slice().zeroize();
        let ml_kem = ml_kem.map_err(|_| Error::InvalidPrivateKey)?;

        let x25519 =
            agreement::PrivateKey::from_private_key(&X25519, x25519_private).map_err(|_| Error::InvalidPrivateKey)?;
        let x25519_public = x25519.compute_public_key().map_err(|_| Error::InvalidPrivateKey)?;
        let x25519_public: [u8; X25519_LEN] =
            x25519_public.as_ref().try_into().map_err(|_| Error::InvalidPrivateKey)?;

        let mut public_key = Vec::with_capacity(ML_KEM_PUBLIC_KEY_LEN + X25519_LEN);
        public_key.extend_from_slice(&ml_kem_key.encapsulation_key().to_bytes());
        public_key.extend_from_slice(&x25519_public);
        Ok(Self { seed, ml_kem, x25519, public_key, x25519_public })
    }

    /// The private key as serialized: the seed.
    pub(crate) fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    /// The encoded public key, `pk_M || pk_X`.
    pub(crate) fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// `Decapsulate(sk, ct)`; `ct = ct_M || ct_X`.
    pub(crate) fn decapsulate(&self, ciphertext: &[u8]) -> Result<Zeroizing<[u8; SHARED_SECRET_LEN]>> {
        let (ct_m, ct_x) = ciphertext.split_at_checked(ML_KEM_CIPHERTEXT_LEN).ok_or(Error::Decrypt)?;
        if ct_x.len() != X25519_LEN {
            return Err(Error::Decrypt);
        }
        // ML-KEM decapsulation never fails on a well-formed ciphertext (implicit rejection).
        let ss_m = self.ml_kem.decapsulate(lc_kem::Ciphertext::from(ct_m)).map_err(|_| Error::Decrypt)?;
        let ss_x = x25519(&self.x25519, ct_x, Error::Decrypt)?;
        Ok(combiner(ss_m.as_ref(), &*ss_x, ct_x, &self.x25519_public))
    }
}

/// `Encapsulate(pk)`: the shared secret and `ct = ct_M || ct_X`. The X25519 ephemeral key
/// comes from `rng`; ML-KEM-768's randomness from aws-lc's own generator.
pub(crate) fn encapsulate(public_key: &[u8], rng: &mut impl CryptoRng) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>)> {
    let mut ephemeral = Zeroizing::new([0u8; X25519_LEN]);
    rng.fill_bytes(&mut *ephemeral);
    encapsulate_with_x25519_ephemeral(public_key, &ephemeral)
}

/// [`encapsulate`] with a given X25519 ephemeral private key `ek_X`.
pub(crate) fn encapsulate_with_x25519_ephemeral(
    public_key: &[u8],
    ephemeral: &[u8; X25519_LEN],
) -> Result<(Zeroizing<[u8; SHARED_SECRET_LEN]>, Vec<u8>)> {
    let (pk_m, pk_x) = public_key.split_at_checked(ML_KEM_PUBLIC_KEY_LEN).ok_or(Error::InvalidPublicKey)?;
    if pk_x.len() != X25519_LEN {
        return Err(Error::InvalidPublicKey);
    }
    let ek_m = lc_kem::EncapsulationKey::new(&ML_KEM_768, pk_m).map_err(|_| Error::InvalidPublicKey)?;
    let (ct_m, ss_m) = ek_m.encapsulate().map_err(|_| Error::Encrypt)?;

    let ek_x = agreement::PrivateKey::from_private_key(&X25519, ephemeral).map_err(|_| Error::Encrypt)?;
    let ct_x = ek_x.compute_public_key().map_err(|_| Error::Encrypt)?;
    let ss_x = x25519(&ek_x, pk_x, Error::InvalidPublicKey)?;

    let shared_secret = combiner(ss_m.as_ref(), &*ss_x, ct_x.as_ref(), pk_x);
    let mut ciphertext = Vec::with_capacity(ML_KEM_CIPHERTEXT_LEN + X25519_LEN);
    ciphertext.extend_from_slice(ct_m.as_ref());
    ciphertext.extend_from_slice(ct_x.as_ref());
    Ok((shared_secret, ciphertext))
}

/// HPKE's `DeriveKeyPair(ikm)` for X-Wing (draft-ietf-hpke-pq: the seed is SHAKE256
/// `LabeledDerive(ikm, "DeriveKeyPair", "", 32)`), taken from the `hpke` crate because
/// aws-lc-rs has no SHAKE256.
pub(crate) fn derive_seed(ikm: &[u8]) -> Zeroizing<Vec<u8>> {
    use hpke::{Kem as _, Serializable as _};
    let (seed, _) = hpke::kem::XWing::derive_keypair(ikm);
    Zeroizing::new(seed.to_bytes().to_vec())
}

/// One X25519 agreement; aws-lc refuses an all-zero result.
fn x25519(private: &agreement::PrivateKey, public: &[u8], error: Error) -> Result<Zeroizing<[u8; X25519_LEN]>> {
    agreement::agree(private, UnparsedPublicKey::new(&X25519, public), error.clone(), |shared| {
        shared.try_into().map(Zeroizing::new).map_err(|_| error.clone())
    })
}

/// `SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel)`.
fn combiner(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> Zeroizing<[u8; SHARED_SECRET_LEN]> {
    let mut ctx = digest::Context::new(&digest::SHA3_256);
    for part in [ss_m, ss_x, ct_x, pk_x, LABEL] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; SHARED_SECRET_LEN]);
    for (out, byte) in out.iter_mut().zip(ctx.finish().as_ref()) {
        *out = *byte;
    }
    out
}

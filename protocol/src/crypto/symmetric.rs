//! HKDF-SHA256 and one-shot AEAD on the RustCrypto crates the `hpke` crate uses: the
//! `hpke`-crate backend's half of the OHTTP response (RFC 9458 section 4.4), which derives its
//! own key and nonce from an HPKE export rather than using the HPKE context. The aws-lc-rs
//! backend has its own in `aws_lc.rs`.

use alloc::vec::Vec;

use aead::{KeyInit, Nonce};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::suite::Aead;

/// `HKDF-Extract(salt, ikm)`, returning the pseudorandom key.
pub(crate) fn hkdf_sha256_extract(salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), ikm);
    Zeroizing::new(prk.to_vec())
}

/// `HKDF-Expand(prk, info, out.len())`.
pub(crate) fn hkdf_sha256_expand(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    let hk = Hkdf::<Sha256>::from_prk(prk).map_err(|_| Error::Encrypt)?;
    hk.expand(info, out).map_err(|_| Error::Encrypt)
}

fn seal_with<A: aead::AeadInOut + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
    aad: &[u8],
) -> Result<()> {
    let cipher = A::new_from_slice(key).map_err(|_| Error::Encrypt)?;
    let nonce = Nonce::<A>::try_from(nonce).map_err(|_| Error::Encrypt)?;
    let plaintext = buf.get_mut(start..).ok_or(Error::Encrypt)?;
    let tag = cipher.encrypt_inout_detached(&nonce, aad, plaintext.into()).map_err(|_| Error::Encrypt)?;
    buf.extend_from_slice(&tag);
    Ok(())
}

fn open_with<A: aead::AeadInOut + KeyInit>(key: &[u8], nonce: &[u8], buf: &mut [u8], aad: &[u8]) -> Result<usize> {
    let cipher = A::new_from_slice(key).map_err(|_| Error::Decrypt)?;
    let nonce = Nonce::<A>::try_from(nonce).map_err(|_| Error::Decrypt)?;
    let len = buf.len().checked_sub(super::TAG_LEN).ok_or(Error::Decrypt)?;
    let (ciphertext, tag) = buf.split_at_mut(len);
    let tag = aead::Tag::<A>::try_from(&*tag).map_err(|_| Error::Decrypt)?;
    cipher.decrypt_inout_detached(&nonce, aad, ciphertext.into(), &tag).map_err(|_| Error::Decrypt)?;
    Ok(len)
}

/// Encrypts `buf[start..]` in place, authenticates `aad` and appends the tag.
pub(crate) fn aead_seal_in_place(
    aead: Aead,
    key: &[u8],
    nonce: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
    aad: &[u8],
) -> Result<()> {
    match aead {
        Aead::Aes128Gcm => seal_with::<Aes128Gcm>(key, nonce, buf, start, aad),
        Aead::Aes256Gcm => seal_with::<Aes256Gcm>(key, nonce, buf, start, aad),
        Aead::ChaCha20Poly1305 => seal_with::<ChaCha20Poly1305>(key, nonce, buf, start, aad),
    }
}

/// Decrypts `buf` (ciphertext and tag) in place and authenticates `aad`; the plaintext's
/// length.
pub(crate) fn aead_open_in_place(aead: Aead, key: &[u8], nonce: &[u8], buf: &mut [u8], aad: &[u8]) -> Result<usize> {
    match aead {
        Aead::Aes128Gcm => open_with::<Aes128Gcm>(key, nonce, buf, aad),
        Aead::Aes256Gcm => open_with::<Aes256Gcm>(key, nonce, buf, aad),
        Aead::ChaCha20Poly1305 => open_with::<ChaCha20Poly1305>(key, nonce, buf, aad),
    }
}

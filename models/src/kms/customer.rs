//! The `customer-provided` provider: a 256-bit key handed in at seal and load time (from a
//! file or stdin) and never written anywhere by the gateway.
//!
//! The data key is wrapped with AES-256-GCM under the customer's key, with the canonical
//! encryption context as associated data. The key id recorded in the artifact is a
//! fingerprint — the first 8 bytes of SHA-256("sealgate customer key" || key), hex — so a
//! wrong key is reported as such without revealing anything usable about the right one.

use std::io::Read;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{DataKey, EncryptionContext, KeyMetadata, KeyState, KmsError, KmsProvider, WrappedKey, canonical_context};

/// Provider name in artifact headers.
pub const NAME: &str = "customer-provided";

/// A customer-provided key, held only in memory.
pub struct CustomerKey {
    key: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

impl CustomerKey {
    /// Reads the key: exactly 32 raw bytes, or 64 hex characters (surrounding whitespace
    /// ignored). `source` is a path, or `-` for stdin.
    pub fn read(source: &str) -> Result<Self, KmsError> {
        let mut raw = Zeroizing::new(Vec::new());
        let result = if source == "-" {
            std::io::stdin().lock().take(4096).read_to_end(&mut raw)
        } else {
            std::fs::File::open(source).and_then(|f| f.take(4096).read_to_end(&mut raw))
        };
        result.map_err(|e| KmsError::InvalidRequest(format!("cannot read the customer key from {source}: {e}")))?;
        Self::from_bytes(&raw)
    }

    /// Parses 32 raw bytes or 64 hex characters.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, KmsError> {
        let invalid = || KmsError::InvalidRequest("a customer key must be 32 raw bytes or 64 hex characters".into());
        let key: [u8; 32] = if raw.len() == 32 {
            raw.try_into().map_err(|_| invalid())?
        } else {
            let text = std::str::from_utf8(raw).map_err(|_| invalid())?.trim();
            let bytes = Zeroizing::new(hex::decode(text).map_err(|_| invalid())?);
            bytes.as_slice().try_into().map_err(|_| invalid())?
        };
        let key = Zeroizing::new(key);
        let mut h = Sha256::new();
        h.update(b"sealgate customer key");
        h.update(key.as_ref());
        let fingerprint = hex::encode(&h.finalize()[..8]);
        Ok(Self { key, fingerprint })
    }

    /// The key's fingerprint (the key id in artifact headers).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn aead(&self) -> Result<LessSafeKey, KmsError> {
        UnboundKey::new(&AES_256_GCM, self.key.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| KmsError::Backend("AES key".into()))
    }
}

impl KmsProvider for CustomerKey {
    fn name(&self) -> &str {
        NAME
    }

    fn wrap_data_key(&self, key_id: &str, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KmsError> {
        if !key_id.is_empty() && key_id != self.fingerprint {
            return Err(KmsError::KeyNotFound(format!(
                "{key_id} (the key supplied has fingerprint {})",
                self.fingerprint
            )));
        }
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| KmsError::Backend(format!("system RNG: {e}")))?;
        let mut buf = key.expose().to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(canonical_context(context)),
                &mut buf,
            )
            .map_err(|_| KmsError::Backend("encryption failed".into()))?;
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&buf);
        Ok(WrappedKey { provider: NAME.into(), key_id: self.fingerprint.clone(), ciphertext })
    }

    fn decrypt_data_key(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        if wrapped.key_id != self.fingerprint {
            return Err(KmsError::KeyNotFound(format!(
                "customer key {} (the key supplied has fingerprint {})",
                wrapped.key_id, self.fingerprint
            )));
        }
        let (nonce, ct) = wrapped.ciphertext.split_at_checked(12).ok_or(KmsError::Unwrap)?;
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| KmsError::Unwrap)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(canonical_context(context)),
                buf.as_mut_slice(),
            )
            .map_err(|_| KmsError::Unwrap)?;
        DataKey::from_slice(plain).map_err(|_| KmsError::Unwrap)
    }

    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        if key_id != self.fingerprint {
            return Err(KmsError::KeyNotFound(key_id.into()));
        }
        Ok(KeyMetadata { provider: NAME.into(), key_id: key_id.into(), state: KeyState::Enabled, versions: 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let key = CustomerKey::from_bytes(&[7u8; 32]).unwrap();
        let hex_key = CustomerKey::from_bytes(format!("{}\n", hex::encode([7u8; 32])).as_bytes()).unwrap();
        assert_eq!(key.fingerprint(), hex_key.fingerprint());
        let ctx: EncryptionContext = [("model".to_string(), "m".to_string())].into();
        let generated = key.generate_data_key("", &ctx).unwrap();
        assert_eq!(hex_key.decrypt_data_key(&generated.wrapped, &ctx).unwrap().expose(), generated.plaintext.expose());
        let other = CustomerKey::from_bytes(&[8u8; 32]).unwrap();
        let err = other.decrypt_data_key(&generated.wrapped, &ctx).unwrap_err();
        assert!(matches!(err, KmsError::KeyNotFound(_)));
        assert!(!err.to_string().contains(&hex::encode([8u8; 32])));
        let wrong_ctx: EncryptionContext = [("model".to_string(), "x".to_string())].into();
        assert!(matches!(key.decrypt_data_key(&generated.wrapped, &wrong_ctx), Err(KmsError::Unwrap)));
        assert!(CustomerKey::from_bytes(b"short").is_err());
    }
}

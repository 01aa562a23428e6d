//! Key management: the providers that wrap and unwrap per-artifact data keys (DEKs).
//!
//! Every sealed artifact has its own random 256-bit data key. A key-encryption key held by
//! a KMS wraps it, bound to an *encryption context* (model name, version, plaintext digest),
//! so a wrapped key copied onto another artifact does not unwrap. Providers sit behind one
//! trait, chosen by configuration, like rustls' `CryptoProvider`:
//!
//! | provider | module | key-encryption key lives in |
//! | --- | --- | --- |
//! | `local` | [`local`] | a keyring file in the data dir (the embedded default) |
//! | `aws-kms` | `aws` | AWS KMS (or any endpoint speaking its API) |
//! | `pkcs11` | `pkcs11` | an HSM token, non-extractable |
//! | `customer-provided` | [`customer`] | the operator's hands: read at load time, never stored |
//!
//! The trait is synchronous: providers are used at start-up and by CLI commands, before any
//! async runtime runs. A provider that speaks a network protocol runs its own small runtime.

pub mod aws;
pub mod customer;
pub mod local;
pub mod pkcs11;

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

/// Key-value pairs bound to a wrapped data key: unwrapping with a different context fails.
/// Sorted, so every provider serializes it the same way.
pub type EncryptionContext = BTreeMap<String, String>;

/// A plaintext 256-bit data key. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies a 32-byte slice; anything else is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KmsError> {
        let array: [u8; 32] =
            bytes.try_into().map_err(|_| KmsError::InvalidRequest("a data key must be 32 bytes".into()))?;
        Ok(Self::from_bytes(array))
    }

    /// A fresh random key from the operating system's RNG.
    pub fn generate() -> Result<Self, KmsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| KmsError::Backend(format!("system RNG: {e}")))?;
        Ok(Self(key))
    }

    /// The key bytes. The one way to reach them; callers must not copy them into
    /// long-lived or non-zeroizing storage.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A data key wrapped by one provider: what the artifact header stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The provider name, such as `local`.
    pub provider: String,
    /// The provider's key identifier (for `local`, `name` or `name/vN`; for AWS, the key
    /// ARN or id; for PKCS#11, the object label).
    pub key_id: String,
    /// The provider's ciphertext.
    pub ciphertext: Vec<u8>,
}

/// A newly generated data key, in both forms.
#[derive(Debug)]
pub struct GeneratedKey {
    /// Plaintext, for encrypting the artifact body now.
    pub plaintext: DataKey,
    /// Wrapped, for the artifact header.
    pub wrapped: WrappedKey,
}

/// The lifecycle state of a key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Refuses all operations until enabled again.
    Disabled,
    /// Refuses all operations; destroyed at `delete_after` (Unix seconds) unless cancelled.
    PendingDeletion {
        /// When the key material will be destroyed, Unix seconds.
        delete_after: u64,
    },
}

/// What a provider says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// Provider name.
    pub provider: String,
    /// Key identifier.
    pub key_id: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Versions that can still decrypt (1 for providers without versions).
    pub versions: u32,
}

/// Why a key operation failed. Texts never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No such key.
    #[error("key '{0}' not found")]
    KeyNotFound(String),
    /// The key is disabled.
    #[error("key '{0}' is disabled")]
    KeyDisabled(String),
    /// The key is scheduled for deletion.
    #[error("key '{0}' is pending deletion")]
    KeyPendingDeletion(String),
    /// Unwrapping failed: wrong key, wrong encryption context, or tampered ciphertext.
    /// Deliberately without detail.
    #[error("the data key could not be unwrapped (wrong key, wrong context, or tampered)")]
    Unwrap,
    /// The KMS could not be reached; worth retrying.
    #[error("the KMS is unavailable: {0}")]
    Unavailable(String),
    /// The request is invalid (such as a deletion window outside 7 to 30 days).
    #[error("invalid KMS request: {0}")]
    InvalidRequest(String),
    /// The artifact names a provider this gateway is not configured with.
    #[error("unknown KMS provider '{0}'")]
    UnknownProvider(String),
    /// Any other provider failure.
    #[error("KMS error: {0}")]
    Backend(String),
}

impl KmsError {
    /// True when retrying later may succeed (the KMS was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, KmsError::Unavailable(_))
    }
}

/// A key management backend.
pub trait KmsProvider: Send + Sync {
    /// The provider name stored in artifact headers (`local`, `aws-kms`, `pkcs11`,
    /// `customer-provided`).
    fn name(&self) -> &str;

    /// Generates a fresh data key and wraps it under `key_id`, bound to `context`.
    fn generate_data_key(&self, key_id: &str, context: &EncryptionContext) -> Result<GeneratedKey, KmsError> {
        let plaintext = DataKey::generate()?;
        let wrapped = self.wrap_data_key(key_id, &plaintext, context)?;
        Ok(GeneratedKey { plaintext, wrapped })
    }

    /// Wraps an existing data key (for re-wrapping and for adding a recovery key).
    fn wrap_data_key(&self, key_id: &str, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KmsError>;

    /// Unwraps a data key; fails unless the context is the one it was wrapped with.
    fn decrypt_data_key(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KmsError>;

    /// Describes a key.
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError>;
}

/// Serializes an encryption context canonically (sorted keys, length-prefixed), for
/// providers that take it as AEAD associated data.
pub fn canonical_context(context: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in context {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

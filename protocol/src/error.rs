//! The one error type of the protocol crate.
//!
//! Errors that happen before decapsulation describe what was wrong with the framing, so a
//! gateway can answer with a precise 4xx. Errors from HPKE or AEAD carry no detail at all
//! ([`Error::Decrypt`]): telling an attacker *why* a ciphertext failed would make the
//! gateway a decryption oracle. The inference checks return their own, more precise
//! [`InvalidInput`], which converts into [`Error::InvalidInput`].

use crate::inference::check::InvalidInput;

/// Everything that can go wrong while encoding, decoding, encapsulating or
/// decapsulating an Oblivious HTTP message, or checking the inference request inside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before a complete structure could be read.
    #[error("message truncated")]
    Truncated,
    /// A complete structure was read but bytes other than zero padding were left over.
    #[error("unexpected data after the end of the message")]
    TrailingData,
    /// A field holds a value the format does not allow; the text names the field.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// The request names a key identifier that this gateway does not hold
    /// (RFC 9458 section 5.3: the client should refetch the key configuration).
    #[error("unknown key identifier {0}")]
    UnknownKeyId(u8),
    /// The KEM identifier is not one this implementation supports.
    #[error("unsupported KEM 0x{0:04x}")]
    UnsupportedKem(u16),
    /// The KDF identifier is not one this implementation supports.
    #[error("unsupported KDF 0x{0:04x}")]
    UnsupportedKdf(u16),
    /// The AEAD identifier is not one this implementation supports.
    #[error("unsupported AEAD 0x{0:04x}")]
    UnsupportedAead(u16),
    /// The key configuration does not offer the requested KEM, KDF and AEAD combination.
    #[error("the key configuration does not offer this algorithm combination")]
    SuiteNotOffered,
    /// A public key has the wrong length or is not a valid point.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A private key has the wrong length or is not valid for its KEM.
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// Decapsulation or authenticated decryption failed. Deliberately without detail.
    #[error("decryption failed")]
    Decrypt,
    /// Encryption failed; only possible for inputs larger than the AEAD allows.
    #[error("encryption failed")]
    Encrypt,
    /// The Binary HTTP (RFC 9292) message is invalid; the text names the field.
    #[error("invalid binary HTTP message: {0}")]
    BinaryHttp(&'static str),
    /// A chunk of a chunked OHTTP message (draft-ietf-ohai-chunked-ohttp-08) is longer than
    /// the receiver accepts, or a sender was asked to seal one longer than its limit. Refused
    /// from the length prefix alone, before the chunk is buffered.
    #[error("chunk of {len} bytes exceeds the limit of {max} bytes")]
    ChunkTooLarge {
        /// The length announced (ciphertext) or offered (plaintext).
        len: u64,
        /// The limit that applies to that length.
        max: u64,
    },
    /// A non-final chunk carries no data (the draft requires it be treated like a
    /// decryption error), or a sender was asked to seal one.
    #[error("a non-final chunk is empty")]
    EmptyChunk,
    /// A chunked message ended without its final chunk (length 0, AAD `"final"`): it was
    /// truncated, so what was read so far must not be taken as the whole message.
    #[error("chunked message ended without its final chunk")]
    MissingFinalChunk,
    /// One more chunk would make the chunk counter (the HPKE sequence number, or the
    /// response nonce counter) wrap, which would reuse a nonce.
    #[error("too many chunks: the chunk counter would wrap")]
    ChunkCounterExhausted,
    /// A Binary HTTP message is larger than a limit of the incremental decoder allows;
    /// the text names the limit.
    #[error("binary HTTP message over a limit: {0}")]
    BinaryHttpLimit(&'static str),
    /// The inference request does not follow KServe V2 or the model's signature
    /// ([`crate::inference::check`]); the text names tensors and rules, never values.
    #[error("invalid inference request: {0}")]
    InvalidInput(#[from] InvalidInput),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

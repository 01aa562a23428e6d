//! What a page may see of an exchange: that it was encrypted, to which key, with which
//! algorithms (named as the RFCs spell them), how big it was and where the time went.
//!
//! The exchange itself (choosing and pinning the key configuration, the inner request,
//! sealing, classifying the answer) is the client core's (`sealgate-client-core`), shared
//! with the Rust SDK; this module only describes it for `gw.lastExchange` and `gw.suite`.

use sealgate_protocol::{Aead, Kdf, Kem, SymmetricSuite};

/// What a page may show about an exchange: that it was encrypted, to which key, with what.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeInfo {
    /// The key identifier of the configuration used.
    pub key_id: u8,
    /// KEM, KDF and AEAD names.
    pub suite: SuiteNames,
    /// Size of the Binary HTTP request before encryption.
    pub plaintext_bytes: usize,
    /// Size of the encapsulated request that left the page (`message/ohttp-req`).
    pub request_bytes: usize,
    /// Size of the encapsulated response (`message/ohttp-res`).
    pub response_bytes: usize,
    /// Time in this module before sending: checking, encoding and encrypting, ms.
    pub encrypt_ms: f64,
    /// Time in this module after receiving: decrypting, decoding, building the result, ms.
    pub decrypt_ms: f64,
    /// Of `encrypt_ms`, the HPKE encapsulation alone (RFC 9458 section 4.3), ms.
    pub seal_ms: f64,
    /// Of `decrypt_ms`, the response decapsulation and Binary HTTP decoding alone, ms.
    pub open_ms: f64,
}

/// Human-readable algorithm names, as the RFCs spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteNames {
    /// Such as `DHKEM(X25519, HKDF-SHA256)`.
    pub kem: &'static str,
    /// Such as `HKDF-SHA256`.
    pub kdf: &'static str,
    /// Such as `AES-128-GCM`.
    pub aead: &'static str,
}

impl SuiteNames {
    /// Names for `kem` with `suite`.
    pub fn new(kem: Kem, suite: SymmetricSuite) -> Self {
        // By IANA identifier, so that KEMs the protocol crate adds get their name here
        // without a code change in this match.
        let kem = match kem.id() {
            0x0020 => "DHKEM(X25519, HKDF-SHA256)",
            0x647a => "X-Wing",
            _ => "unknown KEM",
        };
        let kdf = match suite.kdf {
            Kdf::HkdfSha256 => "HKDF-SHA256",
            _ => "unknown KDF",
        };
        let aead = match suite.aead {
            Aead::Aes128Gcm => "AES-128-GCM",
            Aead::Aes256Gcm => "AES-256-GCM",
            Aead::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            _ => "unknown AEAD",
        };
        Self { kem, kdf, aead }
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn algorithms_have_their_rfc_names() {
        let names = SuiteNames::new(Kem::XWing, SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305));
        assert_eq!((names.kem, names.kdf, names.aead), ("X-Wing", "HKDF-SHA256", "ChaCha20-Poly1305"));
        let names = SuiteNames::new(Kem::X25519HkdfSha256, SymmetricSuite::ALL[0]);
        assert_eq!(names.kem, "DHKEM(X25519, HKDF-SHA256)");
    }
}

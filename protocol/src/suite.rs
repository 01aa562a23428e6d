//! Algorithm identifiers: HPKE KEM, KDF and AEAD (RFC 9180 section 7), as carried in key
//! configurations and request headers (RFC 9458 section 3).

use crate::error::{Error, Result};

/// A key encapsulation mechanism (RFC 9180 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kem {
    /// DHKEM(X25519, HKDF-SHA256), 0x0020.
    X25519HkdfSha256,
    /// X-Wing (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem), 0x647a: a post-quantum
    /// hybrid. Its private key is the 32-byte seed from which both component keys are
    /// expanded; HPKE integration per draft-ietf-hpke-pq.
    XWing,
}

impl Kem {
    /// The IANA identifier.
    pub const fn id(self) -> u16 {
        match self {
            Kem::X25519HkdfSha256 => 0x0020,
            Kem::XWing => 0x647a,
        }
    }

    /// Looks up a KEM by IANA identifier.
    pub fn from_id(id: u16) -> Result<Self> {
        match id {
            0x0020 => Ok(Kem::X25519HkdfSha256),
            0x647a => Ok(Kem::XWing),
            other => Err(Error::UnsupportedKem(other)),
        }
    }

    /// Length of an encoded public key (Npk): for X-Wing the ML-KEM-768 encapsulation key
    /// (1184 bytes) followed by the X25519 public key.
    pub const fn public_key_len(self) -> usize {
        match self {
            Kem::X25519HkdfSha256 => 32,
            Kem::XWing => 1216,
        }
    }

    /// Length of the encapsulated key `enc` (Nenc): for X-Wing the ML-KEM-768 ciphertext
    /// (1088 bytes) followed by the ephemeral X25519 public key.
    pub const fn enc_len(self) -> usize {
        match self {
            Kem::X25519HkdfSha256 => 32,
            Kem::XWing => 1120,
        }
    }

    /// Length of an encoded private key (Nsk): for X-Wing the seed.
    pub const fn private_key_len(self) -> usize {
        match self {
            Kem::X25519HkdfSha256 | Kem::XWing => 32,
        }
    }

    /// Short lowercase name used in configuration files, options and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Kem::X25519HkdfSha256 => "x25519",
            Kem::XWing => "x-wing",
        }
    }

    /// Every KEM this implementation supports, classical first.
    pub const ALL: [Kem; 2] = [Kem::X25519HkdfSha256, Kem::XWing];
}

/// A key derivation function (RFC 9180 section 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kdf {
    /// HKDF-SHA256, 0x0001.
    HkdfSha256,
}

impl Kdf {
    /// The IANA identifier.
    pub const fn id(self) -> u16 {
        match self {
            Kdf::HkdfSha256 => 0x0001,
        }
    }

    /// Looks up a KDF by IANA identifier.
    pub fn from_id(id: u16) -> Result<Self> {
        match id {
            0x0001 => Ok(Kdf::HkdfSha256),
            other => Err(Error::UnsupportedKdf(other)),
        }
    }
}

/// An authenticated encryption algorithm (RFC 9180 section 7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aead {
    /// AES-128-GCM, 0x0001.
    Aes128Gcm,
    /// AES-256-GCM, 0x0002.
    Aes256Gcm,
    /// ChaCha20-Poly1305, 0x0003.
    ChaCha20Poly1305,
}

impl Aead {
    /// The IANA identifier.
    pub const fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::Aes256Gcm => 0x0002,
            Aead::ChaCha20Poly1305 => 0x0003,
        }
    }

    /// Looks up an AEAD by IANA identifier. The export-only AEAD (0xffff) is not
    /// supported: OHTTP needs to encrypt.
    pub fn from_id(id: u16) -> Result<Self> {
        match id {
            0x0001 => Ok(Aead::Aes128Gcm),
            0x0002 => Ok(Aead::Aes256Gcm),
            0x0003 => Ok(Aead::ChaCha20Poly1305),
            other => Err(Error::UnsupportedAead(other)),
        }
    }

    /// Key length (Nk).
    pub const fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }

    /// Nonce length (Nn).
    pub const fn nonce_len(self) -> usize {
        12
    }

    /// Authentication tag length (Nt).
    pub const fn tag_len(self) -> usize {
        16
    }

    /// Short lowercase name used in configuration files and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Aead::Aes128Gcm => "aes-128-gcm",
            Aead::Aes256Gcm => "aes-256-gcm",
            Aead::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

/// A KDF and AEAD pair, as listed in a key configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SymmetricSuite {
    /// The key derivation function.
    pub kdf: Kdf,
    /// The authenticated encryption algorithm.
    pub aead: Aead,
}

impl SymmetricSuite {
    /// Builds a pair.
    pub const fn new(kdf: Kdf, aead: Aead) -> Self {
        Self { kdf, aead }
    }

    /// Every pair this implementation supports, in order of preference for the gateway's
    /// default key configuration.
    pub const ALL: [SymmetricSuite; 3] = [
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes256Gcm),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
    ];
}

/// A complete HPKE ciphersuite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Suite {
    /// The key encapsulation mechanism.
    pub kem: Kem,
    /// The key derivation function.
    pub kdf: Kdf,
    /// The authenticated encryption algorithm.
    pub aead: Aead,
}

impl Suite {
    /// Length of the response nonce and of the exported response secret:
    /// `max(Nn, Nk)` (RFC 9458 section 4.4).
    pub const fn response_nonce_len(self) -> usize {
        let nk = self.aead.key_len();
        let nn = self.aead.nonce_len();
        if nk > nn { nk } else { nn }
    }
}

//! Key configurations (RFC 9458 section 3) and the `application/ohttp-keys` list format.
//!
//! A key configuration tells clients which public key and algorithms the gateway accepts.
//! Its encoding is the thing clients pin: [`KeyConfig::sha256`] is the fingerprint the
//! gateway prints at start-up and clients may check.

use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::suite::{Aead, Kdf, Kem, SymmetricSuite};
use crate::varint::Reader;

/// One key configuration: key identifier, KEM, public key and the symmetric suites the
/// gateway accepts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    key_id: u8,
    kem: Kem,
    public_key: Vec<u8>,
    suites: Vec<SymmetricSuite>,
}

impl KeyConfig {
    /// Builds a configuration, checking the public key length and that at least one
    /// symmetric suite is offered.
    pub fn new(key_id: u8, kem: Kem, public_key: Vec<u8>, suites: Vec<SymmetricSuite>) -> Result<Self> {
        if public_key.len() != kem.public_key_len() {
            return Err(Error::InvalidPublicKey);
        }
        if suites.is_empty() {
            return Err(Error::Malformed("key configuration offers no symmetric algorithms"));
        }
        Ok(Self { key_id, kem, public_key, suites })
    }

    /// The key identifier clients put in the request header.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The key encapsulation mechanism.
    pub fn kem(&self) -> Kem {
        self.kem
    }

    /// The encoded public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The symmetric suites offered, in the gateway's order of preference.
    pub fn suites(&self) -> &[SymmetricSuite] {
        &self.suites
    }

    /// True when this configuration accepts `kdf` and `aead`.
    pub fn offers(&self, suite: SymmetricSuite) -> bool {
        self.suites.contains(&suite)
    }

    /// The first offered suite using `aead`, if any.
    pub fn suite_for(&self, aead: Aead) -> Option<SymmetricSuite> {
        self.suites.iter().copied().find(|s| s.aead == aead)
    }

    /// Encodes the configuration (RFC 9458 section 3.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.public_key.len() + 4 * self.suites.len());
        out.push(self.key_id);
        out.extend_from_slice(&self.kem.id().to_be_bytes());
        out.extend_from_slice(&self.public_key);
        // At most a handful of suites exist, so the length always fits in 16 bits.
        let suites_len = (4 * self.suites.len()) as u16;
        out.extend_from_slice(&suites_len.to_be_bytes());
        for suite in &self.suites {
            out.extend_from_slice(&suite.kdf.id().to_be_bytes());
            out.extend_from_slice(&suite.aead.id().to_be_bytes());
        }
        out
    }

    /// Decodes exactly one configuration. Symmetric suites this implementation does not
    /// know are skipped, as RFC 9458 section 3.1 allows; a configuration left with none, or
    /// with an unknown KEM, is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let config = Self::read(&mut r)?;
        if !r.is_empty() {
            return Err(Error::TrailingData);
        }
        Ok(config)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let key_id = r.u8()?;
        let kem = Kem::from_id(r.u16()?)?;
        let public_key = r.take(kem.public_key_len())?.to_vec();
        let suites_len = usize::from(r.u16()?);
        if suites_len == 0 || suites_len % 4 != 0 {
            return Err(Error::Malformed("symmetric algorithms length"));
        }
        let mut sr = Reader::new(r.take(suites_len)?);
        let mut suites = Vec::new();
        while !sr.is_empty() {
            let (kdf, aead) = (sr.u16()?, sr.u16()?);
            if let (Ok(kdf), Ok(aead)) = (Kdf::from_id(kdf), Aead::from_id(aead)) {
                suites.push(SymmetricSuite::new(kdf, aead));
            }
        }
        if suites.is_empty() {
            return Err(Error::SuiteNotOffered);
        }
        Ok(Self { key_id, kem, public_key, suites })
    }

    /// Encodes a list as `application/ohttp-keys`: each configuration prefixed by its
    /// two-byte length (RFC 9458 section 3.2).
    pub fn encode_list(configs: &[KeyConfig]) -> Vec<u8> {
        let mut out = Vec::new();
        for config in configs {
            let encoded = config.encode();
            // A configuration is at most a few hundred bytes.
            out.extend_from_slice(&(encoded.len() as u16).to_be_bytes());
            out.extend_from_slice(&encoded);
        }
        out
    }

    /// Decodes `application/ohttp-keys`. Configurations this implementation cannot use
    /// (unknown KEM, no known suite) are skipped so that a gateway can offer new algorithms
    /// without breaking old clients; an empty result or broken framing is an error.
    pub fn decode_list(bytes: &[u8]) -> Result<Vec<KeyConfig>> {
        let mut r = Reader::new(bytes);
        let mut configs = Vec::new();
        while !r.is_empty() {
            let len = usize::from(r.u16()?);
            let encoded = r.take(len)?;
            match Self::decode(encoded) {
                Ok(config) => configs.push(config),
                Err(Error::UnsupportedKem(_) | Error::SuiteNotOffered) => {}
                Err(other) => return Err(other),
            }
        }
        if configs.is_empty() {
            return Err(Error::Malformed("no usable key configuration"));
        }
        Ok(configs)
    }

    /// SHA-256 of the encoded configuration: the fingerprint clients may pin.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyConfig {
        KeyConfig::new(7, Kem::X25519HkdfSha256, alloc::vec![9; 32], SymmetricSuite::ALL.to_vec()).unwrap()
    }

    #[test]
    fn round_trip() {
        let config = sample();
        assert_eq!(KeyConfig::decode(&config.encode()).unwrap(), config);
        let list = KeyConfig::encode_list(&[config.clone(), config.clone()]);
        assert_eq!(KeyConfig::decode_list(&list).unwrap(), alloc::vec![config.clone(), config]);
    }

    #[test]
    fn unknown_suites_are_skipped_but_not_all() {
        let mut bytes = sample().encode();
        // Replace the AEAD of every suite with an unknown id.
        let n = bytes.len();
        for i in 0..3 {
            let at = n - 4 * (3 - i) + 2;
            bytes[at..at + 2].copy_from_slice(&0x7777u16.to_be_bytes());
        }
        assert_eq!(KeyConfig::decode(&bytes), Err(Error::SuiteNotOffered));
        bytes[n - 2..].copy_from_slice(&0x0003u16.to_be_bytes());
        let config = KeyConfig::decode(&bytes).unwrap();
        assert_eq!(config.suites(), &[SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305)]);
    }

    #[test]
    fn list_skips_unknown_kem() {
        let mut other = alloc::vec![1u8, 0x12, 0x34];
        other.extend_from_slice(&[0; 65]);
        let mut list = Vec::new();
        list.extend_from_slice(&(other.len() as u16).to_be_bytes());
        list.extend_from_slice(&other);
        list.extend_from_slice(&KeyConfig::encode_list(&[sample()]));
        assert_eq!(KeyConfig::decode_list(&list).unwrap(), alloc::vec![sample()]);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let good = sample().encode();
        for cut in 0..good.len() {
            assert!(KeyConfig::decode(&good[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(KeyConfig::decode(&long), Err(Error::TrailingData));
        assert!(KeyConfig::decode_list(&[]).is_err());
        assert!(KeyConfig::decode_list(&[0, 200, 1]).is_err());
    }
}

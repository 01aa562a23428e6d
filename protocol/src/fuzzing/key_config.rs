//! Fuzz target `key_config`: a key configuration and a list of them, as a client reads them
//! from `GET /.well-known/ohttp-gateway` (RFC 9458 section 3): [`KeyConfig::decode`] and
//! [`KeyConfig::decode_list`]. What a client then does with a configuration it accepted is
//! part of the target: [`ClientRequest::new`] for every suite it offers and an encapsulation
//! to its public key on both HPKE backends, since the public key is the gateway's (or an
//! attacker's) bytes too.
//!
//! Asserted of what is accepted: a configuration encodes back to bytes that decode to the
//! same configuration, and a list re-encoded from what was kept decodes to the same list.

use alloc::format;
use alloc::vec::Vec;

use super::{FixedRng, Seed, gateway_keys};
use crate::{Aead, Backend, ClientRequest, Kdf, Kem, KeyConfig, SymmetricSuite, rand_core};

/// The `key_config` target. It holds nothing: [`Target::new`] exists for symmetry with the
/// other targets.
#[derive(Debug, Default)]
pub struct Target(());

impl Target {
    /// The target.
    pub fn new() -> Self {
        Self(())
    }

    /// Decodes `data` as one configuration and as a list; true when either succeeded.
    pub fn run(&self, data: &[u8]) -> bool {
        let one = KeyConfig::decode(data);
        if let Ok(config) = &one {
            check_config(config);
        }
        let list = KeyConfig::decode_list(data);
        if let Ok(configs) = &list {
            for config in configs {
                check_config(config);
            }
            let again = KeyConfig::decode_list(&KeyConfig::encode_list(configs));
            assert_eq!(again.as_ref(), Ok(configs), "a re-encoded list decodes to what was kept");
        }
        one.is_ok() || list.is_ok()
    }

    /// Valid configurations and lists: the fixed gateway's (X25519 and X-Wing, every suite),
    /// each alone, with one suite, with suites and configurations this implementation does
    /// not know (which a client skips).
    pub fn seeds(&self) -> Vec<Seed> {
        let mut seeds = Vec::new();
        let Ok(gateway) = gateway_keys(Backend::default()) else { return seeds };
        let configs = gateway.configs();
        seeds.push(("list-x25519-xwing".into(), gateway.encoded_configs()));
        for config in &configs {
            let kem = kem_name(config.kem());
            seeds.push((format!("config-{kem}"), config.encode()));
            seeds.push((format!("list-{kem}"), KeyConfig::encode_list(core::slice::from_ref(config))));
            if let Ok(single) = KeyConfig::new(
                config.key_id(),
                config.kem(),
                config.public_key().to_vec(),
                alloc::vec![SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305)],
            ) {
                seeds.push((format!("config-{kem}-chacha20poly1305"), single.encode()));
            }
            // Suites after the known ones that a client skips: HKDF-SHA384 with AES-128-GCM,
            // and HKDF-SHA256 with the export-only AEAD.
            let mut unknown = config.encode();
            let len_at = 3 + config.public_key().len();
            let suites_len = 4 * config.suites().len() + 8;
            if let Some(len) = unknown.get_mut(len_at..len_at + 2) {
                len.copy_from_slice(&(suites_len as u16).to_be_bytes());
            }
            unknown.extend_from_slice(&[0x00, 0x02, 0x00, 0x01, 0x00, 0x01, 0xff, 0xff]);
            seeds.push((format!("config-{kem}-unknown-suites"), unknown));
        }
        // A configuration with a KEM this implementation does not know (P-256, 0x0010, with
        // a 65-byte key), listed before the usable ones: skipped by a client.
        let mut unknown_kem = alloc::vec![7u8, 0x00, 0x10];
        unknown_kem.extend_from_slice(&[4u8; 65]);
        unknown_kem.extend_from_slice(&[0x00, 0x04, 0x00, 0x01, 0x00, 0x01]);
        let mut list = Vec::new();
        list.extend_from_slice(&(unknown_kem.len() as u16).to_be_bytes());
        list.extend_from_slice(&unknown_kem);
        list.extend_from_slice(&gateway.encoded_configs());
        seeds.push(("list-unknown-kem-first".into(), list));
        seeds
    }
}

/// What a client does with a configuration it accepted, and the round trip.
fn check_config(config: &KeyConfig) {
    let encoded = config.encode();
    assert_eq!(KeyConfig::decode(&encoded).as_ref(), Ok(config), "an encoded configuration decodes to itself");
    for &suite in config.suites() {
        assert!(config.offers(suite), "a decoded configuration offers its own suites");
        let _ = ClientRequest::new(config, suite);
    }
    // Sealing costs a KEM encapsulation: once per backend, with the first suite (the suite
    // does not change how the public key is read).
    if let Some(&suite) = config.suites().first() {
        for &backend in Backend::ALL {
            if let Ok(request) = ClientRequest::new(config, suite) {
                let mut rng = rand_core::UnwrapErr(FixedRng::new(u64::from(config.key_id())));
                let _ = request.with_backend(backend).encapsulate(b"fuzz", &mut rng);
            }
        }
    }
}

fn kem_name(kem: Kem) -> &'static str {
    match kem {
        Kem::X25519HkdfSha256 => "x25519",
        Kem::XWing => "xwing",
    }
}

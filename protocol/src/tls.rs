//! The TLS 1.3 profile of the outer connection, for both ends (feature `tls`): the gateway's
//! server configuration and the Rust SDK's client configuration are built from this one
//! provider, so they cannot drift apart.
//!
//! Only TLS 1.3, only AEAD suites, and key exchange X25519MLKEM768 first (so a recorded
//! session stays safe against a future quantum computer) with X25519 as the fallback; rustls
//! with aws-lc-rs. ALPN offers h2, then http/1.1.

use alloc::vec;
use alloc::vec::Vec;

use rustls::crypto::{CryptoProvider, aws_lc_rs};

/// The crypto provider: TLS 1.3 suites, PQ-hybrid key exchange first.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![aws_lc_rs::kx_group::X25519MLKEM768, aws_lc_rs::kx_group::X25519],
        ..aws_lc_rs::default_provider()
    }
}

/// The ALPN protocols offered (client) and accepted (server), in order of preference.
pub fn alpn_protocols() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

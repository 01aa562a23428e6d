//! RFC 9458 Appendix A reproduced byte for byte from `vectors/rfc9458-appendix-a.json`.
//!
//! The gateway side is reproduced completely, on every backend: the key configuration from
//! the private key, the decapsulated request, and the encapsulated response from the RFC's
//! response nonce (fed through the injectable RNG). The client side is reproduced with the
//! aws-lc-rs backend's `danger_encapsulate_with_ephemeral_key`, since the RFC gives the
//! ephemeral private key rather than the randomness it came from; the `hpke` crate's public
//! API cannot take a fixed ephemeral key, so without the `aws-lc` feature the client side is
//! checked by the independent Python client in `tests/interop/` and against the `ohttp` crate
//! in `interop_ohttp.rs`.

mod common;

use sealgate_protocol::{Aead, Backend, GatewayKey, GatewayKeys, Kdf, Kem, KeyConfig, SymmetricSuite};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    server_private_key: String,
    key_config: String,
    request: String,
    #[cfg_attr(not(feature = "aws-lc"), allow(dead_code))]
    ephemeral_private_key: String,
    encapsulated_request: String,
    response: String,
    response_nonce: String,
    encapsulated_response: String,
}

fn vector() -> Vector {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/rfc9458-appendix-a.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn gateway(v: &Vector, backend: Backend) -> GatewayKeys {
    let suites = vec![
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
    ];
    let key = GatewayKey::from_secret_bytes(1, Kem::X25519HkdfSha256, suites, &hex(&v.server_private_key))
        .unwrap()
        .with_backend(backend)
        .unwrap();
    assert_eq!(key.backend(), backend);
    GatewayKeys::new(vec![key]).unwrap()
}

#[test]
fn key_configuration_matches() {
    let v = vector();
    for &backend in Backend::ALL {
        let gw = gateway(&v, backend);
        assert_eq!(gw.configs()[0].encode(), hex(&v.key_config), "{backend:?}");
        assert_eq!(KeyConfig::decode(&hex(&v.key_config)).unwrap(), gw.configs()[0]);
    }
}

#[test]
fn gateway_decapsulates_the_rfc_request_and_reproduces_the_response() {
    let v = vector();
    for &backend in Backend::ALL {
        let gw = gateway(&v, backend);
        let (request, responder) = gw.decapsulate(&hex(&v.encapsulated_request)).unwrap();
        assert_eq!(&request[..], &hex(&v.request)[..], "{backend:?}");
        // The RFC's request is a truncated known-length GET of https://example.com/.
        let parsed = sealgate_protocol::bhttp::Request::decode(&request).unwrap();
        let target = (parsed.method.as_str(), parsed.authority.as_str(), parsed.path.as_str());
        assert_eq!(target, ("GET", "example.com", "/"));

        let mut rng = common::ReplayRng::new(&hex(&v.response_nonce));
        let encapsulated = responder.encapsulate(&hex(&v.response), &mut rng).unwrap();
        assert_eq!(encapsulated, hex(&v.encapsulated_response), "{backend:?}");
    }
}

#[test]
fn a_changed_byte_of_the_rfc_request_is_refused() {
    let v = vector();
    for &backend in Backend::ALL {
        let gw = gateway(&v, backend);
        let good = hex(&v.encapsulated_request);
        for i in 7..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x80;
            assert!(gw.decapsulate(&bad).is_err(), "{backend:?} byte {i}");
        }
    }
}

/// The client side, byte for byte: the RFC's key configuration, request and ephemeral key
/// give the RFC's encapsulated request, and the RFC's response opens.
#[cfg(feature = "aws-lc")]
#[test]
fn client_reproduces_the_rfc_request_byte_for_byte() {
    use sealgate_protocol::{ClientRequest, Error};
    let v = vector();
    let config = KeyConfig::decode(&hex(&v.key_config)).unwrap();
    let suite = config.suite_for(Aead::Aes128Gcm).unwrap();
    for &backend in Backend::ALL {
        let request = ClientRequest::new(&config, suite).unwrap().with_backend(backend);
        let (encapsulated, pending) =
            request.danger_encapsulate_with_ephemeral_key(&hex(&v.request), &hex(&v.ephemeral_private_key)).unwrap();
        assert_eq!(hex::encode(&encapsulated), v.encapsulated_request);
        assert_eq!(pending.decapsulate(&hex(&v.encapsulated_response)).unwrap(), hex(&v.response));
    }
    // The fixed-key entry point is for DHKEM only.
    let xwing = GatewayKey::derive(2, Kem::XWing, SymmetricSuite::ALL.to_vec(), &[1; 32]).unwrap();
    let request = ClientRequest::new(xwing.config(), SymmetricSuite::ALL[0]).unwrap();
    let refused = request.danger_encapsulate_with_ephemeral_key(b"x", &hex(&v.ephemeral_private_key));
    assert_eq!(refused.unwrap_err(), Error::UnsupportedKem(0x647a));
}

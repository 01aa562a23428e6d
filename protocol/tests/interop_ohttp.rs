//! Interoperability with the `ohttp` crate, the reference implementation of RFC 9458, in
//! both directions, for both KEMs (X25519 and X-Wing), every AEAD and every backend: our
//! client against its server, its client against our gateway. Both sides also exchange
//! Binary HTTP produced by the `bhttp` crate.
//!
//! The `ohttp` crate's pure-Rust backend offers AES-128-GCM and ChaCha20-Poly1305 only
//! (`rh/hpke.rs`, `Config::supported`), so AES-256-GCM is checked against the independent
//! Python client in `tests/interop/` instead.

mod common;

use std::io::Cursor;

use sealgate_protocol::{Aead, Backend, ClientRequest, GatewayKey, GatewayKeys, Kem, KeyConfig, SymmetricSuite, bhttp};

const AEADS: [(Aead, ohttp::hpke::Aead); 2] =
    [(Aead::Aes128Gcm, ohttp::hpke::Aead::Aes128Gcm), (Aead::ChaCha20Poly1305, ohttp::hpke::Aead::ChaCha20Poly1305)];

const KEMS: [(Kem, ohttp::hpke::Kem); 2] =
    [(Kem::X25519HkdfSha256, ohttp::hpke::Kem::X25519Sha256), (Kem::XWing, ohttp::hpke::Kem::XWing)];

/// Every (KEM, AEAD, backend) combination the `ohttp` crate can take part in.
fn combinations() -> impl Iterator<Item = ((Kem, ohttp::hpke::Kem), (Aead, ohttp::hpke::Aead), Backend)> {
    KEMS.into_iter()
        .flat_map(|kem| AEADS.into_iter().map(move |aead| (kem, aead)))
        .flat_map(|(kem, aead)| Backend::ALL.iter().map(move |&backend| (kem, aead, backend)))
}

fn sample_request() -> bhttp::Request {
    let mut req = bhttp::Request::new("POST", "https", "gateway.example", "/v2/models/breast-cancer/infer");
    req.headers.push(bhttp::Field::new("content-type", "application/json"));
    req.body = br#"{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[1.5,2.5]}]}"#.to_vec();
    req
}

#[test]
fn our_client_to_ohttp_server() {
    for ((our_kem, their_kem), (ours, theirs), backend) in combinations() {
        let suite = ohttp::SymmetricSuite::new(ohttp::hpke::Kdf::HkdfSha256, theirs);
        let config = ohttp::KeyConfig::new(42, their_kem, vec![suite]).unwrap();
        let encoded = config.encode().unwrap();
        let server = ohttp::Server::new(config).unwrap();

        let our_config = KeyConfig::decode(&encoded).unwrap();
        assert_eq!(our_config.kem(), our_kem);
        let request = sample_request();
        let (enc_request, pending) =
            ClientRequest::new(&our_config, SymmetricSuite::new(sealgate_protocol::Kdf::HkdfSha256, ours))
                .unwrap()
                .with_backend(backend)
                .encapsulate(&request.encode(), &mut common::os_rng())
                .unwrap();

        let (inner, responder) = server.decapsulate(&enc_request).unwrap();
        // The reference Binary HTTP parser must read what we wrote.
        let parsed = ::bhttp::Message::read_bhttp(&mut Cursor::new(&inner)).unwrap();
        assert_eq!(parsed.control().method(), Some(&b"POST"[..]));
        assert_eq!(parsed.content(), &request.body[..]);

        let mut answer = ::bhttp::Message::response(::bhttp::StatusCode::try_from(200u16).unwrap());
        answer.put_header("content-type", "application/json");
        answer.write_content(b"{\"ok\":true}");
        let mut answer_bytes = Vec::new();
        answer.write_bhttp(::bhttp::Mode::KnownLength, &mut answer_bytes).unwrap();
        let enc_response = responder.encapsulate(&answer_bytes).unwrap();

        let response = bhttp::Response::decode(&pending.decapsulate(&enc_response).unwrap()).unwrap();
        assert_eq!(response.status, 200, "{our_kem:?} {ours:?} {backend:?}");
        assert_eq!(response.body, b"{\"ok\":true}");
    }
}

#[test]
fn ohttp_client_to_our_gateway() {
    for ((kem, _), (ours, _), backend) in combinations() {
        let suite = SymmetricSuite::new(sealgate_protocol::Kdf::HkdfSha256, ours);
        let key =
            GatewayKey::generate(7, kem, vec![suite], &mut common::os_rng()).unwrap().with_backend(backend).unwrap();
        let gateway = GatewayKeys::new(vec![key]).unwrap();

        for mode in [::bhttp::Mode::KnownLength, ::bhttp::Mode::IndeterminateLength] {
            let mut msg =
                ::bhttp::Message::request(b"POST".to_vec(), b"https".to_vec(), b"gw".to_vec(), b"/v2/models".to_vec());
            msg.put_header("content-type", "application/json");
            msg.write_content(b"{\"feature\":1}");
            let mut bytes = Vec::new();
            msg.write_bhttp(mode, &mut bytes).unwrap();

            let client = ohttp::ClientRequest::from_encoded_config_list(&gateway.encoded_configs()).unwrap();
            let (enc_request, pending) = client.encapsulate(&bytes).unwrap();
            let (inner, responder) = gateway.decapsulate(&enc_request).unwrap();
            let request = bhttp::Request::decode(&inner).unwrap();
            assert_eq!(request.path, "/v2/models");
            assert_eq!(request.header("content-type"), Some(&b"application/json"[..]));
            assert_eq!(request.body, b"{\"feature\":1}", "{kem:?} {ours:?} {backend:?} {mode:?}");

            let answer = bhttp::Response::new(201, vec![bhttp::Field::new("x-a", "b")], b"done".to_vec());
            let enc_response = responder.encapsulate(&answer.encode(), &mut common::os_rng()).unwrap();
            let plain = pending.decapsulate(&enc_response).unwrap();
            let parsed = ::bhttp::Message::read_bhttp(&mut Cursor::new(&plain)).unwrap();
            assert_eq!(parsed.control().status().map(u16::from), Some(201));
            assert_eq!(parsed.content(), b"done");
        }
    }
}

//! draft-ietf-ohai-chunked-ohttp-08 Appendix A reproduced byte for byte from
//! `vectors/chunked-ohttp-08-example.json`.
//!
//! As for RFC 9458 (`rfc9458_vectors.rs`): the gateway side is reproduced completely on every
//! backend — the request opened one byte at a time into the draft's two chunks, and the
//! response sealed from the draft's response nonce (fed through the injectable RNG) into the
//! draft's three chunks. The client side needs the draft's ephemeral key, so it goes through
//! the aws-lc-rs backend's `danger_start_with_ephemeral_key`.

mod common;

use sealgate_protocol::chunked::{INFO_CHUNKED_REQUEST, RequestHeaderReader};
use sealgate_protocol::{Aead, Backend, Error, GatewayKey, GatewayKeys, Kdf, Kem, SymmetricSuite};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Vector {
    server_private_key: String,
    key_config: String,
    request: String,
    request_chunk_lengths: Vec<usize>,
    ephemeral_private_key: String,
    ephemeral_public_key: String,
    info: String,
    encapsulated_request: Vec<String>,
    response: String,
    response_chunk_lengths: Vec<usize>,
    response_nonce: String,
    encapsulated_response: Vec<String>,
}

fn vector() -> Vector {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/chunked-ohttp-08-example.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
    GatewayKeys::new(vec![key]).unwrap()
}

/// The plaintext split as the draft splits it.
fn pieces<'a>(plaintext: &'a [u8], lengths: &[usize]) -> Vec<&'a [u8]> {
    let mut rest = plaintext;
    lengths
        .iter()
        .map(|&n| {
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            piece
        })
        .collect()
}

#[test]
fn the_info_and_key_configuration_match() {
    let v = vector();
    let mut info = INFO_CHUNKED_REQUEST.to_vec();
    info.push(0);
    info.extend_from_slice(&hex(&v.encapsulated_request[0]));
    assert_eq!(hex::encode(info), v.info);
    for &backend in Backend::ALL {
        assert_eq!(gateway(&v, backend).configs()[0].encode(), hex(&v.key_config), "{backend:?}");
    }
}

#[test]
fn gateway_opens_the_draft_request_and_reproduces_the_draft_response() {
    let v = vector();
    let wire = hex(&v.encapsulated_request.concat());
    for &backend in Backend::ALL {
        let gw = gateway(&v, backend);
        let mut header = RequestHeaderReader::new();
        let mut used = 0;
        while !header.is_complete() {
            used += header.push(&wire[used..used + 1]).unwrap();
        }
        assert_eq!(used, 7 + 32);
        let (mut opener, responder) = gw.decapsulate_chunked(header).unwrap();
        let mut chunks = Vec::new();
        for byte in &wire[used..] {
            chunks.extend(opener.push(std::slice::from_ref(byte)).unwrap().into_iter().map(|c| c.to_vec()));
        }
        chunks.push(opener.finish().unwrap().to_vec());
        let request = hex(&v.request);
        let expected: Vec<Vec<u8>> =
            pieces(&request, &v.request_chunk_lengths).into_iter().map(<[u8]>::to_vec).collect();
        assert_eq!(chunks, expected, "{backend:?}");

        let mut rng = common::ReplayRng::new(&hex(&v.response_nonce));
        let (mut out, mut sealer) = responder.start(&mut rng).unwrap();
        let response = hex(&v.response);
        let parts = pieces(&response, &v.response_chunk_lengths);
        let (last, middle) = parts.split_last().unwrap();
        for piece in middle {
            out.extend(sealer.seal_chunk(piece).unwrap());
        }
        out.extend(sealer.finish(last).unwrap());
        assert_eq!(hex::encode(out), v.encapsulated_response.concat(), "{backend:?}");
    }
}

#[test]
fn a_changed_byte_of_the_draft_request_is_refused() {
    let v = vector();
    let wire = hex(&v.encapsulated_request.concat());
    let gw = gateway(&v, Backend::default());
    // Every byte after the seven-byte header: enc, length prefixes and ciphertext.
    for i in 7..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        let mut header = RequestHeaderReader::new();
        let used = header.push(&bad).unwrap();
        let result = gw.decapsulate_chunked(header).and_then(|(mut opener, _)| {
            opener.push(&bad[used..])?;
            opener.finish()
        });
        assert!(result.is_err(), "byte {i}");
    }
}

#[cfg(feature = "aws-lc")]
#[test]
fn client_reproduces_the_draft_request_and_opens_the_draft_response() {
    use sealgate_protocol::KeyConfig;
    use sealgate_protocol::chunked::ChunkedClientRequest;
    let v = vector();
    let config = KeyConfig::decode(&hex(&v.key_config)).unwrap();
    let suite = config.suite_for(Aead::Aes128Gcm).unwrap();
    for &backend in Backend::ALL {
        let (header, mut sealer, mut response) = ChunkedClientRequest::new(&config, suite)
            .unwrap()
            .with_backend(backend)
            .danger_start_with_ephemeral_key(&hex(&v.ephemeral_private_key))
            .unwrap();
        assert_eq!(hex::encode(&header), v.encapsulated_request[..2].concat());
        let request = hex(&v.request);
        let parts = pieces(&request, &v.request_chunk_lengths);
        for (piece, expected) in parts[..2].iter().zip(&v.encapsulated_request[2..4]) {
            assert_eq!(&hex::encode(sealer.seal_chunk(piece).unwrap()), expected);
        }
        assert_eq!(hex::encode(sealer.finish(parts[2]).unwrap()), v.encapsulated_request[4]);

        // The response, fed one line of the draft at a time.
        let mut chunks = Vec::new();
        for line in &v.encapsulated_response {
            chunks.extend(response.push(&hex(line)).unwrap().into_iter().map(|c| c.to_vec()));
        }
        chunks.push(response.finish().unwrap().to_vec());
        assert_eq!(chunks, [vec![0x01], vec![0x40, 0xc8], vec![]]);
    }
    // The fixed-key entry point is for DHKEM only.
    let xwing = GatewayKey::derive(2, Kem::XWing, SymmetricSuite::ALL.to_vec(), &[1; 32]).unwrap();
    let refused = ChunkedClientRequest::new(xwing.config(), SymmetricSuite::ALL[0])
        .unwrap()
        .danger_start_with_ephemeral_key(&hex(&v.ephemeral_private_key));
    assert_eq!(refused.unwrap_err(), Error::UnsupportedKem(0x647a));
}

#[test]
fn the_draft_response_cut_short_is_refused() {
    let v = vector();
    let gw = gateway(&v, Backend::default());
    let wire = hex(&v.encapsulated_request.concat());
    let mut header = RequestHeaderReader::new();
    let used = header.push(&wire).unwrap();
    let (mut opener, _) = gw.decapsulate_chunked(header).unwrap();
    // Without the final chunk: truncation.
    opener.push(&wire[used..wire.len() - 17]).unwrap();
    assert_eq!(opener.finish().unwrap_err(), Error::MissingFinalChunk);
}

//! Property tests: every round trip returns what went in, and no byte string — random or a
//! mutation of a valid message — makes a decoder panic.

mod common;

use proptest::prelude::*;
use sealgate_protocol::{
    Backend, ClientRequest, Error, GatewayKey, GatewayKeys, Kem, KeyConfig, SymmetricSuite, bhttp,
};

/// An X25519 key (id 3, first) and an X-Wing key (id 4) held by `backend`.
fn gateway_on(backend: Backend) -> GatewayKeys {
    let keys = [(3, Kem::X25519HkdfSha256), (4, Kem::XWing)].map(|(id, kem)| {
        GatewayKey::derive(id, kem, SymmetricSuite::ALL.to_vec(), &[7; 32]).unwrap().with_backend(backend).unwrap()
    });
    GatewayKeys::new(keys.to_vec()).unwrap()
}

fn gateway() -> GatewayKeys {
    gateway_on(Backend::default())
}

fn field() -> impl Strategy<Value = bhttp::Field> {
    ("[a-z][a-z0-9-]{0,15}", proptest::collection::vec(0x20u8..0x7f, 0..40))
        .prop_map(|(name, value)| bhttp::Field::new(&name, value))
}

fn request() -> impl Strategy<Value = bhttp::Request> {
    (
        "[A-Z]{1,8}",
        "/[a-z0-9/]{0,30}",
        proptest::collection::vec(field(), 0..6),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(method, path, headers, body)| {
            let mut req = bhttp::Request::new(&method, "https", "gw.example", &path);
            req.headers = headers;
            req.body = body;
            req
        })
}

proptest! {
    #[test]
    fn bhttp_request_round_trip(req in request()) {
        prop_assert_eq!(bhttp::Request::decode(&req.encode()).unwrap(), req);
    }

    #[test]
    fn bhttp_response_round_trip(status in 200u16..600, headers in proptest::collection::vec(field(), 0..6),
                                 body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let resp = bhttp::Response::new(status, headers, body);
        prop_assert_eq!(bhttp::Response::decode(&resp.encode()).unwrap(), resp);
    }

    /// Every KEM and AEAD, with the client and the gateway each on any backend.
    #[test]
    fn ohttp_round_trip(req in request(), kem in 0usize..2, suite in 0usize..3,
                        client in 0..Backend::ALL.len(), server in 0..Backend::ALL.len(),
                        answer in proptest::collection::vec(any::<u8>(), 0..512)) {
        let gw = gateway_on(Backend::ALL[server]);
        let config = &gw.configs()[kem];
        let (enc, pending) = ClientRequest::new(config, SymmetricSuite::ALL[suite]).unwrap()
            .with_backend(Backend::ALL[client])
            .encapsulate(&req.encode(), &mut common::os_rng()).unwrap();
        let (inner, responder) = gw.decapsulate(&enc).unwrap();
        prop_assert_eq!(bhttp::Request::decode(&inner).unwrap(), req);
        let enc_resp = responder.encapsulate(&answer, &mut common::os_rng()).unwrap();
        prop_assert_eq!(pending.decapsulate(&enc_resp).unwrap(), answer);
    }

    /// A request precomputed (the HPKE setup done before its message was known) is an
    /// ordinary request to the gateway, on every KEM and backend.
    #[test]
    fn precomputed_round_trip(req in request(), kem in 0usize..2, client in 0..Backend::ALL.len(),
                              server in 0..Backend::ALL.len()) {
        let gw = gateway_on(Backend::ALL[server]);
        let config = &gw.configs()[kem];
        let precomputed = ClientRequest::new(config, SymmetricSuite::ALL[0]).unwrap()
            .with_backend(Backend::ALL[client])
            .precompute(&mut common::os_rng()).unwrap();
        prop_assert_eq!(precomputed.key_id(), config.key_id());
        let (enc, pending) = precomputed.encapsulate(&req.encode()).unwrap();
        let (inner, responder) = gw.decapsulate(&enc).unwrap();
        prop_assert_eq!(bhttp::Request::decode(&inner).unwrap(), req);
        let enc_resp = responder.encapsulate(b"answer", &mut common::os_rng()).unwrap();
        prop_assert_eq!(pending.decapsulate(&enc_resp).unwrap(), b"answer".to_vec());
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = bhttp::Request::decode(&bytes);
        let _ = bhttp::Response::decode(&bytes);
        let _ = KeyConfig::decode(&bytes);
        let _ = KeyConfig::decode_list(&bytes);
        for &backend in Backend::ALL {
            let _ = gateway_on(backend).decapsulate(&bytes);
        }
    }

    /// Random bytes after a valid X-Wing header reach ML-KEM decapsulation; they must fail
    /// cleanly on every backend.
    #[test]
    fn random_xwing_requests_fail(body in proptest::collection::vec(any::<u8>(), 1100..1200), aead in 0usize..3) {
        for &backend in Backend::ALL {
            let gw = gateway_on(backend);
            let config = &gw.configs()[1];
            let (valid, _) = ClientRequest::new(config, SymmetricSuite::ALL[aead]).unwrap()
                .encapsulate(b"x", &mut common::os_rng()).unwrap();
            let mut bytes = valid[..7].to_vec();
            bytes.extend_from_slice(&body);
            prop_assert!(gw.decapsulate(&bytes).is_err());
        }
    }

    /// Flipping any bit of a valid encapsulated request makes decapsulation fail cleanly.
    #[test]
    fn tampered_requests_fail(bit in 0usize..(8 * 120)) {
        let gw = gateway();
        let (mut enc, _) = ClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[0]).unwrap()
            .encapsulate(&[0u8; 64], &mut common::os_rng()).unwrap();
        let bit = bit % (8 * enc.len());
        enc[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(gw.decapsulate(&enc).is_err());
    }

    /// Flipping any bit of a valid encapsulated response makes decapsulation fail.
    #[test]
    fn tampered_responses_fail(bit in 0usize..(8 * 96)) {
        let gw = gateway();
        let (enc, pending) = ClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[2]).unwrap()
            .encapsulate(b"x", &mut common::os_rng()).unwrap();
        let (_, responder) = gw.decapsulate(&enc).unwrap();
        let mut resp = responder.encapsulate(&[1u8; 48], &mut common::os_rng()).unwrap();
        let bit = bit % (8 * resp.len());
        resp[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(pending.decapsulate(&resp), Err(Error::Decrypt));
    }
}

#[test]
fn framing_errors_are_named() {
    let gw = gateway();
    let (good, _) = ClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[0])
        .unwrap()
        .encapsulate(b"hello", &mut common::os_rng())
        .unwrap();
    assert_eq!(gw.decapsulate(&good[..3]).unwrap_err(), Error::Truncated);
    assert_eq!(gw.decapsulate(&good[..20]).unwrap_err(), Error::Truncated);
    let mut wrong_key = good.clone();
    wrong_key[0] = 9;
    assert_eq!(gw.decapsulate(&wrong_key).unwrap_err(), Error::UnknownKeyId(9));
    let mut wrong_kem = good.clone();
    wrong_kem[1..3].copy_from_slice(&0x0010u16.to_be_bytes());
    assert_eq!(gw.decapsulate(&wrong_kem).unwrap_err(), Error::UnsupportedKem(0x0010));
    let mut wrong_kdf = good.clone();
    wrong_kdf[3..5].copy_from_slice(&0x0002u16.to_be_bytes());
    assert_eq!(gw.decapsulate(&wrong_kdf).unwrap_err(), Error::UnsupportedKdf(0x0002));
    let mut wrong_aead = good.clone();
    wrong_aead[5..7].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(gw.decapsulate(&wrong_aead).unwrap_err(), Error::UnsupportedAead(0xffff));
    let mut bad_ct = good.clone();
    *bad_ct.last_mut().unwrap() ^= 1;
    assert_eq!(gw.decapsulate(&bad_ct).unwrap_err(), Error::Decrypt);
}

#[test]
fn secrets_do_not_reach_debug_output() {
    for kem in Kem::ALL {
        for &backend in Backend::ALL {
            let key = GatewayKey::derive(3, kem, SymmetricSuite::ALL.to_vec(), &[7; 32])
                .unwrap()
                .with_backend(backend)
                .unwrap();
            let secret_hex: String = key.secret_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let debug = format!("{key:?} {:?}", GatewayKeys::new(vec![key.clone()]).unwrap());
            assert!(debug.contains("redacted"));
            assert!(!debug.contains(&secret_hex));
            assert!(!debug.contains(&format!("{:?}", &key.secret_bytes()[..])));
        }
    }
}

/// A key moved to another backend keeps its configuration and private key, and generated,
/// derived and imported keys agree across backends.
#[test]
fn keys_move_between_backends() {
    for kem in Kem::ALL {
        let key = GatewayKey::generate(9, kem, SymmetricSuite::ALL.to_vec(), &mut common::os_rng()).unwrap();
        assert_eq!(key.backend(), Backend::default());
        assert_eq!(key.config().public_key().len(), kem.public_key_len());
        assert_eq!(key.secret_bytes().len(), kem.private_key_len());
        for &backend in Backend::ALL {
            let moved = key.clone().with_backend(backend).unwrap();
            assert_eq!((moved.backend(), moved.config()), (backend, key.config()));
            assert_eq!(moved.secret_bytes(), key.secret_bytes());
            let imported =
                GatewayKey::from_secret_bytes(9, kem, SymmetricSuite::ALL.to_vec(), &key.secret_bytes()).unwrap();
            assert_eq!(imported.config(), key.config());
        }
        assert_eq!(
            GatewayKey::from_secret_bytes(9, kem, SymmetricSuite::ALL.to_vec(), &[1; 31]).unwrap_err(),
            Error::InvalidPrivateKey
        );
    }
}

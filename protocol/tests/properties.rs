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

    /// The in-place paths (a request encoded straight into the buffer it is sealed in, opened
    /// where it arrived, its content a range of that buffer; the answer likewise) give the
    /// same messages as the copying ones, on every KEM, AEAD and pair of backends.
    #[test]
    fn in_place_round_trip(req in request(), kem in 0usize..2, suite in 0usize..3,
                           client in 0..Backend::ALL.len(), server in 0..Backend::ALL.len(),
                           answer in request().prop_map(|r| bhttp::Response::new(200, r.headers.clone(), r.body.clone()))) {
        let gw = gateway_on(Backend::ALL[server]);
        let config = &gw.configs()[kem];
        let precomputed = ClientRequest::new(config, SymmetricSuite::ALL[suite]).unwrap()
            .with_backend(Backend::ALL[client])
            .precompute(&mut common::os_rng()).unwrap();
        let (sealed, pending) = precomputed.encapsulate_with(req.encoded_len(), |out| req.encode_into(out)).unwrap();
        let (copied, _) = gw.decapsulate(&sealed).unwrap();
        prop_assert_eq!(copied.to_vec(), req.encode());

        let mut buffer = sealed.clone();
        let (range, responder) = gw.decapsulate_in_place(&mut buffer).unwrap();
        prop_assert_eq!(&buffer[..range.start], &sealed[..range.start], "header and enc untouched");
        let (mut head, content) = bhttp::Request::decode_head(&buffer[range.clone()]).unwrap();
        let content = content.expect("the known-length form's content is in one piece");
        prop_assert!(head.body.is_empty());
        head.body = buffer[range][content].to_vec();
        prop_assert_eq!(&head, &req);

        let encoded = answer.encode();
        prop_assert!(answer.encoded_len() >= encoded.len());
        prop_assert!(req.encoded_len() >= req.encode().len());
        let mut sealed_answer = responder
            .encapsulate_with(answer.encoded_len(), |out| answer.encode_into(out), &mut common::os_rng())
            .unwrap();
        let range = pending.decapsulate_in_place(&mut sealed_answer).unwrap();
        prop_assert_eq!(&sealed_answer[range.clone()], encoded.as_slice());
        prop_assert_eq!(bhttp::Response::decode_in(sealed_answer, range).unwrap(), answer);
    }

    /// A request dated by replacing its fields at encoding time encodes as the request with
    /// those fields would.
    #[test]
    fn encoding_with_other_fields(req in request(), fields in proptest::collection::vec(field(), 0..4)) {
        let mut expected = req.clone();
        expected.headers = fields.clone();
        let mut out = vec![9u8];
        req.encode_with_fields_into(&fields, &mut out);
        prop_assert_eq!(out[0], 9, "appended, not overwritten");
        prop_assert_eq!(out[1..].to_vec(), expected.encode());
    }

    /// In-place opening refuses what the copying one refuses, and on any backend.
    #[test]
    fn in_place_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for &backend in Backend::ALL {
            let gw = gateway_on(backend);
            let mut copy = bytes.clone();
            prop_assert_eq!(gw.decapsulate_in_place(&mut copy).is_ok(), gw.decapsulate(&bytes).is_ok());
        }
        let _ = bhttp::Request::decode_head(&bytes);
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
        prop_assert!(gw.decapsulate_in_place(&mut enc).is_err());
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

    /// The same for the in-place opening of a response, truncation included.
    #[test]
    fn tampered_responses_fail_in_place(bit in 0usize..(8 * 96), cut in 0usize..80) {
        let gw = gateway();
        let fresh = || ClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[1]).unwrap()
            .encapsulate(b"x", &mut common::os_rng()).unwrap();
        let (enc, pending) = fresh();
        let (_, responder) = gw.decapsulate(&enc).unwrap();
        let resp = responder.encapsulate(&[1u8; 48], &mut common::os_rng()).unwrap();
        let mut flipped = resp.clone();
        let bit = bit % (8 * flipped.len());
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(pending.decapsulate_in_place(&mut flipped), Err(Error::Decrypt));

        let (enc, pending) = fresh();
        let (_, responder) = gw.decapsulate(&enc).unwrap();
        let resp = responder.encapsulate(&[1u8; 48], &mut common::os_rng()).unwrap();
        let mut short = resp[..cut.min(resp.len() - 1)].to_vec();
        prop_assert!(pending.decapsulate_in_place(&mut short).is_err());
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

//! Property tests of chunked OHTTP and incremental Binary HTTP: random plaintext sealed in
//! random chunkings comes back whole when the ciphertext is fed in random slices, on every
//! KEM, AEAD and pair of backends; random bytes never make an opener or a decoder panic.

mod common;

use proptest::prelude::*;
use sealgate_protocol::bhttp::stream::{Decoder, Encoder, Part};
use sealgate_protocol::chunked::{ChunkedClientRequest, RequestHeaderReader};
use sealgate_protocol::{Backend, GatewayKey, GatewayKeys, Kem, SymmetricSuite, bhttp};

fn gateway_on(backend: Backend) -> GatewayKeys {
    let keys = [(3, Kem::X25519HkdfSha256), (4, Kem::XWing)].map(|(id, kem)| {
        GatewayKey::derive(id, kem, SymmetricSuite::ALL.to_vec(), &[7; 32]).unwrap().with_backend(backend).unwrap()
    });
    GatewayKeys::new(keys.to_vec()).unwrap()
}

/// Cuts `data` into pieces whose lengths cycle through `sizes` (all at least 1).
fn split<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        let (piece, tail) = rest.split_at(n);
        out.push(piece);
        rest = tail;
        i += 1;
    }
    out
}

fn sizes(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1..max, 1..8)
}

fn field() -> impl Strategy<Value = bhttp::Field> {
    ("[a-z][a-z0-9-]{0,15}", proptest::collection::vec(0x20u8..0x7f, 0..40))
        .prop_map(|(name, value)| bhttp::Field::new(&name, value))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunked_round_trip(
        request in proptest::collection::vec(any::<u8>(), 0..20_000),
        response in proptest::collection::vec(any::<u8>(), 0..20_000),
        request_final in proptest::collection::vec(any::<u8>(), 0..100),
        chunking in sizes(5000), slicing in sizes(700),
        kem in 0usize..2, suite in 0usize..3,
        client in 0..Backend::ALL.len(), server in 0..Backend::ALL.len(),
    ) {
        let gw = gateway_on(Backend::ALL[server]);
        let (mut wire, mut sealer, mut opener) = ChunkedClientRequest::new(&gw.configs()[kem], SymmetricSuite::ALL[suite])
            .unwrap()
            .with_backend(Backend::ALL[client])
            .start(&mut common::os_rng())
            .unwrap();
        for piece in split(&request, &chunking) {
            wire.extend(sealer.seal(piece).unwrap());
        }
        wire.extend(sealer.finish(&request_final).unwrap());

        let mut header = RequestHeaderReader::new();
        let mut got = Vec::new();
        let mut request_opener = None;
        let mut responder = None;
        for piece in split(&wire, &slicing) {
            let mut piece = piece;
            if request_opener.is_none() {
                let used = header.push(piece).unwrap();
                piece = &piece[used..];
                if !header.is_complete() {
                    continue;
                }
                let (o, r) = gw.decapsulate_chunked(std::mem::take(&mut header)).unwrap();
                request_opener = Some(o);
                responder = Some(r);
            }
            for chunk in request_opener.as_mut().unwrap().push(piece).unwrap() {
                prop_assert!(!chunk.is_empty());
                got.extend_from_slice(&chunk);
            }
        }
        got.extend_from_slice(&request_opener.unwrap().finish().unwrap());
        prop_assert_eq!(got, [request, request_final].concat());

        let (mut back, mut response_sealer) = responder.unwrap().start(&mut common::os_rng()).unwrap();
        for piece in split(&response, &chunking) {
            back.extend(response_sealer.seal_chunk(piece).unwrap());
        }
        back.extend(response_sealer.finish(b"").unwrap());
        let mut got = Vec::new();
        for piece in split(&back, &slicing) {
            for chunk in opener.push(piece).unwrap() {
                got.extend_from_slice(&chunk);
            }
        }
        prop_assert!(opener.finish().unwrap().is_empty());
        prop_assert_eq!(got, response);
    }

    #[test]
    fn bhttp_stream_round_trip(
        method in "[A-Z]{1,8}", path in "/[a-z0-9/]{0,30}",
        headers in proptest::collection::vec(field(), 0..6),
        trailers in proptest::collection::vec(field(), 0..3),
        body in proptest::collection::vec(any::<u8>(), 0..4000),
        pieces in sizes(900), slicing in sizes(300),
    ) {
        let mut head = bhttp::Request::new(&method, "https", "gw.example", &path);
        head.headers = headers;
        let (mut wire, mut encoder) = Encoder::request(&head);
        for piece in split(&body, &pieces) {
            wire.extend(encoder.body(piece));
        }
        wire.extend(encoder.finish(&trailers));
        // The whole-message decoder agrees.
        let whole = bhttp::Request::decode(&wire).unwrap();
        prop_assert_eq!(&whole.body, &body);

        let mut decoder = Decoder::request();
        let mut parts = Vec::new();
        for piece in split(&wire, &slicing) {
            parts.extend(decoder.push(piece).unwrap());
        }
        parts.extend(decoder.finish().unwrap());
        let mut got_body = Vec::new();
        let mut got_trailers = None;
        for part in parts {
            match part {
                Part::Request(r) => {
                    prop_assert_eq!(&r.method, &method);
                    prop_assert_eq!(&r.headers, &head.headers);
                }
                Part::Body(b) => got_body.extend_from_slice(&b),
                Part::End { trailers } => got_trailers = Some(trailers),
                Part::Response(_) => prop_assert!(false, "response head"),
            }
        }
        prop_assert_eq!(got_body, body);
        prop_assert_eq!(got_trailers, Some(trailers));
    }

    #[test]
    fn bhttp_stream_reads_known_length_responses(
        status in 200u16..600, headers in proptest::collection::vec(field(), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..3000), slicing in sizes(300),
    ) {
        let resp = bhttp::Response::new(status, headers, body);
        let wire = resp.encode();
        let mut decoder = Decoder::response();
        let mut parts = Vec::new();
        for piece in split(&wire, &slicing) {
            parts.extend(decoder.push(piece).unwrap());
        }
        parts.extend(decoder.finish().unwrap());
        let mut got = Vec::new();
        for part in parts {
            match part {
                Part::Response(r) => {
                    prop_assert_eq!(r.status, status);
                    prop_assert_eq!(&r.headers, &resp.headers);
                }
                Part::Body(b) => got.extend_from_slice(&b),
                _ => {}
            }
        }
        prop_assert_eq!(&got, &resp.body);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), slicing in sizes(50)) {
        let gw = gateway_on(Backend::default());
        let mut decoders = [Decoder::request(), Decoder::response()];
        for decoder in &mut decoders {
            for piece in split(&bytes, &slicing) {
                let _ = decoder.push(piece);
            }
        }
        for decoder in decoders {
            let _ = decoder.finish();
        }
        // A valid header followed by random chunk bytes.
        let (header, _, mut response) = ChunkedClientRequest::new(&gw.configs()[0], SymmetricSuite::ALL[0])
            .unwrap()
            .start(&mut common::os_rng())
            .unwrap();
        let mut reader = RequestHeaderReader::new();
        reader.push(&header).unwrap();
        let (mut opener, _) = gw.decapsulate_chunked(reader).unwrap();
        for piece in split(&bytes, &slicing) {
            let _ = opener.push(piece);
            let _ = response.push(piece);
        }
        prop_assert!(opener.finish().is_err());
        prop_assert!(response.finish().is_err());
        // Random bytes as a header.
        let mut reader = RequestHeaderReader::new();
        if reader.push(&bytes).is_ok() {
            let _ = gw.decapsulate_chunked(reader);
        }
    }
}

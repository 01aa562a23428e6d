//! What a large message costs each side beyond its AEAD: the copying path the SDK and the
//! gateway took until issue 13 (clone the request to date it, encode it, seal a copy; open a
//! copy, copy the content out of the Binary HTTP, encode the answer and seal a copy of it)
//! against the in-place one they take now (`encapsulate_with` + `encode_with_fields_into`,
//! `decapsulate_in_place` + `decode_head`, `encapsulate_with` + `encode_into`), measured side
//! by side in one run, with the AEAD alone as the floor.
//!
//! `cargo bench -p sealgate-protocol --bench messages` (the `aws-lc` feature, on by default,
//! is required). Figures are in docs/PERFORMANCE.md.
//!
//! The sizes are the real models' (issue 13): a 500 KB request (seizure-risk's 5-minute
//! spectrogram as KServe JSON) answered with 600 KB (text-embedding's `last_hidden_state`).
//! Each request is sealed with a context precomputed outside the timed part, as the SDK does;
//! each server iteration starts from the encapsulated bytes as they arrived.

use std::hint::black_box;

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealgate_protocol::{Aead, ClientRequest, GatewayKey, GatewayKeys, Kdf, Kem, SymmetricSuite, bhttp};
use zeroize::Zeroizing;

const REQUEST_LEN: usize = 500_000;
const RESPONSE_LEN: usize = 600_000;
const SUITE: SymmetricSuite = SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm);
const DATE: &str = "Wed, 02 Dec 2026 14:00:00 GMT";

fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn gateway() -> GatewayKeys {
    let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, vec![SUITE], &mut os_rng()).unwrap();
    GatewayKeys::new(vec![key]).unwrap()
}

/// An inference request as the SDK builds it once and dates for each attempt.
fn request() -> bhttp::Request {
    let mut request = bhttp::Request::new("POST", "https", "gateway.example", "/v2/models/seizure-risk/infer");
    request.headers.push(bhttp::Field::new("content-type", "application/json"));
    request.headers.push(bhttp::Field::new("authorization", "Bearer sg_0123456789abcdef"));
    request.body = (0..REQUEST_LEN).map(|i| b"0123456789.,"[i % 12]).collect();
    request
}

fn dated_fields(request: &bhttp::Request) -> Vec<bhttp::Field> {
    let mut fields: Vec<_> = request.headers.iter().filter(|f| f.name != "date").cloned().collect();
    fields.push(bhttp::Field::new("date", DATE));
    fields
}

fn messages(c: &mut Criterion) {
    let gateway = gateway();
    let config = gateway.configs()[0].clone();
    let request = request();
    let precomputed = || ClientRequest::new(&config, SUITE).unwrap().precompute(&mut os_rng()).unwrap();

    let mut group = c.benchmark_group("client/seal-500KB");
    group.throughput(Throughput::Bytes(REQUEST_LEN as u64));
    group.bench_function("copying", |b| {
        b.iter_batched(
            precomputed,
            |ready| {
                let mut dated = request.clone();
                dated.headers = dated_fields(&dated);
                let encoded = Zeroizing::new(dated.encode());
                black_box(ready.encapsulate(&encoded).unwrap())
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("in-place", |b| {
        b.iter_batched(
            precomputed,
            |ready| {
                let fields = dated_fields(&request);
                black_box(
                    ready.encapsulate_with(request.encoded_len() + 40, |out| {
                        request.encode_with_fields_into(&fields, out)
                    }),
                )
                .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7; 16]).unwrap());
    group.bench_function("floor-aes-128-gcm-seal", |b| {
        let mut buffer = request.body.clone();
        b.iter(|| {
            let nonce = Nonce::assume_unique_for_key([1; 12]);
            black_box(key.seal_in_place_separate_tag(nonce, Aad::empty(), &mut buffer).unwrap())
        })
    });
    group.finish();

    let mut dated = request.clone();
    dated.headers = dated_fields(&dated);
    let (arrived, _) = precomputed().encapsulate(&dated.encode()).unwrap();
    let answer = bhttp::Response::new(
        200,
        vec![bhttp::Field::new("content-type", "application/json")],
        (0..RESPONSE_LEN).map(|i| b"-0.123456789,"[i % 13]).collect(),
    );
    let mut group = c.benchmark_group("server/open-500KB-seal-600KB");
    group.throughput(Throughput::Bytes((REQUEST_LEN + RESPONSE_LEN) as u64));
    group.bench_function("copying", |b| {
        let mut rng = os_rng();
        b.iter(|| {
            let (inner, responder) = gateway.decapsulate(black_box(&arrived)).unwrap();
            let inner = bhttp::Request::decode(&inner).unwrap();
            black_box(inner.body.len());
            let encoded = Zeroizing::new(answer.encode());
            black_box(responder.encapsulate(&encoded, &mut rng).unwrap())
        })
    });
    group.bench_function("in-place", |b| {
        let mut rng = os_rng();
        b.iter(|| {
            // The gateway takes the body's buffer over; a copy stands for the worst case, a
            // body still shared with the connection's receive buffer.
            let mut buffer = Zeroizing::new(black_box(&arrived).clone());
            let (range, responder) = gateway.decapsulate_in_place(&mut buffer).unwrap();
            let (head, content) = bhttp::Request::decode_head(&buffer[range.clone()]).unwrap();
            black_box((head, content.map(|c| buffer[range][c].len())));
            black_box(
                responder.encapsulate_with(answer.encoded_len(), |out| answer.encode_into(out), &mut rng).unwrap(),
            )
        })
    });
    group.bench_function("floor-aes-128-gcm-open+seal", |b| {
        let mut request = request.body.clone();
        let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut request);
        request.extend_from_slice(tag.unwrap().as_ref());
        let mut response = answer.body.clone();
        b.iter(|| {
            let mut opened = request.clone();
            let nonce = Nonce::assume_unique_for_key([1; 12]);
            black_box(key.open_in_place(nonce, Aad::empty(), &mut opened).unwrap().len());
            let nonce = Nonce::assume_unique_for_key([2; 12]);
            black_box(key.seal_in_place_separate_tag(nonce, Aad::empty(), &mut response).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, messages);
criterion_main!(benches);

//! What a signed receipt per response would cost, measured on its primitives before any code
//! of it exists (docs/designs/signed-receipts.md, issue 18).
//!
//! `cargo bench -p sealgate-protocol --bench receipt_primitives` (the `aws-lc` feature, on by
//! default, is required). Figures are in docs/designs/signed-receipts.md.
//!
//! - `receipt/ed25519-sign/<n>B`: the gateway signs a receipt of `n` bytes with Ed25519
//!   (aws-lc-rs `Ed25519KeyPair`, key parsed once, as a gateway would hold it). 100 bytes is
//!   the figure; the other size is the layout the design proposes (`receipt_body`).
//! - `receipt/ed25519-verify/<n>B`: a client checks it (`UnparsedPublicKey` with `ED25519`,
//!   the public key bytes as a client would have them from a pinned receipt-key list).
//! - `receipt/sha256/<n>`: SHA-256 of the encapsulated request the receipt names, for a 1 KiB
//!   and a 64 KiB request (the gateway hashes the request bytes it received; the response
//!   commitment is one more hash of the same kind over the answer).
//!
//! Nothing here is wired into the gateway: the design is on paper only.

use std::hint::black_box;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The receipt the design proposes, for `credit-risk` version `3`: label, HPKE key id,
/// receipt-key id, request hash, response commitment, model digest, model name, version,
/// time. The values are placeholders of the right lengths; only the length matters here.
fn receipt_body() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"sealgate receipt v1\0"); // 20: domain separation
    body.push(1); // 1: HPKE key id (RFC 9458 key_id)
    body.extend_from_slice(&[0x5a; 8]); // 8: receipt signing key id
    body.extend_from_slice(&[0x11; 32]); // 32: SHA-256 of the encapsulated request
    body.extend_from_slice(&[0x22; 32]); // 32: salted SHA-256 of the inner response
    body.extend_from_slice(&[0x33; 32]); // 32: the sealed model's identity digest
    let name = b"credit-risk";
    body.push(name.len() as u8); // 1 + 11: model name
    body.extend_from_slice(name);
    let version = b"3";
    body.push(version.len() as u8); // 1 + 1: model version
    body.extend_from_slice(version);
    body.extend_from_slice(&1_796_300_000_u64.to_be_bytes()); // 8: Unix seconds
    body
}

fn receipts(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = key.public_key().as_ref().to_vec();

    let mut group = c.benchmark_group("receipt");
    for message in [vec![0x42_u8; 100], receipt_body()] {
        let n = message.len();
        group.bench_function(format!("ed25519-sign/{n}B"), |b| b.iter(|| key.sign(black_box(&message))));
        let signature = key.sign(&message);
        let verifier = UnparsedPublicKey::new(&ED25519, public.clone());
        // Checked once outside the timed loop: a failing verify would measure the wrong path.
        verifier.verify(&message, signature.as_ref()).unwrap();
        group.bench_function(format!("ed25519-verify/{n}B"), |b| {
            b.iter(|| verifier.verify(black_box(&message), black_box(signature.as_ref())).unwrap())
        });
    }
    for (label, len) in [("1KiB", 1024_usize), ("64KiB", 64 * 1024)] {
        let request = vec![0x42_u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("sha256/{label}"), |b| b.iter(|| digest(&SHA256, black_box(&request))));
    }
    group.finish();
}

criterion_group!(benches, receipts);
criterion_main!(benches);

//! What one encrypted request costs the gateway's CPU, measured in one run against the
//! reference implementation and against the floor.
//!
//! `cargo bench -p sealgate-protocol --bench server_cost` (the `aws-lc` feature, on by
//! default, is required). Figures and targets are in docs/PERFORMANCE.md.
//!
//! - `server/<kem>/...`: decapsulate a 1 KiB encapsulated request and encapsulate a 1 KiB
//!   response (AES-128-GCM, HKDF-SHA256), what `gateway.rs` does per request, with the
//!   response nonce from the operating system's RNG as in the gateway. For our protocol on
//!   each backend, for the `ohttp` crate 0.8 (its pure-Rust backend, the `hpke` crate), and
//!   for the floor: one aws-lc-rs X25519 agreement with a parsed private key (X25519), or one
//!   aws-lc-rs ML-KEM-768 decapsulation plus one X25519 agreement (X-Wing).
//! - `client/<kem>/...`: encapsulating a 1 KiB request, what a client pays per request.
//!
//! The same encapsulated request is decapsulated in every iteration: the protocol crate
//! keeps no replay state, so each iteration does exactly the work of a fresh request.

use std::hint::black_box;

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::kem::{DecapsulationKey, ML_KEM_768};
use criterion::{Criterion, criterion_group, criterion_main};
use sealgate_protocol::{Aead, Backend, ClientRequest, GatewayKey, GatewayKeys, Kdf, Kem, SymmetricSuite};

const BODY_LEN: usize = 1024;
const SUITE: SymmetricSuite = SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm);

fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn ohttp_kem(kem: Kem) -> ohttp::hpke::Kem {
    match kem {
        Kem::X25519HkdfSha256 => ohttp::hpke::Kem::X25519Sha256,
        Kem::XWing => ohttp::hpke::Kem::XWing,
        other => unreachable!("{other:?}"),
    }
}

fn ours(kem: Kem, backend: Backend) -> (GatewayKeys, Vec<u8>) {
    let key = GatewayKey::generate(1, kem, vec![SUITE], &mut os_rng()).unwrap().with_backend(backend).unwrap();
    let gateway = GatewayKeys::new(vec![key]).unwrap();
    let (request, _) = ClientRequest::new(&gateway.configs()[0], SUITE)
        .unwrap()
        .with_backend(backend)
        .encapsulate(&[0x42; BODY_LEN], &mut os_rng())
        .unwrap();
    (gateway, request)
}

fn ohttp_server(kem: Kem) -> (ohttp::Server, Vec<u8>, Vec<u8>) {
    let suite = ohttp::SymmetricSuite::new(ohttp::hpke::Kdf::HkdfSha256, ohttp::hpke::Aead::Aes128Gcm);
    let config = ohttp::KeyConfig::new(1, ohttp_kem(kem), vec![suite]).unwrap();
    let encoded = config.encode().unwrap();
    let server = ohttp::Server::new(config).unwrap();
    let (request, _) =
        ohttp::ClientRequest::from_encoded_config(&encoded).unwrap().encapsulate(&[0x42; BODY_LEN]).unwrap();
    (server, request, encoded)
}

fn server_cost(c: &mut Criterion) {
    let response = vec![0x24; BODY_LEN];
    for kem in Kem::ALL {
        let mut group = c.benchmark_group(format!("server/{}", kem.name()));
        for &backend in Backend::ALL {
            let (gateway, request) = ours(kem, backend);
            group.bench_function(format!("sealgate-{}", backend.name()), |b| {
                let mut rng = os_rng();
                b.iter(|| {
                    let (inner, responder) = gateway.decapsulate(black_box(&request)).unwrap();
                    black_box(inner);
                    black_box(responder.encapsulate(&response, &mut rng).unwrap())
                })
            });
        }

        let (server, request, _) = ohttp_server(kem);
        group.bench_function("ohttp-crate", |b| {
            b.iter(|| {
                let (inner, responder) = server.decapsulate(black_box(&request)).unwrap();
                black_box(inner);
                black_box(responder.encapsulate(&response).unwrap())
            })
        });

        // The floor: the public-key operations alone, keys parsed beforehand.
        let x25519 = agreement::PrivateKey::generate(&X25519).unwrap();
        let peer = agreement::PrivateKey::generate(&X25519).unwrap().compute_public_key().unwrap();
        let peer = peer.as_ref().to_vec();
        match kem {
            Kem::X25519HkdfSha256 => group.bench_function("floor-aws-lc-x25519-agreement", |b| {
                b.iter(|| {
                    let peer = UnparsedPublicKey::new(&X25519, black_box(&peer[..]));
                    agreement::agree(&x25519, peer, (), |dh| Ok(black_box(dh[0]))).unwrap()
                })
            }),
            _ => {
                let ml_kem = DecapsulationKey::generate(&ML_KEM_768).unwrap();
                let (ciphertext, _) = ml_kem.encapsulation_key().unwrap().encapsulate().unwrap();
                let ciphertext = ciphertext.as_ref().to_vec();
                group.bench_function("floor-aws-lc-mlkem768-decap+x25519-agreement", |b| {
                    b.iter(|| {
                        let ss = ml_kem.decapsulate(black_box(&ciphertext[..]).into()).unwrap();
                        let peer = UnparsedPublicKey::new(&X25519, black_box(&peer[..]));
                        agreement::agree(&x25519, peer, (), |dh| Ok(black_box(dh[0] ^ ss.as_ref()[0]))).unwrap()
                    })
                })
            }
        };
        group.finish();
    }
}

fn client_cost(c: &mut Criterion) {
    let request = vec![0x42; BODY_LEN];
    for kem in Kem::ALL {
        let mut group = c.benchmark_group(format!("client/{}", kem.name()));
        let (gateway, _) = ours(kem, Backend::default());
        let config = gateway.configs()[0].clone();
        for &backend in Backend::ALL {
            group.bench_function(format!("sealgate-{}", backend.name()), |b| {
                let mut rng = os_rng();
                b.iter(|| {
                    ClientRequest::new(black_box(&config), SUITE)
                        .unwrap()
                        .with_backend(backend)
                        .encapsulate(&request, &mut rng)
                        .unwrap()
                })
            });
        }
        let (_, _, encoded) = ohttp_server(kem);
        group.bench_function("ohttp-crate", |b| {
            b.iter(|| {
                ohttp::ClientRequest::from_encoded_config(black_box(&encoded)).unwrap().encapsulate(&request).unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, server_cost, client_cost);
criterion_main!(benches);

//! What streaming costs per chunk: chunked OHTTP (draft-ietf-ohai-chunked-ohttp-08) on each
//! backend, without the per-request HPKE setup that `server_cost.rs` measures.
//!
//! `cargo bench -p sealgate-protocol --bench chunked`.
//!
//! - `open_request/<backend>`: the gateway opens 256 request chunks of 256 bytes (an NDJSON
//!   line each) and the final chunk, fed as one slice; the HPKE context is set up outside
//!   the timing from a saved header.
//! - `seal_response/<backend>`: the gateway seals 256 response chunks of 256 bytes and the
//!   final chunk, nonce derivation included.
//!
//! AES-128-GCM, X25519. Throughput is reported in plaintext bytes.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealgate_protocol::chunked::{ChunkedClientRequest, RequestHeaderReader};
use sealgate_protocol::{Aead, Backend, GatewayKey, GatewayKeys, Kdf, Kem, SymmetricSuite};

const CHUNKS: usize = 256;
const CHUNK_LEN: usize = 256;
const SUITE: SymmetricSuite = SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm);

fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes((CHUNKS * CHUNK_LEN) as u64));
    for &backend in Backend::ALL {
        let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, vec![SUITE], &mut os_rng())
            .unwrap()
            .with_backend(backend)
            .unwrap();
        let gateway = GatewayKeys::new(vec![key]).unwrap();
        let (header, mut sealer, _) = ChunkedClientRequest::new(&gateway.configs()[0], SUITE)
            .unwrap()
            .with_backend(backend)
            .start(&mut os_rng())
            .unwrap();
        let mut chunks = Vec::new();
        for _ in 0..CHUNKS {
            chunks.extend(sealer.seal_chunk(&[0x42; CHUNK_LEN]).unwrap());
        }
        chunks.extend(sealer.finish(b"").unwrap());
        let open = || {
            let mut reader = RequestHeaderReader::new();
            reader.push(&header).unwrap();
            gateway.decapsulate_chunked(reader).unwrap()
        };

        group.bench_function(format!("open_request/{}", backend.name()), |b| {
            b.iter_batched(
                || open().0,
                |mut opener| {
                    let n = opener.push(black_box(&chunks)).unwrap().len();
                    opener.finish().unwrap();
                    n
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("seal_response/{}", backend.name()), |b| {
            b.iter_batched(
                || open().1,
                |responder| {
                    let (mut out, mut sealer) = responder.start(&mut os_rng()).unwrap();
                    for _ in 0..CHUNKS {
                        out.extend(sealer.seal_chunk(black_box(&[0x42; CHUNK_LEN])).unwrap());
                    }
                    out.extend(sealer.finish(b"").unwrap());
                    out
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

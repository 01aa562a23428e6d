//! What authorization costs one request: `Directory::authorize` with a valid token, an
//! allowlisted model and a rate limit (the full hot-path check: parse the field, SHA-256,
//! look the hash up, compare in constant time, check the allowlist, take from the bucket),
//! among 1, 100 and 10,000 tenants, and the refusal of an unknown token.
//!
//! `cargo bench -p sealgate-server --bench authorization`; results in docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sealgate_server::tenants::{Directory, ModelAllowlist, TenantSpec, Token};

fn directory(tenants: usize) -> (Directory, Vec<u8>) {
    let mut records = Vec::with_capacity(tenants);
    let mut header = Vec::new();
    for i in 0..tenants {
        let token = Token::generate();
        // A rate no benchmark reaches, so every iteration is admitted and pays for the bucket.
        let spec = TenantSpec::new(
            &format!("tenant-{i}"),
            ModelAllowlist::only(["breast-cancer", "credit-risk", "seizure", "minilm"]),
            Some(1e6),
            Some(u32::MAX),
        )
        .expect("a valid tenant");
        if i == tenants / 2 {
            header = format!("Bearer {}", token.expose()).into_bytes();
        }
        records.push(spec.with_token(&token, 0));
    }
    (Directory::from_tenants(records, false), header)
}

fn authorization(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize");
    for tenants in [1, 100, 10_000] {
        let (directory, header) = directory(tenants);
        group.bench_function(format!("allowed, {tenants} tenants"), |b| {
            b.iter(|| directory.authorize(black_box(Some(&header)), black_box(Some("credit-risk"))).is_ok())
        });
    }
    let (directory, _) = directory(100);
    let unknown = format!("Bearer {}", Token::generate().expose()).into_bytes();
    group.bench_function("unknown token, 100 tenants", |b| {
        b.iter(|| directory.authorize(black_box(Some(&unknown)), black_box(Some("credit-risk"))).is_err())
    });
    group.finish();
}

criterion_group!(benches, authorization);
criterion_main!(benches);

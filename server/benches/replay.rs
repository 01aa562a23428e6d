//! What the anti-replay checks cost one request (RFC 9458 section 6.5): `check_date` on the
//! inner `Date` and `ReplayWindow::remember` of its `enc` (SHA-256, a mutex, a set insert and
//! a heap push, and the expired entries dropped), in a steady state of about 1,000 and about
//! 1,000,000 live entries, beside a loop that makes a fresh `enc` and does nothing else, in
//! one run.
//!
//! `cargo bench -p sealgate-server --bench replay`; results in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use sealgate_server::replay::{self, ReplayWindow};

/// A distinct 32-byte `enc` for each `n`, as X25519 requests bring.
fn enc(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&n.to_le_bytes());
    out[8..16].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    out
}

fn bench(c: &mut Criterion) {
    let window = replay::DEFAULT_WINDOW;
    let now = SystemTime::now();
    let date = replay::http_date(now);
    let mut group = c.benchmark_group("replay");
    let mut n = 0u64;
    group.bench_function("baseline (a fresh enc)", |b| {
        b.iter(|| {
            n += 1;
            black_box(enc(n))
        })
    });
    group.bench_function("check_date", |b| {
        b.iter(|| replay::check_date(Some(black_box(date.as_bytes())), now, window).unwrap())
    });
    // Steady state: requests arrive at the rate that keeps `live` entries in a 60 s window,
    // each dated by its arrival on a simulated clock, so older entries expire as new ones
    // come (filled to the steady state first).
    for live in [1_000u64, 1_000_000] {
        let store = ReplayWindow::new(window, 4 << 20);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_150_000);
        let at = |n: u64| start + Duration::from_secs(n * window.as_secs() / live);
        let mut n = 0u64;
        while n < 2 * live {
            store.remember(&enc(n), at(n), at(n));
            n += 1;
        }
        group.bench_function(format!("remember (about {live} live entries)"), |b| {
            b.iter(|| {
                n += 1;
                store.remember(&enc(black_box(n)), at(n), at(n))
            })
        });
        assert!(store.len() as u64 <= live + live / 10, "the window held about {live}: {}", store.len());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

//! What the metrics cost one request: every registry update an answered encapsulated request
//! makes on the hot path (the in-flight gauge, the decapsulation clock and histogram, the key
//! counter, two model lookups, the queue-wait and inference clocks and histograms, the
//! busy-session gauge, the outcome and status-class counters, the whole-request histogram),
//! beside an empty baseline that does the same loop and nothing else, in one run. Also with
//! `--metrics-tenant-label` on (a mutex and a map lookup), a refused request, and the scrape
//! itself (not on the request path).
//!
//! `cargo bench -p sealgate-server --bench metrics`; results in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sealgate_server::metrics::{Metrics, Refusal};

fn registry() -> Metrics {
    let metrics = Metrics::new();
    let models = [("breast-cancer", 2), ("credit-risk", 2), ("seizure", 2), ("minilm", 2)];
    metrics.set_models(models, Duration::from_millis(1200));
    metrics
}

/// The updates of one answered request, in the order the gateway makes them.
fn answered_request(metrics: &Metrics, model: &str, tenant: &str) {
    let started = Instant::now();
    let in_flight = metrics.in_flight();
    let decapsulating = Instant::now();
    metrics.decapsulated(black_box(1), decapsulating.elapsed());
    // The inner router's side.
    let id = metrics.model(Some(model));
    let queued = Instant::now();
    metrics.queue_wait(id, queued.elapsed());
    let busy = metrics.session_busy(id);
    let inference = Instant::now();
    metrics.inference(id, inference.elapsed());
    drop(busy);
    // Back in the outer router.
    metrics.answered(metrics.model(Some(model)), black_box(200));
    metrics.tenant(Some(tenant));
    drop(in_flight);
    metrics.request_finished(started.elapsed());
}

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics per request");
    let model = "credit-risk";
    group.bench_function("baseline (nothing)", |b| b.iter(|| black_box((black_box(model), black_box("clinic")))));
    let metrics = registry();
    group.bench_function("answered request", |b| b.iter(|| answered_request(&metrics, black_box(model), "clinic")));
    let labelled = registry();
    labelled.enable_tenant_label();
    group.bench_function("answered request, tenant label on", |b| {
        b.iter(|| answered_request(&labelled, black_box(model), black_box("clinic")))
    });
    // What of the above is the clock: the four timings the metrics add (the whole-request
    // clock existed before them, for the log line), each a read at start and at end.
    group.bench_function("clock reads alone (8 x Instant)", |b| {
        b.iter(|| {
            for _ in 0..4 {
                let started = Instant::now();
                black_box(started.elapsed());
            }
        })
    });
    group.bench_function("refused request", |b| {
        b.iter(|| {
            let started = Instant::now();
            let in_flight = metrics.in_flight();
            metrics.refused(black_box(Refusal::Decrypt));
            drop(in_flight);
            metrics.request_finished(started.elapsed());
        })
    });
    group.finish();
    c.bench_function("scrape (encode the registry)", |b| b.iter(|| metrics.encode().len()));
}

criterion_group!(benches, per_request);
criterion_main!(benches);

//! The gateway's Prometheus metrics: a registry of atomics, updated on the request path and
//! written out in the Prometheus text format (version 0.0.4) when `/metrics` is scraped.
//!
//! Every label value comes from a fixed set: enums ([`Outcome`], [`Refusal`], status
//! classes, KMS providers and operations), the served model list (which the operator
//! controls; any other path is counted under the model `other`), key identifiers of keys the
//! gateway holds (counted only after a request decapsulated with one), and, only when the
//! operator enables `--metrics-tenant-label`, tenant names. Nothing a client chooses (a model
//! name it invents, a token, a header) and no token hash ever becomes a label, so the scrape
//! can be shown to anyone who may see the gateway's load.
//!
//! The hot path is a handful of relaxed atomic additions: a histogram is an array of bucket
//! counters found by a short search, with no lock and no allocation. Cumulative bucket
//! counts, the `+Inf` bucket and `_count` are computed at scrape time. `benches/metrics.rs`
//! measures the updates one request makes (docs/PERFORMANCE.md).
//!
//! The process has one gateway, so the registry is a process-wide [`global`] that the outer
//! router, the inner router, the KMS providers and the start-up steps update without being
//! handed a reference; benchmarks and tests build their own with [`Metrics::new`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The media type of a scrape (Prometheus text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The model label of requests whose path names no served model.
pub const OTHER_MODEL: &str = "other";

/// Upper bounds of the latency histograms' buckets, in seconds: from 25 µs (a decapsulation)
/// to 30 s (the default request timeout).
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// The same bounds in nanoseconds, for the comparison on the hot path.
const BUCKET_NANOS: [u64; 19] = {
    let mut nanos = [0u64; 19];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// What became of an encapsulated request (`sealgate_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Refused with a 503 before anything was read: the in-flight limit was reached.
    Shed,
    /// Refused before or at decapsulation (see [`Refusal`]).
    Refused,
    /// Decapsulated and answered inside the encryption (with any inner status).
    Answered,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Shed, Outcome::Refused, Outcome::Answered];

    fn label(self) -> &'static str {
        match self {
            Outcome::Shed => "shed",
            Outcome::Refused => "refused",
            Outcome::Answered => "answered",
        }
    }
}

/// Why a request was refused before decapsulation succeeded
/// (`sealgate_requests_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `message/ohttp-req` (415).
    MediaType,
    /// Larger than `--max-body-bytes` (413).
    TooLarge,
    /// The body did not arrive within the request timeout (408).
    Timeout,
    /// The body could not be read (400).
    Unreadable,
    /// Truncated or malformed framing (400).
    Malformed,
    /// Unknown key id or algorithms not offered (422 `ohttp-key`): clients with an old key
    /// configuration.
    KeyConfig,
    /// Decryption failed (400).
    Decrypt,
    /// Decrypted, but the shared replay store could not be asked (503, failing closed).
    ReplayStore,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::MediaType,
        Refusal::TooLarge,
        Refusal::Timeout,
        Refusal::Unreadable,
        Refusal::Malformed,
        Refusal::KeyConfig,
        Refusal::Decrypt,
        Refusal::ReplayStore,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::MediaType => "media-type",
            Refusal::TooLarge => "too-large",
            Refusal::Timeout => "timeout",
            Refusal::Unreadable => "unreadable",
            Refusal::Malformed => "malformed",
            Refusal::KeyConfig => "key-config",
            Refusal::Decrypt => "decrypt",
            Refusal::ReplayStore => "replay-store",
        }
    }
}

/// The KMS providers by name (`sealgate_kms_calls_total{provider}`); any other name is
/// `other`.
const KMS_PROVIDERS: [&str; 5] = ["local", "aws-kms", "pkcs11", "customer-provided", "other"];

/// The KMS operations the audited providers perform.
const KMS_OPS: [&str; 4] = ["generate", "wrap", "unwrap", "other"];

/// Why a decrypted request was refused by the anti-replay checks
/// (`sealgate_replay_refusals_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// No `Date`, not an HTTP-date, or outside `--replay-window`.
    Date,
    /// Its `enc` was answered within the window.
    Replayed,
    /// The window was full of live entries.
    Full,
    /// The shared replay store (Redis) could not be asked, and the gateway fails closed.
    StoreUnreachable,
}

impl ReplayRefusal {
    const ALL: [ReplayRefusal; 4] =
        [ReplayRefusal::Date, ReplayRefusal::Replayed, ReplayRefusal::Full, ReplayRefusal::StoreUnreachable];

    fn label(self) -> &'static str {
        match self {
            ReplayRefusal::Date => "date",
            ReplayRefusal::Replayed => "replayed",
            ReplayRefusal::Full => "full",
            ReplayRefusal::StoreUnreachable => "store-unreachable",
        }
    }
}

/// Inner status classes 1xx to 5xx.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Whether the gateway takes traffic (`/readyz`, `sealgate_ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Start-up: keys and models are being unwrapped and loaded.
    Starting,
    /// Listening with every model loaded.
    Ready,
    /// A shutdown signal arrived; requests in flight finish, new ones go elsewhere.
    Draining,
}

/// A latency histogram with the fixed [`LATENCY_BUCKETS`].
pub struct Histogram {
    /// One counter per bucket plus the `+Inf` bucket; not cumulative.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self { buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1], sum_nanos: AtomicU64::new(0) }
    }

    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.partition_point(|&bound| bound < nanos);
        // `partition_point` returns at most `BUCKET_NANOS.len()`, the `+Inf` bucket.
        if let Some(counter) = self.buckets.get(bucket) {
            counter.fetch_add(1, Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    fn encode(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, counter) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += counter.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_nanos.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The metrics of one served model (or of [`OTHER_MODEL`]).
struct ModelMetrics {
    name: String,
    sessions: u64,
    busy: AtomicI64,
    responses: [AtomicU64; STATUS_CLASSES.len()],
    queue_wait: Histogram,
    inference: Histogram,
}

impl ModelMetrics {
    fn new(name: &str, sessions: u64) -> Self {
        Self {
            name: name.to_owned(),
            sessions,
            busy: AtomicI64::new(0),
            responses: [const { AtomicU64::new(0) }; STATUS_CLASSES.len()],
            queue_wait: Histogram::new(),
            inference: Histogram::new(),
        }
    }
}

/// A model's place in the registry: a served model, or [`OTHER_MODEL`]. Found once per
/// request with [`Metrics::model`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelId(usize);

/// The registry. See the module documentation.
pub struct Metrics {
    requests: [AtomicU64; Outcome::ALL.len()],
    refused: [AtomicU64; Refusal::ALL.len()],
    replay_refused: [AtomicU64; ReplayRefusal::ALL.len()],
    replay_store_errors: AtomicU64,
    request_duration: Histogram,
    decapsulation: Histogram,
    in_flight: AtomicI64,
    in_flight_limit: AtomicU64,
    /// Requests decapsulated with each key id (a key id is one byte).
    by_key: [AtomicU64; 256],
    /// `[provider][op]` calls and failures.
    kms_calls: [[AtomicU64; KMS_OPS.len()]; KMS_PROVIDERS.len()],
    kms_failures: [[AtomicU64; KMS_OPS.len()]; KMS_PROVIDERS.len()],
    /// The served models, then [`OTHER_MODEL`] last; set once the models are loaded.
    models: OnceLock<Box<[ModelMetrics]>>,
    model_load_nanos: AtomicU64,
    readiness: AtomicU8,
    tenant_label: AtomicBool,
    tenants: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The process's registry.
pub fn global() -> &'static Metrics {
    static GLOBAL: Metrics = Metrics::new();
    &GLOBAL
}

/// Decrements the in-flight gauge when the request it counts ends (see
/// [`Metrics::in_flight`]).
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Decrements a model's busy-session gauge when the inference holding the session ends
/// (see [`Metrics::session_busy`]).
pub struct SessionBusy<'a>(Option<&'a AtomicI64>);

impl Drop for SessionBusy<'_> {
    fn drop(&mut self) {
        if let Some(busy) = self.0 {
            busy.fetch_sub(1, Relaxed);
        }
    }
}

impl Metrics {
    /// An empty registry with no models.
    pub const fn new() -> Self {
        Self {
            requests: [const { AtomicU64::new(0) }; Outcome::ALL.len()],
            refused: [const { AtomicU64::new(0) }; Refusal::ALL.len()],
            replay_refused: [const { AtomicU64::new(0) }; ReplayRefusal::ALL.len()],
            replay_store_errors: AtomicU64::new(0),
            request_duration: Histogram::new(),
            decapsulation: Histogram::new(),
            in_flight: AtomicI64::new(0),
            in_flight_limit: AtomicU64::new(0),
            by_key: [const { AtomicU64::new(0) }; 256],
            kms_calls: [const { [const { AtomicU64::new(0) }; KMS_OPS.len()] }; KMS_PROVIDERS.len()],
            kms_failures: [const { [const { AtomicU64::new(0) }; KMS_OPS.len()] }; KMS_PROVIDERS.len()],
            models: OnceLock::new(),
            model_load_nanos: AtomicU64::new(0),
            readiness: AtomicU8::new(0),
            tenant_label: AtomicBool::new(false),
            tenants: Mutex::new(BTreeMap::new()),
        }
    }

    /// Declares the served models (name and sessions), once the models are loaded, with how
    /// long loading took. Later calls are ignored: the model list of a running gateway is
    /// fixed.
    pub fn set_models<'n>(&self, models: impl IntoIterator<Item = (&'n str, usize)>, load_time: Duration) {
        let mut table: Vec<ModelMetrics> = Vec::new();
        for (name, sessions) in models {
            match table.iter_mut().find(|m| m.name == name) {
                // Several versions of one model share its name label.
                Some(m) => m.sessions += sessions as u64,
                None => table.push(ModelMetrics::new(name, sessions as u64)),
            }
        }
        table.push(ModelMetrics::new(OTHER_MODEL, 0));
        let _ = self.models.set(table.into_boxed_slice());
        self.model_load_nanos.store(u64::try_from(load_time.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Records the in-flight limit (`--max-in-flight`), shown beside the gauge.
    pub fn set_in_flight_limit(&self, limit: usize) {
        self.in_flight_limit.store(limit as u64, Relaxed);
    }

    /// Counts requests per tenant name from now on (`--metrics-tenant-label`).
    pub fn enable_tenant_label(&self) {
        self.tenant_label.store(true, Relaxed);
    }

    /// The label of `name` when it is a served model, else [`OTHER_MODEL`]'s.
    pub fn model(&self, name: Option<&str>) -> ModelId {
        let Some(models) = self.models.get() else { return ModelId(usize::MAX) };
        let other = models.len() - 1;
        let found = name.and_then(|name| models[..other].iter().position(|m| m.name == name));
        ModelId(found.unwrap_or(other))
    }

    fn model_metrics(&self, id: ModelId) -> Option<&ModelMetrics> {
        self.models.get()?.get(id.0)
    }

    /// A request was shed before anything was read.
    pub fn shed(&self) {
        self.requests[0].fetch_add(1, Relaxed);
    }

    /// A request holds an in-flight permit until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    /// A request was refused before decapsulation succeeded.
    pub fn refused(&self, reason: Refusal) {
        self.requests[1].fetch_add(1, Relaxed);
        self.refused[reason as usize].fetch_add(1, Relaxed);
    }

    /// A decrypted request refused by the anti-replay checks (it is still answered, inside
    /// the encryption, and counted by its inner status too).
    pub fn replay_refused(&self, reason: ReplayRefusal) {
        self.replay_refused[reason as usize].fetch_add(1, Relaxed);
    }

    /// The shared replay store could not be asked about a request (whether the request was
    /// then refused or, with `--replay-store-fail-open`, answered unchecked).
    pub fn replay_store_error(&self) {
        self.replay_store_errors.fetch_add(1, Relaxed);
    }

    /// A request decapsulated with the key `key_id`, taking `elapsed`.
    pub fn decapsulated(&self, key_id: u8, elapsed: Duration) {
        self.by_key[usize::from(key_id)].fetch_add(1, Relaxed);
        self.decapsulation.observe(elapsed);
    }

    /// A decapsulated request was answered with the inner `status` for `model`.
    pub fn answered(&self, model: ModelId, status: u16) {
        self.requests[2].fetch_add(1, Relaxed);
        let class = usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        if let Some(m) = self.model_metrics(model) {
            m.responses[class].fetch_add(1, Relaxed);
        }
    }

    /// An admitted request ended (any outcome) after `elapsed`.
    pub fn request_finished(&self, elapsed: Duration) {
        self.request_duration.observe(elapsed);
    }

    /// The authorized tenant of an answered request; counted only with
    /// `--metrics-tenant-label`.
    pub fn tenant(&self, tenant: Option<&str>) {
        if !self.tenant_label.load(Relaxed) {
            return;
        }
        let Some(tenant) = tenant else { return };
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        match tenants.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                tenants.insert(tenant.to_owned(), 1);
            }
        }
    }

    /// An inference waited `elapsed` for a session of `model`.
    pub fn queue_wait(&self, model: ModelId, elapsed: Duration) {
        if let Some(m) = self.model_metrics(model) {
            m.queue_wait.observe(elapsed);
        }
    }

    /// An inference of `model` ran for `elapsed` (on its blocking thread, serialization
    /// included).
    pub fn inference(&self, model: ModelId, elapsed: Duration) {
        if let Some(m) = self.model_metrics(model) {
            m.inference.observe(elapsed);
        }
    }

    /// A session of `model` is busy until the guard is dropped.
    pub fn session_busy(&self, model: ModelId) -> SessionBusy<'_> {
        let busy = self.model_metrics(model).map(|m| &m.busy);
        if let Some(busy) = busy {
            busy.fetch_add(1, Relaxed);
        }
        SessionBusy(busy)
    }

    /// A KMS call `op` to `provider` ended, successfully or not.
    pub fn kms_call(&self, provider: &str, op: &str, ok: bool) {
        let p = KMS_PROVIDERS.iter().position(|&n| n == provider).unwrap_or(KMS_PROVIDERS.len() - 1);
        let o = KMS_OPS.iter().position(|&n| n == op).unwrap_or(KMS_OPS.len() - 1);
        self.kms_calls[p][o].fetch_add(1, Relaxed);
        if !ok {
            self.kms_failures[p][o].fetch_add(1, Relaxed);
        }
    }

    /// KMS calls that failed so far, all providers together.
    pub fn kms_failures(&self) -> u64 {
        self.kms_failures.iter().flatten().map(|c| c.load(Relaxed)).sum()
    }

    /// The gateway listens with every model loaded.
    pub fn set_ready(&self) {
        // Never back from draining to ready.
        let _ = self.readiness.compare_exchange(0, 1, Relaxed, Relaxed);
    }

    /// A shutdown signal arrived.
    pub fn set_draining(&self) {
        self.readiness.store(2, Relaxed);
    }

    /// Where the gateway is in its life.
    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Relaxed) {
            0 => Readiness::Starting,
            1 => Readiness::Ready,
            _ => Readiness::Draining,
        }
    }

    /// The `/readyz` answer: whether ready, and a short reason when not.
    pub fn ready(&self) -> Result<(), &'static str> {
        match self.readiness() {
            Readiness::Ready => Ok(()),
            Readiness::Draining => Err("draining"),
            Readiness::Starting if self.kms_failures() > 0 => Err("starting: the KMS is failing or unreachable"),
            Readiness::Starting => Err("starting: loading keys and models"),
        }
    }

    /// The whole registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let o = &mut out;
        family(o, "sealgate_build_info", "gauge", "The gateway's version; always 1.");
        let _ = writeln!(o, "sealgate_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

        family(o, "sealgate_ready", "gauge", "1 when the gateway takes traffic (what /readyz says).");
        let _ = writeln!(o, "sealgate_ready {}", u8::from(self.readiness() == Readiness::Ready));
        family(o, "sealgate_draining", "gauge", "1 from the first shutdown signal on.");
        let _ = writeln!(o, "sealgate_draining {}", u8::from(self.readiness() == Readiness::Draining));

        family(o, "sealgate_requests_total", "counter", "Encapsulated requests by outcome.");
        for (outcome, counter) in Outcome::ALL.iter().zip(&self.requests) {
            let _ = writeln!(o, "sealgate_requests_total{{outcome=\"{}\"}} {}", outcome.label(), counter.load(Relaxed));
        }
        family(o, "sealgate_requests_refused_total", "counter", "Requests refused before decapsulation, by reason.");
        for (reason, counter) in Refusal::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                o,
                "sealgate_requests_refused_total{{reason=\"{}\"}} {}",
                reason.label(),
                counter.load(Relaxed)
            );
        }
        family(
            o,
            "sealgate_replay_refusals_total",
            "counter",
            "Decrypted requests refused by the anti-replay checks (Date outside the window, a replay, the window full, the shared store unreachable).",
        );
        for (reason, counter) in ReplayRefusal::ALL.iter().zip(&self.replay_refused) {
            let _ = writeln!(
                o,
                "sealgate_replay_refusals_total{{reason=\"{}\"}} {}",
                reason.label(),
                counter.load(Relaxed)
            );
        }
        family(
            o,
            "sealgate_replay_store_errors_total",
            "counter",
            "Failed calls to the shared replay store (--replay-store), refused or, when failing open, answered unchecked.",
        );
        let _ = writeln!(o, "sealgate_replay_store_errors_total {}", self.replay_store_errors.load(Relaxed));
        family(o, "sealgate_requests_in_flight", "gauge", "Encapsulated requests being handled.");
        let _ = writeln!(o, "sealgate_requests_in_flight {}", self.in_flight.load(Relaxed).max(0));
        family(o, "sealgate_requests_in_flight_limit", "gauge", "--max-in-flight: beyond it requests are shed.");
        let _ = writeln!(o, "sealgate_requests_in_flight_limit {}", self.in_flight_limit.load(Relaxed));
        family(o, "sealgate_requests_by_key_total", "counter", "Requests decapsulated with each HPKE key id.");
        for (key_id, counter) in self.by_key.iter().enumerate() {
            let n = counter.load(Relaxed);
            if n > 0 {
                let _ = writeln!(o, "sealgate_requests_by_key_total{{key_id=\"{key_id}\"}} {n}");
            }
        }

        family(o, "sealgate_request_duration_seconds", "histogram", "Whole admitted requests, any outcome.");
        self.request_duration.encode(o, "sealgate_request_duration_seconds", "");
        family(o, "sealgate_decapsulation_duration_seconds", "histogram", "HPKE decapsulation of a request.");
        self.decapsulation.encode(o, "sealgate_decapsulation_duration_seconds", "");

        let models: &[ModelMetrics] = self.models.get().map_or(&[], |m| m);
        family(o, "sealgate_inner_responses_total", "counter", "Answered requests by model and inner status class.");
        for m in models {
            for (class, counter) in STATUS_CLASSES.iter().zip(&m.responses) {
                let _ = writeln!(
                    o,
                    "sealgate_inner_responses_total{{model=\"{}\",class=\"{class}\"}} {}",
                    escape(&m.name),
                    counter.load(Relaxed)
                );
            }
        }
        let served = models.split_last().map_or(&[][..], |(_, served)| served);
        family(o, "sealgate_queue_wait_duration_seconds", "histogram", "Wait for a free session, by model.");
        for m in served {
            m.queue_wait.encode(o, "sealgate_queue_wait_duration_seconds", &format!("model=\"{}\"", escape(&m.name)));
        }
        family(o, "sealgate_inference_duration_seconds", "histogram", "Inference and serialization, by model.");
        for m in served {
            m.inference.encode(o, "sealgate_inference_duration_seconds", &format!("model=\"{}\"", escape(&m.name)));
        }
        family(o, "sealgate_sessions", "gauge", "ONNX Runtime sessions of each model.");
        for m in served {
            let _ = writeln!(o, "sealgate_sessions{{model=\"{}\"}} {}", escape(&m.name), m.sessions);
        }
        family(o, "sealgate_sessions_busy", "gauge", "Sessions running an inference, by model.");
        for m in served {
            let _ =
                writeln!(o, "sealgate_sessions_busy{{model=\"{}\"}} {}", escape(&m.name), m.busy.load(Relaxed).max(0));
        }
        family(o, "sealgate_models_load_duration_seconds", "gauge", "Time start-up took to load every model.");
        let _ =
            writeln!(o, "sealgate_models_load_duration_seconds {}", self.model_load_nanos.load(Relaxed) as f64 / 1e9);

        family(o, "sealgate_kms_calls_total", "counter", "KMS calls by provider and operation.");
        family_rows(o, "sealgate_kms_calls_total", &self.kms_calls);
        family(o, "sealgate_kms_failures_total", "counter", "Failed KMS calls by provider and operation.");
        family_rows(o, "sealgate_kms_failures_total", &self.kms_failures);

        if self.tenant_label.load(Relaxed) {
            family(o, "sealgate_tenant_requests_total", "counter", "Authorized requests by tenant.");
            let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            for (tenant, n) in tenants.iter() {
                let _ = writeln!(o, "sealgate_tenant_requests_total{{tenant=\"{}\"}} {n}", escape(tenant));
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The KMS counters: rows of every provider and operation that was used at least once.
fn family_rows(out: &mut String, name: &str, rows: &[[AtomicU64; KMS_OPS.len()]; KMS_PROVIDERS.len()]) {
    for (provider, row) in KMS_PROVIDERS.iter().zip(rows) {
        for (op, counter) in KMS_OPS.iter().zip(row) {
            let n = counter.load(Relaxed);
            if n > 0 {
                let _ = writeln!(out, "{name}{{provider=\"{provider}\",op=\"{op}\"}} {n}");
            }
        }
    }
}

/// A label value escaped for the text format (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Metrics {
        let metrics = Metrics::new();
        metrics.set_models([("breast-cancer", 2), ("credit-risk", 2), ("credit-risk", 1)], Duration::from_millis(1500));
        metrics
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(25));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(3600));
        let mut out = String::new();
        h.encode(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.000025\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.0025\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"30\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count 4\n"), "{out}");
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn unknown_models_are_counted_as_other() {
        let metrics = registry();
        assert_eq!(metrics.model(Some("made-up")), metrics.model(None));
        metrics.answered(metrics.model(Some("made-up")), 404);
        metrics.answered(metrics.model(Some("credit-risk")), 200);
        let text = metrics.encode();
        assert!(text.contains("sealgate_inner_responses_total{model=\"other\",class=\"4xx\"} 1\n"), "{text}");
        assert!(text.contains("sealgate_inner_responses_total{model=\"credit-risk\",class=\"2xx\"} 1\n"), "{text}");
        assert!(!text.contains("made-up"), "{text}");
        // Two versions of one model: one label, their sessions together.
        assert!(text.contains("sealgate_sessions{model=\"credit-risk\"} 3\n"), "{text}");
        assert!(text.contains("sealgate_models_load_duration_seconds 1.5\n"), "{text}");
    }

    #[test]
    fn gauges_follow_their_guards() {
        let metrics = registry();
        let model = metrics.model(Some("breast-cancer"));
        let request = metrics.in_flight();
        let session = metrics.session_busy(model);
        let text = metrics.encode();
        assert!(text.contains("sealgate_requests_in_flight 1\n"), "{text}");
        assert!(text.contains("sealgate_sessions_busy{model=\"breast-cancer\"} 1\n"), "{text}");
        drop((request, session));
        let text = metrics.encode();
        assert!(text.contains("sealgate_requests_in_flight 0\n"), "{text}");
        assert!(text.contains("sealgate_sessions_busy{model=\"breast-cancer\"} 0\n"), "{text}");
    }

    #[test]
    fn outcomes_refusals_keys_and_kms_calls_are_counted() {
        let metrics = registry();
        metrics.shed();
        metrics.refused(Refusal::Decrypt);
        metrics.refused(Refusal::KeyConfig);
        metrics.decapsulated(7, Duration::from_micros(60));
        metrics.kms_call("aws-kms", "unwrap", false);
        metrics.kms_call("local", "unwrap", true);
        metrics.kms_call("somebody-else", "describe", true);
        let text = metrics.encode();
        for line in [
            "sealgate_requests_total{outcome=\"shed\"} 1",
            "sealgate_requests_total{outcome=\"refused\"} 2",
            "sealgate_requests_refused_total{reason=\"decrypt\"} 1",
            "sealgate_requests_refused_total{reason=\"key-config\"} 1",
            "sealgate_requests_by_key_total{key_id=\"7\"} 1",
            "sealgate_decapsulation_duration_seconds_count 1",
            "sealgate_kms_calls_total{provider=\"aws-kms\",op=\"unwrap\"} 1",
            "sealgate_kms_failures_total{provider=\"aws-kms\",op=\"unwrap\"} 1",
            "sealgate_kms_calls_total{provider=\"local\",op=\"unwrap\"} 1",
            "sealgate_kms_calls_total{provider=\"other\",op=\"other\"} 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in:\n{text}");
        }
        assert!(!text.contains("somebody-else"));
        assert_eq!(metrics.kms_failures(), 1);
    }

    #[test]
    fn readiness_moves_forward_only() {
        let metrics = Metrics::new();
        assert_eq!(metrics.ready(), Err("starting: loading keys and models"));
        metrics.kms_call("aws-kms", "unwrap", false);
        assert_eq!(metrics.ready(), Err("starting: the KMS is failing or unreachable"));
        metrics.set_ready();
        assert_eq!(metrics.ready(), Ok(()));
        metrics.set_draining();
        metrics.set_ready();
        assert_eq!(metrics.ready(), Err("draining"));
        let text = metrics.encode();
        assert!(text.contains("sealgate_ready 0\n") && text.contains("sealgate_draining 1\n"), "{text}");
    }

    #[test]
    fn tenants_are_labels_only_when_enabled() {
        let metrics = registry();
        metrics.tenant(Some("clinic"));
        assert!(!metrics.encode().contains("clinic"));
        metrics.enable_tenant_label();
        metrics.tenant(Some("clinic"));
        metrics.tenant(Some("bank\"\n"));
        let text = metrics.encode();
        assert!(text.contains("sealgate_tenant_requests_total{tenant=\"clinic\"} 1\n"), "{text}");
        assert!(text.contains("sealgate_tenant_requests_total{tenant=\"bank\\\"\\n\"} 1\n"), "{text}");
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let metrics = registry();
        metrics.decapsulated(1, Duration::from_micros(60));
        for line in metrics.encode().lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("sealgate_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}

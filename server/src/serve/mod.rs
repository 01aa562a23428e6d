//! `sealgate serve`: the gateway, started as a sequence of named steps.
//!
//! [`run`] reads as the start-up order, one function per step: the data dir, the metrics
//! listener (up early, so `/readyz` can say the gateway is still starting), TLS, the KMS
//! providers, the HPKE keys (`keys.rs`, kept current while serving), the models (the
//! embedded default sealing the demo and real models it has not sealed yet, then ONNX
//! Runtime), the tenant directory, the routers (and, with `--models-refresh`, the thread
//! that adds new versions from the models bucket: `refresh.rs`), then listening until the
//! drain on SIGTERM ends. What one step
//! builds is handed to the next and nothing else is shared, so each step can be read (and
//! changed) on its own. Any failure stops start-up with one line on stderr, printed by
//! `main`. The short steps (data dir, TLS, KMS providers, HPKE keys) live here; the others
//! have a file each in this folder.

mod keys;
mod listen;
mod metrics;
mod models;
mod refresh;
mod routers;
mod signals;
mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use sealgate_models::kms::local;

use crate::data_dir::DataDir;
use crate::listener::ConnectionLimits;
use crate::providers::{KeyRef, KmsArgs, Providers};

/// `sealgate serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML): every option below, keys in snake_case; `SEALGATE_*`
    /// variables override it and flags override both (docs/OPERATIONS.md). `sealgate config
    /// check FILE` shows the effective configuration.
    #[arg(long, env = crate::config::CONFIG_ENV)]
    #[allow(dead_code, reason = "read before clap parses, by config::serve_arguments; here for --help")]
    config: Option<PathBuf>,
    /// Data directory: TLS files, HPKE keys. Created on first start.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "SEALGATE_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Folder of sealed models to serve (`*.sealed`), or `s3://BUCKET/PREFIX/` to serve every
    /// `PREFIX/NAME/VERSION.sealed` there (downloaded into memory at start; AWS_* settings as
    /// for --aws-kms). Default (the embedded default): the
    /// demo models of models/demo and the real models `cargo xtask setup` installs into
    /// .tools/models (seizure-risk, text-embedding; served when installed), each sealed into
    /// DATA_DIR/models with the local KMS key `default` the first time it is served.
    #[arg(long, env = "SEALGATE_MODELS")]
    models: Option<PathBuf>,
    /// Embedded default only: serve the demo models alone, not the real models of
    /// .tools/models. They are about 30 MB to seal the first time, and building their
    /// sessions adds most of a second to every start: the test harness, which starts
    /// hundreds of gateways, passes this.
    #[arg(long, conflicts_with = "models")]
    no_real_models: bool,
    /// Also serve plaintext `*.onnx` files from the models folder. Development only: the
    /// weights then rest unencrypted on disk.
    #[arg(long)]
    danger_allow_plaintext_models: bool,
    /// How often to retry when the KMS (or the models bucket) is unreachable at start-up
    /// (exponential backoff).
    #[arg(long, default_value_t = 5)]
    kms_retries: u32,
    /// With `--models s3://...`: look for new `NAME/VERSION.sealed` objects this often (such
    /// as 60s) and serve them without a restart, checked as at start. A failed look (S3 or
    /// the KMS unreachable, a refused object) is logged; what is served stays served.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    models_refresh: Option<Duration>,
    /// KMS provider and key that wrap a newly generated HPKE private key.
    #[arg(long, default_value = "local:default", value_name = "PROVIDER:KEY")]
    hpke_key_kms: KeyRef,
    #[command(flatten)]
    providers: KmsArgs,
    /// ONNX Runtime shared library (default: $ORT_DYLIB_PATH, then ./.tools/onnxruntime/).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_library: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key replaces the development certificate.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require a client certificate issued by a CA in this PEM file (mTLS, for the
    /// relay-to-gateway hop): a client without one fails the TLS handshake.
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Largest encapsulated request accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Lines of an NDJSON stream (`content-type: application/x-ndjson`) scored at once, and so
    /// the most held in memory per stream; the client's reading paces the rest.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    stream_window: usize,
    /// Largest inner answer, in bytes; larger answers get an inner 413 before they are built.
    #[arg(long, default_value_t = 16 << 20)]
    max_response_bytes: usize,
    /// Seconds allowed for reading a request and for running it.
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
    /// ONNX Runtime sessions per model (requests that run at once per model).
    #[arg(long, default_value_t = 2)]
    sessions_per_model: usize,
    /// Encapsulated requests handled at once; beyond it the gateway answers 503 with
    /// Retry-After before decrypting. Bounds the memory requests hold. Default: 128, or twice
    /// the sessions of all models together when that is more.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Under a standing queue (no request found a session free for 100 ms: sustained
    /// overload), shed a request (503 with Retry-After, before decrypting) that would wait
    /// longer than this for a session: the requests ahead of it times the mean inference
    /// time, over the sessions.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    max_queue_delay: Duration,
    /// The same bound while the queue keeps emptying: how long a burst may wait.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    burst_queue_delay: Duration,
    /// How long a request waits for a free session of its model before an inner 503, such
    /// as 2s or 200ms.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    queue_timeout: Duration,
    /// Anti-replay (RFC 9458 section 6.5): how far an inner request's `Date` may be from this
    /// gateway's clock, either way; a request outside it (or without a `Date`) gets an inner
    /// 400 date problem with the gateway's `Date`, and each request's `enc` is remembered for
    /// as long so that the same bytes posted again are refused without running anything.
    #[arg(long, default_value = "60s", value_parser = parse_replay_window)]
    replay_window: Duration,
    /// Requests remembered at once for the replay window (about 100 bytes each); when it is
    /// full of live entries, new requests get an inner 503 rather than going unchecked.
    #[arg(long, default_value_t = sealgate_server::replay::DEFAULT_CAPACITY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=(1 << 26)))]
    replay_capacity: usize,
    /// Keep the replay window in this Redis, shared by every replica behind the load
    /// balancer, so a request replayed to another replica is refused too:
    /// `redis://HOST:PORT[/DB]`. Default: this process's memory (--replay-capacity).
    /// (Read as text and parsed at start-up, so that a refused URL is never repeated in the
    /// error: it may hold a password by mistake.)
    #[arg(long, env = "SEALGATE_REPLAY_STORE")]
    replay_store: Option<String>,
    /// File holding the --replay-store's password (Redis `requirepass`), one line; never on
    /// the command line or in the configuration file.
    #[arg(long, requires = "replay_store")]
    replay_store_password_file: Option<PathBuf>,
    /// When the --replay-store cannot be asked, answer requests without the replay check
    /// (and count them in sealgate_replay_store_errors_total) instead of refusing them with
    /// 503. Trades replay protection for availability.
    #[arg(long, requires = "replay_store")]
    replay_store_fail_open: bool,
    /// Serve requests that carry no bearer token at all, as if from a tenant allowed every
    /// model without a rate limit. Development only.
    #[arg(long)]
    danger_allow_anonymous: bool,
    /// Browser origin allowed to call the gateway (CORS), such as `https://app.example`;
    /// repeat for several. Default: the gateway's own https origin.
    #[arg(long = "cors-origin", env = "SEALGATE_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Serve the static web app in this folder for paths the gateway does not own.
    #[arg(long = "static")]
    static_dir: Option<PathBuf>,
    /// Benchmarks only: also serve the inference API WITHOUT encryption under
    /// `/danger-plaintext-bench/` (what `sealgate-load --compare-plaintext` measures against).
    /// Refused unless --listen is a loopback address.
    #[arg(long)]
    danger_plaintext_bench: bool,
    #[command(flatten)]
    connections: ConnectionLimits,
    /// Rotate the HPKE keys on this schedule, such as 24h (default: only when
    /// `sealgate keys rotate` is run). The previous keys stay accepted for the interval (at
    /// least --key-cache-max-age plus the request timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    rotate_keys_every: Option<Duration>,
    /// The longest clients may cache the key list (`Cache-Control: max-age`); less when a
    /// scheduled rotation is nearer.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    key_cache_max_age: Duration,
    /// Address of the metrics listener (plain HTTP: `/metrics` in the Prometheus text format,
    /// `/readyz`, `/healthz`). Keep it off the internet; it may not be the --listen address.
    #[arg(long, env = "SEALGATE_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    metrics_listen: SocketAddr,
    /// Also count requests per tenant name (`sealgate_tenant_requests_total{tenant}`). Off by
    /// default: tenant names can be sensitive, and a label per tenant grows the scrape.
    #[arg(long)]
    metrics_tenant_label: bool,
}

/// Runs the gateway: each step in start-up order, then serving until shut down.
pub fn run(args: ServeArgs) -> Result<()> {
    let data = open_data_dir(&args)?;
    let prefetch = models::prefetch(&args)?;
    let metrics_addr = metrics::serve_metrics(&args)?;
    let tls = tls_config(&args, &data)?;
    let kms = kms(&args, &data)?;
    let mut keys = keys::hpke_keys(&args, &data, &kms)?;
    let registry = models::load_models(&args, &data, &kms, prefetch)?;
    let tenants = tenants::tenant_directory(&args, &data, kms.log())?;
    // The models are unwrapped; past start-up the KMS only unwraps keys that rotations add.
    keys.keep_kms(kms);
    let routers = routers::routers(&args, registry, keys.current(), &tenants)?;
    refresh::start(&args, &data, &routers.models_served)?;
    listen::listen(args, &data, tls, routers, tenants, keys, metrics_addr)
}

/// Opens (creating on first start) the data directory. `--danger-plaintext-bench` is
/// checked before it, so a misconfigured benchmark never creates keys or files.
fn open_data_dir(args: &ServeArgs) -> Result<DataDir> {
    anyhow::ensure!(
        !args.danger_plaintext_bench || args.listen.ip().is_loopback(),
        "--danger-plaintext-bench serves inference without encryption and is refused on {}; \
         listen on a loopback address (127.0.0.1 or [::1])",
        args.listen
    );
    DataDir::open(&args.data_dir)
}

/// The TLS configuration: `--tls-cert`/`--tls-key`, else the development certificate of the
/// data dir (created on first start); client certificates with `--client-ca`.
fn tls_config(args: &ServeArgs, data: &DataDir) -> Result<crate::tls::ServerTls> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            data.ensure_dev_tls()?;
            (data.server_cert(), data.server_key())
        }
    };
    crate::tls::server_config(&crate::tls::TlsFiles { cert, key, client_ca: args.client_ca.clone() })
}

/// The audited KMS providers the flags enable, plus the one that wraps the HPKE key. The
/// local key `default` is created when something needs it: the embedded default seals the
/// demo and real models with it, and it is the default `--hpke-key-kms`.
fn kms(args: &ServeArgs, data: &DataDir) -> Result<Providers> {
    let hpke = &args.hpke_key_kms;
    let providers = Providers::open(data, &args.providers, Some(&hpke.provider), "serve")?;
    let default_key_needed = args.models.is_none() || (hpke.provider == local::NAME && hpke.key_id == "default");
    if default_key_needed {
        providers.local().ensure_key("default").context("creating the local KMS key 'default'")?;
    }
    Ok(providers)
}

/// `--replay-window`: a duration from 1 s to 1 h (a longer one only lets a capture be replayed
/// later and holds more in memory).
fn parse_replay_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if window < Duration::from_secs(1) || window > Duration::from_secs(3600) {
        return Err("the replay window must be from 1s to 1h".into());
    }
    Ok(window)
}

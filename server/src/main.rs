//! `sealgate`: the gateway binary.
//!
//! `sealgate serve` with no arguments runs the embedded development default (see
//! [`data_dir`]): a data directory `./.sealgate/` with a local KMS keyring, a development CA,
//! a KMS-sealed HPKE key and the demo models sealed on first start, listening on
//! 127.0.0.1:8443. Every piece can be pointed elsewhere with flags. The other commands
//! (`seal`, `verify`, `rewrap`, `kms`, `audit`, `tenants`) manage sealed artifacts, keys and
//! who may call.

mod authorization;
mod commands;
mod data_dir;
mod gateway;
mod inference;
mod listener;
mod log_throttle;
mod problem;
mod providers;
mod sealed_models;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sealgate_models::runtime;
use sealgate_protocol::GatewayKeys;
use sealgate_server::tenants::{Directory, ModelAllowlist, Store, TenantSpec};
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "sealgate", version, about = "End-to-end encrypted (Oblivious HTTP) inference gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Seal an ONNX model into an envelope-encrypted artifact.
    Seal(commands::seal::SealArgs),
    /// Decrypt an artifact in memory and check it (exit 0 or a clear error).
    Verify(commands::verify::VerifyArgs),
    /// Re-wrap an artifact's data key under another key, or add a recovery key, without
    /// touching the encrypted body.
    Rewrap(commands::seal::RewrapArgs),
    /// Manage KMS keys.
    Kms(commands::kms::KmsCommandArgs),
    /// Check the key-use audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Manage tenants: who may call, which models, how often.
    Tenants(commands::tenants::TenantsArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Data directory: TLS files, HPKE keys. Created on first start.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "SEALGATE_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Folder of sealed models to serve (`*.sealed`). Default: DATA_DIR/models, filled on
    /// first start by sealing the demo models with the local KMS key `default`.
    #[arg(long, env = "SEALGATE_MODELS")]
    models: Option<PathBuf>,
    /// Also serve plaintext `*.onnx` files from the models folder. Development only: the
    /// weights then rest unencrypted on disk.
    #[arg(long)]
    danger_allow_plaintext_models: bool,
    /// How often to retry when the KMS is unreachable at start-up (exponential backoff).
    #[arg(long, default_value_t = 5)]
    kms_retries: u32,
    /// KMS provider and key that wrap a newly generated HPKE private key.
    #[arg(long, default_value = "local:default", value_name = "PROVIDER:KEY")]
    hpke_key_kms: providers::KeyRef,
    #[command(flatten)]
    providers: providers::KmsArgs,
    /// ONNX Runtime shared library (default: $ORT_DYLIB_PATH, then ./.tools/onnxruntime/).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_library: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key replaces the development certificate.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest encapsulated request accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
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
    /// Retry-After before decrypting. Default: twice the sessions of all models together.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// How long a request waits for a free session of its model before an inner 503, such
    /// as 2s or 200ms.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    queue_timeout: Duration,
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
    connections: listener::ConnectionLimits,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SEALGATE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Seal(args) => commands::seal::seal(args),
        Command::Verify(args) => commands::verify::verify(args),
        Command::Rewrap(args) => commands::seal::rewrap(args),
        Command::Kms(args) => commands::kms::run(args),
        Command::Audit(command) => commands::audit::run(command),
        Command::Tenants(args) => commands::tenants::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The demo models folder: `models/demo` relative to the working directory, else to the
/// binary's checkout.
fn default_models_dir() -> PathBuf {
    let relative = PathBuf::from("models/demo");
    if relative.is_dir() {
        return relative;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(|root| root.join(&relative)))
        .filter(|p| p.is_dir())
        .unwrap_or(relative)
}

fn serve(args: ServeArgs) -> Result<()> {
    // Checked before anything else so a misconfigured benchmark never creates keys or files.
    anyhow::ensure!(
        !args.danger_plaintext_bench || args.listen.ip().is_loopback(),
        "--danger-plaintext-bench serves inference without encryption and is refused on {}; \
         listen on a loopback address (127.0.0.1 or [::1])",
        args.listen
    );
    let data = data_dir::DataDir::open(&args.data_dir)?;
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            data.ensure_dev_tls()?;
            (data.server_cert(), data.server_key())
        }
    };
    let tls = tls::server_config(&cert, &key)?;

    let (hpke_provider, hpke_key) = (args.hpke_key_kms.provider.as_str(), args.hpke_key_kms.key_id.as_str());
    let providers = providers::Providers::open(data.root(), &args.providers, Some(hpke_provider), "serve")?;
    let default_key_needed = args.models.is_none() || (hpke_provider == "local" && hpke_key == "default");
    if default_key_needed {
        providers.local().ensure_key("default").context("creating the local KMS key 'default'")?;
    }
    let hpke_kms = providers.get(hpke_provider)?;
    let keys = GatewayKeys::new(data.load_or_create_ohttp_keys(&providers, (hpke_kms, hpke_key))?)
        .context("loading HPKE keys")?;

    let embedded_default = args.models.is_none();
    let models_dir = match args.models {
        Some(dir) => dir,
        None => {
            let local = providers.get("local")?;
            sealed_models::seal_demo_models(&data, &default_models_dir(), (local, "default"))?;
            data.models_dir()
        }
    };
    let library = runtime::find_library(args.ort_library);
    let env = runtime::environment(&library)?;
    let options = sealed_models::LoadOptions {
        dir: &models_dir,
        allow_plaintext: args.danger_allow_plaintext_models,
        sessions: args.sessions_per_model,
        kms_retries: args.kms_retries,
    };
    let registry = sealed_models::load(env, &data, &providers, &options)?;

    let models: Vec<String> = registry.iter().map(|m| format!("{} v{}", m.name(), m.version())).collect();
    let tenant_store = Store::new(data.root());
    let dev_token = if embedded_default { ensure_dev_tenant(&data, &tenant_store)? } else { None };
    let tenants = Arc::new(Directory::from_tenants(tenant_store.load()?, args.danger_allow_anonymous));
    if args.danger_allow_anonymous {
        tracing::warn!(
            "--danger-allow-anonymous: requests WITHOUT a bearer token are served and may call every model; \
             development only"
        );
    } else if tenants.is_empty() {
        tracing::warn!(
            path = %tenant_store.path().display(),
            "there are no tenants: every request is refused with 401 until `sealgate tenants add` creates one"
        );
    }
    let inner_models = Arc::new(inference::Models::new(
        registry,
        inference::InnerLimits { queue_timeout: args.queue_timeout, max_response_bytes: args.max_response_bytes },
    ));
    let total_sessions = inner_models.total_sessions();
    let model_names = inner_models.names();
    let limits = gateway::Limits {
        max_body_bytes: args.max_body_bytes,
        max_response_bytes: args.max_response_bytes,
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        max_in_flight: args.max_in_flight.unwrap_or(2 * total_sessions).max(1),
    };
    let inner = inference::router(inner_models, tenants.clone());
    let configs = keys.configs();
    let gw = Arc::new(gateway::Gateway::new(keys, inner, model_names, limits));
    let plaintext_bench = args.danger_plaintext_bench.then(|| gateway::plaintext_bench_router(gw.clone()));
    let cors_origins =
        if args.cors_origins.is_empty() { vec![format!("https://{}", args.listen)] } else { args.cors_origins.clone() };
    let cors_origins = cors_origins
        .iter()
        .map(|o| {
            let o = o.trim_end_matches('/');
            if !(o.starts_with("https://") || o.starts_with("http://")) {
                anyhow::bail!("--cors-origin {o}: an origin is scheme://host[:port]");
            }
            o.parse().with_context(|| format!("--cors-origin {o}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(dir) = &args.static_dir {
        anyhow::ensure!(dir.is_dir(), "--static {}: not a folder", dir.display());
    }
    let mut app = gateway::router(gw, gateway::WebOptions { cors_origins, static_dir: args.static_dir.clone() });
    if let Some(bench) = plaintext_bench {
        tracing::warn!(
            "--danger-plaintext-bench: inference is ALSO served WITHOUT encryption under /danger-plaintext-bench/ \
             on this loopback address; for benchmarks only, never in production"
        );
        app = app.merge(bench);
    }

    // Blocking threads run inferences, each holding a session permit, so more than the
    // sessions (plus a few for file work) are never needed; the cap keeps a flood of
    // requests from growing the thread count.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(total_sessions + 8)
        .build()
        .context("starting tokio")?;
    let drained = runtime.block_on(async move {
        let listener = listener::bind(args.listen).await?;
        let local = listener.local_addr()?;
        let signals = shutdown_signals();
        tokio::spawn(watch_tenants(tenant_store, tenants));
        // Printed on stdout for people and scripts; the log goes to stderr.
        println!("sealgate listening on https://{local}");
        println!("CA certificate: {}", data.ca_cert().display());
        if let Some(path) = &dev_token {
            println!("dev token: {}", path.display());
        }
        for config in &configs {
            println!("key config {} sha256: {}", config.key_id(), hex::encode(config.sha256()));
        }
        println!("models: {}", models.join(", "));
        tracing::info!(%local, "gateway started");
        let first = signal_count(signals.clone(), 1);
        let second = signal_count(signals, 2);
        listener::serve_tls(listener, tls, app, args.connections, first, second).await
    })?;
    // Dropping the runtime would wait, without a bound, for the blocking threads, and an
    // inference whose request has ended (timed out, or cut off by the drain) may still run
    // on one. They get what is left of the drain timeout; then the process exits anyway.
    match drained.time_left {
        Some(time_left) => runtime.shutdown_timeout(time_left),
        None => drop(runtime),
    }
    tracing::info!("stopped");
    Ok(())
}

/// The embedded default's tenant: on first start (no tenant file yet) a tenant `dev`
/// allowed every model (`--models '*'`: the demo models, and any the developer adds), its
/// token written to `DATA_DIR/dev.token` (0600) for the examples, `sealgate-load
/// --token-file` and the demo page. Returns that file when it exists.
fn ensure_dev_tenant(data: &data_dir::DataDir, store: &Store) -> Result<Option<PathBuf>> {
    let path = data.root().join("dev.token");
    if !store.exists() {
        let spec = TenantSpec::new("dev", ModelAllowlist::All, None, None)?;
        let log = sealgate_models::audit::AuditLog::new(data.root(), providers::actor("serve"));
        let created = store.add_if_missing(spec, commands::tenants::unix_now());
        let event = sealgate_models::audit::Event {
            op: "tenant-add",
            provider: "tenants",
            key_id: "dev",
            artifact: None,
            result: created.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")),
        };
        log.record(&event)?;
        if let Some(token) = created? {
            let mut line = zeroize::Zeroizing::new(token.expose().to_owned());
            line.push('\n');
            data_dir::write_file(&path, line.as_bytes(), 0o600)?;
            tracing::info!(path = %path.display(), "created the development tenant 'dev'");
        }
    }
    Ok(path.is_file().then_some(path))
}

/// Picks up tenant changes without a restart: the file is checked every second (its size,
/// modification time and inode), and at once on SIGHUP. A file that fails to parse is
/// logged and the previous tenants stay in force.
async fn watch_tenants(store: Store, tenants: Arc<Directory>) {
    let stamp = |store: &Store| {
        std::fs::metadata(store.path()).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
        })
    };
    let mut seen = stamp(&store);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => true,
        };
        let now = stamp(&store);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        match store.load() {
            Ok(records) => {
                tenants.replace(records);
                tracing::info!(tenants = tenants.len(), signal = forced, "reloaded the tenant file");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the tenant file could not be read; keeping the tenants loaded before")
            }
        }
    }
}

/// Counts SIGTERM and SIGINT (Ctrl-C) from now on: the first starts the drain, the second
/// ends it at once. A signal whose handler cannot be installed keeps its default action
/// (the process ends at once), which is logged.
fn shutdown_signals() -> watch::Receiver<u32> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle {name}; it will end the gateway without draining");
            None
        }
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM");
    let mut int = install(SignalKind::interrupt(), "SIGINT");
    let (count, signals) = watch::channel(0);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = next_signal(&mut term) => "SIGTERM",
                Some(()) = next_signal(&mut int) => "SIGINT",
                // Both streams end only when the runtime shuts down; nothing is left to count.
                else => return,
            };
            let received = *count.borrow() + 1;
            if received == 1 {
                tracing::info!(signal = name, "shutting down: draining connections (a second signal exits at once)");
            } else {
                tracing::warn!(signal = name, "second signal: exiting without waiting for the drain");
            }
            count.send_replace(received);
        }
    });
    signals
}

/// The next delivery of `signal`; never, when its handler is not installed.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes once `signals` has counted `n` shutdown signals.
async fn signal_count(mut signals: watch::Receiver<u32>, n: u32) {
    if signals.wait_for(|&count| count >= n).await.is_err() {
        // The counting task never ends while the runtime runs; should it, no signal comes.
        std::future::pending::<()>().await;
    }
}

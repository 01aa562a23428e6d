//! The last step of `serve`: the tokio runtime, the listening socket, the start-up lines on
//! stdout, serving until the drain that SIGTERM starts has ended, then the runtime's bounded
//! shutdown. Readiness (`/readyz`) turns true once the socket is bound and false at the first
//! shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::ServeArgs;
use super::keys::{KeyWatch, watch_keys};
use super::routers::Routers;
use super::signals::{shutdown_signals, signal_count};
use super::tenants::{Tenants, watch_tenants};
use crate::data_dir::DataDir;
use crate::listener;
use crate::tls::{Certificates, ServerTls};
use crate::watch::{self, Trigger};

/// Listens on `--listen` and serves `routers.app` over `tls` until shut down.
pub(super) fn listen(
    args: ServeArgs,
    data: &DataDir,
    tls: ServerTls,
    routers: Routers,
    tenants: Tenants,
    keys: KeyWatch,
    metrics_addr: SocketAddr,
) -> Result<()> {
    // Blocking threads run inferences, each holding a session permit, so more than the
    // sessions (plus a few for file work) are never needed; the cap keeps a flood of
    // requests from growing the thread count.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(routers.total_sessions + 8)
        .build()
        .context("starting tokio")?;
    let drained = runtime.block_on(async move {
        let listener = listener::bind(args.listen).await?;
        let local = listener.local_addr()?;
        let signals = shutdown_signals();
        tokio::spawn(watch_tenants(tenants.store, tenants.directory));
        tokio::spawn(watch_certificate(tls.certificates));
        tokio::spawn(watch_keys(keys, routers.gateway.clone()));
        routers.gateway.probe_replay_store().await;
        // Ready from here until the first shutdown signal (`/readyz`, `sealgate_ready`).
        let metrics = sealgate_server::metrics::global();
        metrics.set_ready();
        let draining = signal_count(signals.clone(), 1);
        tokio::spawn(async move {
            draining.await;
            metrics.set_draining();
        });
        print_startup(local, metrics_addr, data, tenants.dev_token.as_deref(), &routers);
        tracing::info!(%local, "gateway started");
        let first = signal_count(signals.clone(), 1);
        let second = signal_count(signals, 2);
        listener::serve_tls(listener, tls.config, routers.app, args.connections, first, second).await
    })?;
    // Dropping the runtime would wait, without a bound, for the blocking threads, and an
    // inference whose request has ended (timed out, or cut off by the drain) may still run
    // on one. They get what is left of the drain timeout; then the process exits anyway.
    match drained.time_left {
        Some(time_left) => runtime.shutdown_timeout(time_left),
        None => drop(runtime),
    }
    // The key watcher may be appending to the audit log on a thread that exit would stop.
    sealgate_models::audit::finish_appends();
    tracing::info!("stopped");
    Ok(())
}

/// Serves a new certificate from the next handshake on when its files change or on SIGHUP;
/// a bad new file is logged and the certificate in force stays.
async fn watch_certificate(certificates: Arc<Certificates>) {
    let files = certificates.files().map(std::path::Path::to_path_buf).to_vec();
    watch::on_change(files, |trigger| match certificates.reload() {
        Ok(()) => tracing::info!(signal = trigger == Trigger::Signal, "reloaded the TLS certificate"),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "the TLS certificate could not be reloaded; keeping the one in force"),
    })
    .await
}

/// The start-up lines, on stdout for people and scripts (the log goes to stderr): the URL,
/// the metrics URL, the CA to trust, the dev token file, each key configuration's SHA-256 and
/// the models.
fn print_startup(
    local: SocketAddr,
    metrics: SocketAddr,
    data: &DataDir,
    dev_token: Option<&std::path::Path>,
    routers: &Routers,
) {
    println!("sealgate listening on https://{local}");
    println!("metrics listening on http://{metrics}/metrics");
    println!("CA certificate: {}", data.ca_cert().display());
    if let Some(path) = dev_token {
        println!("dev token: {}", path.display());
    }
    for config in &routers.key_configs {
        println!("key config {} sha256: {}", config.key_id(), hex::encode(config.sha256()));
    }
    println!("models: {}", routers.models.join(", "));
}

//! The metrics step of `serve`: the second listener, plain HTTP on `--metrics-listen`
//! (loopback by default, never the public address), serving `/metrics` (the Prometheus text
//! format of [`sealgate_server::metrics`]), `/readyz` and `/healthz`.
//!
//! It starts first, before keys and models are unwrapped, so that `/readyz` can say "not
//! ready" while the gateway loads (or waits for a KMS), and it runs on a thread and a
//! single-threaded runtime of its own, so it keeps answering while the gateway drains and
//! while inferences keep the main runtime busy. It ends with the process.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sealgate_server::metrics;

use super::ServeArgs;

/// Binds `--metrics-listen` and serves the metrics there from now on; returns the bound
/// address (printed with the other start-up lines).
pub(super) fn serve_metrics(args: &ServeArgs) -> Result<SocketAddr> {
    let addr = args.metrics_listen;
    let public = args.listen;
    let same_port = addr.port() == public.port() && addr.port() != 0;
    let overlaps = addr.ip() == public.ip() || addr.ip().is_unspecified() || public.ip().is_unspecified();
    anyhow::ensure!(
        !(same_port && overlaps),
        "--metrics-listen {addr} is the public address --listen {public}; the metrics need a port of their own \
         (default 127.0.0.1:9464), which should not be reachable from the internet"
    );
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "--metrics-listen is not a loopback address; keep the metrics port off the internet");
    }
    if args.metrics_tenant_label {
        metrics::global().enable_tenant_label();
    }
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("--metrics-listen {addr}: binding"))?;
    listener.set_nonblocking(true).context("--metrics-listen: a non-blocking socket")?;
    let local = listener.local_addr().context("--metrics-listen: the bound address")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => axum::serve(listener, router()).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            });
        })
        .context("starting the metrics thread")?;
    tracing::info!(%local, "metrics listener started");
    Ok(local)
}

/// `/metrics`, `/readyz` and `/healthz`.
fn router() -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/readyz", get(crate::gateway::readyz))
        .route("/healthz", get(|| async { "ok" }))
}

async fn scrape() -> Response {
    let mut response = metrics::global().encode().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
    response
}

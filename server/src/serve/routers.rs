//! The routers step of `serve`: the inner KServe V2 router over the loaded models, the outer
//! OHTTP gateway in front of it, and the web options (CORS, static files, the plaintext
//! benchmark routes) checked and applied.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::HeaderValue;
use sealgate_models::ModelRegistry;
use sealgate_protocol::{GatewayKeys, KeyConfig};

use super::ServeArgs;
use super::tenants::Tenants;
use crate::{gateway, inference};

/// The application to serve and what start-up prints and sizes from it.
pub(super) struct Routers {
    /// The outer router, the plaintext benchmark routes merged in when asked for.
    pub app: Router,
    /// Sessions of all models together (the most inferences that run at once).
    pub total_sessions: usize,
    /// The published key configurations, printed with their SHA-256.
    pub key_configs: Vec<KeyConfig>,
    /// `name vVERSION` of every loaded model, for the `models:` line.
    pub models: Vec<String>,
    /// The gateway, whose keys the key watcher replaces on rotation.
    pub gateway: Arc<gateway::Gateway>,
    /// The served models, which `--models-refresh` adds versions to.
    pub models_served: Arc<inference::Models>,
}

/// `--max-in-flight` when it is not given (or twice the sessions, when that is more): a cap
/// on the memory requests hold; `--max-queue-delay` is what sheds sustained overload.
const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// Builds the inner router (behind the authorization layer) and the gateway around it.
pub(super) fn routers(
    args: &ServeArgs,
    registry: ModelRegistry,
    keys: GatewayKeys,
    tenants: &Tenants,
) -> Result<Routers> {
    let models: Vec<String> = registry.iter().map(|m| format!("{} v{}", m.name(), m.version())).collect();
    let limits = inference::InnerLimits {
        queue_timeout: args.queue_timeout,
        max_response_bytes: args.max_response_bytes,
        stream_window: args.stream_window,
        max_line_bytes: args.max_body_bytes,
    };
    let pace = Arc::new(crate::admission::Pace::default());
    let inner_models = Arc::new(inference::Models::new(registry, limits, pace.clone()));
    let total_sessions = inner_models.total_sessions();
    let model_names = inner_models.names();
    let limits = gateway::Limits {
        max_body_bytes: args.max_body_bytes,
        max_response_bytes: args.max_response_bytes,
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        max_in_flight: args.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT.max(2 * total_sessions)).max(1),
        max_queue_delay: args.max_queue_delay,
        burst_queue_delay: args.burst_queue_delay,
        key_cache_max_age: args.key_cache_max_age,
        replay_window: args.replay_window,
        replay_capacity: args.replay_capacity,
    };
    sealgate_server::metrics::global().set_in_flight_limit(limits.max_in_flight);
    let models_served = inner_models.clone();
    let inner = inference::router(inner_models, tenants.directory.clone());
    let key_configs = keys.configs();
    let mut gw = gateway::Gateway::new(keys, inner, model_names, limits).with_pace(pace);
    if let Some(url) = &args.replay_store {
        let mut url =
            sealgate_server::redis::RedisUrl::parse(url).map_err(|why| anyhow::anyhow!("--replay-store: {why}"))?;
        if let Some(file) = &args.replay_store_password_file {
            url = url.with_password(read_password(file)?);
        }
        let redis = sealgate_server::redis::Redis::new(url, sealgate_server::redis::DEFAULT_TIMEOUT);
        gw = gw.with_shared_replay(redis, args.replay_store_fail_open);
    }
    let gw = Arc::new(gw);
    let plaintext_bench = args.danger_plaintext_bench.then(|| gateway::plaintext_bench_router(gw.clone()));
    let cors_origins = cors_origins(args)?;
    if let Some(dir) = &args.static_dir {
        anyhow::ensure!(dir.is_dir(), "--static {}: not a folder", dir.display());
    }
    let gateway = gw.clone();
    let mut app = gateway::router(gw, gateway::WebOptions { cors_origins, static_dir: args.static_dir.clone() });
    if let Some(bench) = plaintext_bench {
        tracing::warn!(
            "--danger-plaintext-bench: inference is ALSO served WITHOUT encryption under /danger-plaintext-bench/ \
             on this loopback address; for benchmarks only, never in production"
        );
        app = app.merge(bench);
    }
    Ok(Routers { app, total_sessions, key_configs, models, gateway, models_served })
}

/// The password in `--replay-store-password-file`: its first line, which must not be empty.
fn read_password(file: &std::path::Path) -> Result<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("--replay-store-password-file {}: cannot read it", file.display()))?,
    );
    let password = text.lines().next().unwrap_or_default();
    anyhow::ensure!(!password.is_empty(), "--replay-store-password-file {}: the file is empty", file.display());
    Ok(zeroize::Zeroizing::new(password.to_owned()))
}

/// The origins of `--cors-origin`, by default the gateway's own https origin.
fn cors_origins(args: &ServeArgs) -> Result<Vec<HeaderValue>> {
    let origins =
        if args.cors_origins.is_empty() { vec![format!("https://{}", args.listen)] } else { args.cors_origins.clone() };
    origins
        .iter()
        .map(|o| {
            let o = o.trim_end_matches('/');
            if !(o.starts_with("https://") || o.starts_with("http://")) {
                anyhow::bail!("--cors-origin {o}: an origin is scheme://host[:port]");
            }
            o.parse().with_context(|| format!("--cors-origin {o}"))
        })
        .collect()
}

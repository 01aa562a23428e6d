//! The inner KServe V2 router: the API that exists only inside the encryption.
//!
//! This is an ordinary axum `Router` that is never bound to a socket. The gateway
//! decapsulates a request, turns it into an `http::Request`, and calls this router with
//! `tower::ServiceExt::oneshot`; whatever it answers is encapsulated back to the client.
//! Because its inputs are plaintext, its error messages are built from fixed texts plus
//! tensor names and shapes, never from request values (serde's messages can quote values,
//! so they are not passed through).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sealgate_models::{Model, ModelError, ModelRegistry};
use sealgate_protocol::inference::{ErrorBody, InferenceRequest};
use serde::Serialize;
use tokio::sync::Semaphore;

/// A model with the semaphore that bounds how many requests wait on its session pool.
struct Served {
    model: Arc<Model>,
    slots: Arc<Semaphore>,
}

/// Shared state of the inner router.
pub struct Models {
    registry: ModelRegistry,
    served: Vec<Served>,
}

impl Models {
    /// Wraps a loaded registry.
    pub fn new(registry: ModelRegistry) -> Self {
        let served = registry
            .iter()
            .map(|m| Served { model: m.clone(), slots: Arc::new(Semaphore::new(m.pool_size())) })
            .collect();
        Self { registry, served }
    }

    fn find(&self, name: &str, version: Option<&str>) -> Result<&Served, InnerError> {
        let model = self.registry.get(name, version).ok_or_else(|| unknown_model(name, version))?;
        self.served.iter().find(|s| Arc::ptr_eq(&s.model, &model)).ok_or_else(|| unknown_model(name, version))
    }
}

fn unknown_model(name: &str, version: Option<&str>) -> InnerError {
    let name = sealgate_models::tensor::echo(name);
    match version {
        Some(v) => InnerError(
            StatusCode::NOT_FOUND,
            format!("unknown model '{name}' version '{}'", sealgate_models::tensor::echo(v)),
        ),
        None => InnerError(StatusCode::NOT_FOUND, format!("unknown model '{name}'")),
    }
}

/// An inner error: a status and a KServe `{"error": ...}` body.
#[derive(Debug)]
pub struct InnerError(pub StatusCode, pub String);

impl IntoResponse for InnerError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<ModelError> for InnerError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::InvalidInput(msg) => InnerError(StatusCode::BAD_REQUEST, msg),
            other => {
                tracing::error!(error = %other, "inference failed");
                InnerError(StatusCode::INTERNAL_SERVER_ERROR, "inference failed".into())
            }
        }
    }
}

/// Builds the inner router.
pub fn router(models: Arc<Models>) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models", get(list))
        .route("/v2/models/{name}", get(metadata))
        .route("/v2/models/{name}/versions/{version}", get(metadata_version))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .fallback(|| async { InnerError(StatusCode::NOT_FOUND, "no such inference API route".into()) })
        .with_state(models)
}

#[derive(Serialize)]
struct Health {
    live: bool,
    ready: bool,
}

async fn live() -> axum::Json<Health> {
    axum::Json(Health { live: true, ready: true })
}

async fn ready(State(models): State<Arc<Models>>) -> Response {
    let ready = !models.registry.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(Health { live: true, ready })).into_response()
}

async fn list(State(models): State<Arc<Models>>) -> Response {
    axum::Json(models.registry.list()).into_response()
}

async fn metadata(State(models): State<Arc<Models>>, Path(name): Path<String>) -> Result<Response, InnerError> {
    metadata_of(&models, &name, None)
}

async fn metadata_version(
    State(models): State<Arc<Models>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, InnerError> {
    metadata_of(&models, &name, Some(&version))
}

fn metadata_of(models: &Models, name: &str, version: Option<&str>) -> Result<Response, InnerError> {
    let served = models.find(name, version)?;
    let mut meta = served.model.metadata();
    meta.versions = models.registry.versions(name);
    Ok(axum::Json(meta).into_response())
}

async fn infer(
    State(models): State<Arc<Models>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, InnerError> {
    run(&models, &name, None, &body).await
}

async fn infer_version(
    State(models): State<Arc<Models>>,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, InnerError> {
    run(&models, &name, Some(&version), &body).await
}

async fn run(models: &Models, name: &str, version: Option<&str>, body: &[u8]) -> Result<Response, InnerError> {
    let served = models.find(name, version)?;
    let request: InferenceRequest = serde_json::from_slice(body).map_err(|e| {
        // serde_json's own message may quote a value from the body; report only where.
        InnerError(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not a valid KServe V2 inference request ({} error at line {}, column {})",
                match e.classify() {
                    serde_json::error::Category::Io => "I/O",
                    serde_json::error::Category::Syntax => "JSON syntax",
                    serde_json::error::Category::Data => "schema",
                    serde_json::error::Category::Eof => "unexpected end of input",
                },
                e.line(),
                e.column()
            ),
        )
    })?;
    let _permit = served
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| InnerError(StatusCode::SERVICE_UNAVAILABLE, "the model is shutting down".into()))?;
    let model = served.model.clone();
    let response = tokio::task::spawn_blocking(move || model.infer(&request))
        .await
        .map_err(|_| InnerError(StatusCode::INTERNAL_SERVER_ERROR, "inference failed".into()))??;
    Ok(axum::Json(response).into_response())
}

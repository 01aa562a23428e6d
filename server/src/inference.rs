//! The inner KServe V2 router: the API that exists only inside the encryption.
//!
//! This is an ordinary axum `Router` that is never bound to a socket. The gateway
//! decapsulates a request, turns it into an `http::Request`, and calls this router with
//! `tower::ServiceExt::oneshot`; whatever it answers is encapsulated back to the client.
//! Because its inputs are plaintext, its error messages are built from fixed texts plus
//! tensor names and shapes, never from request values (serde's messages can quote values,
//! so they are not passed through).
//!
//! Every request passes the tenant check first ([`crate::authorization`], layered on in
//! [`router`], so the router cannot be built without it). An inference then waits at most
//! the queue timeout for one of the model's sessions; the permit it gets moves into the
//! blocking closure, so it is held until the inference really ends even when the client's
//! request has timed out, and the next request waits for the session instead of
//! oversubscribing it. The answer is serialized on the same blocking thread with the size
//! cap enforced while writing.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sealgate_models::{Model, ModelError, ModelRegistry};
use sealgate_protocol::inference::{ErrorBody, InferenceRequest};
use sealgate_server::tenants::{Directory, Grant};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::admission::Pace;

/// A model with the semaphore that bounds how many requests wait on its session pool.
#[derive(Clone)]
struct Served {
    model: Arc<Model>,
    slots: Arc<Semaphore>,
    /// Where its inference times are counted.
    pace: Arc<Pace>,
}

/// Limits of the inner API.
#[derive(Debug, Clone, Copy)]
pub struct InnerLimits {
    /// How long a request may wait for one of its model's sessions before an inner 503.
    pub queue_timeout: Duration,
    /// Largest serialized answer, in bytes.
    pub max_response_bytes: usize,
    /// Lines of an NDJSON stream scored at once (and held in memory).
    pub stream_window: usize,
    /// Longest line of an NDJSON stream, in bytes.
    pub max_line_bytes: usize,
}

impl InnerLimits {
    /// The most output values an answer may hold: every value takes at least two bytes of
    /// JSON (a digit and a comma), so an answer with more could never fit.
    fn max_output_elements(&self) -> u64 {
        (self.max_response_bytes / 2) as u64
    }
}

/// Shared state of the inner router.
pub struct Models {
    /// Replaced whole when a version is added (`--models-refresh`); each request resolves its
    /// model in the catalog current when it starts.
    catalog: RwLock<Arc<Catalog>>,
    limits: InnerLimits,
    /// The sessions and the mean inference time, for admission control.
    pace: Arc<Pace>,
}

/// The served models: the registry (which resolves versions) and each model's semaphore.
#[derive(Clone)]
struct Catalog {
    registry: ModelRegistry,
    /// Each served model by name, then version, with its session semaphore.
    served: HashMap<String, HashMap<String, Served>>,
}

impl Models {
    /// Wraps a loaded registry; every inference's time is counted in `pace`.
    pub fn new(registry: ModelRegistry, limits: InnerLimits, pace: Arc<Pace>) -> Self {
        let mut served: HashMap<String, HashMap<String, Served>> = HashMap::new();
        for m in registry.iter() {
            let slots = Arc::new(Semaphore::new(m.pool_size()));
            served
                .entry(m.name().to_owned())
                .or_default()
                .insert(m.version().to_owned(), Served { model: m.clone(), slots, pace: pace.clone() });
        }
        let models = Self { catalog: RwLock::new(Arc::new(Catalog { registry, served })), limits, pace };
        models.pace.set_sessions(models.total_sessions());
        models
    }

    /// The catalog now.
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Serves `model` too: a version `--models-refresh` found. The models already served
    /// keep their sessions and semaphores; a name and version served already is refused.
    pub fn add(&self, model: Model) -> Result<(), ModelError> {
        let mut current = self.catalog.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Catalog::clone(&current);
        let (name, version) = (model.name().to_owned(), model.version().to_owned());
        let slots = Arc::new(Semaphore::new(model.pool_size()));
        next.registry.insert(model)?;
        let Some(model) = next.registry.get(&name, Some(&version)) else {
            return Err(ModelError::Duplicate(format!("{name} version {version}")));
        };
        next.served.entry(name).or_default().insert(version, Served { model, slots, pace: self.pace.clone() });
        *current = Arc::new(next);
        drop(current);
        self.pace.set_sessions(self.total_sessions());
        Ok(())
    }

    /// True when `name` at `version` is served.
    pub fn serves(&self, name: &str, version: &str) -> bool {
        self.catalog().served.get(name).is_some_and(|versions| versions.contains_key(version))
    }

    /// The names of the served models (each once, whatever its versions).
    pub fn names(&self) -> Vec<String> {
        self.catalog().registry.list().models.into_iter().map(|m| m.name).collect()
    }

    /// Sessions of all models together: the most inferences that can run at once.
    pub fn total_sessions(&self) -> usize {
        self.catalog().served.values().flat_map(HashMap::values).map(|s| s.model.pool_size()).sum()
    }

    /// The inner API's limits.
    pub fn limits(&self) -> InnerLimits {
        self.limits
    }

    /// Scores one inference request (`body`, JSON) with `name` (`version`, or the newest):
    /// the serialized answer, or the inner error. What a request and each line of a stream
    /// go through.
    pub async fn score(&self, name: &str, version: Option<&str>, body: &[u8]) -> Result<Vec<u8>, InnerError> {
        let served = self.find(name, version)?;
        score_with(&served, self.limits, body).await
    }

    /// The model a request names: the registry resolves the version (newest when none is
    /// given), the map holds its semaphore.
    fn find(&self, name: &str, version: Option<&str>) -> Result<Served, InnerError> {
        let catalog = self.catalog();
        let model = catalog.registry.get(name, version).ok_or_else(|| unknown_model(name, version))?;
        let served = catalog.served.get(model.name()).and_then(|v| v.get(model.version()));
        served.cloned().ok_or_else(|| unknown_model(name, version))
    }
}

fn unknown_model(name: &str, version: Option<&str>) -> InnerError {
    let name = sealgate_models::tensor::echo(name);
    match version {
        Some(v) => InnerError::new(
            StatusCode::NOT_FOUND,
            format!("unknown model '{name}' version '{}'", sealgate_models::tensor::echo(v)),
        ),
        None => InnerError::new(StatusCode::NOT_FOUND, format!("unknown model '{name}'")),
    }
}

/// An inner error: a status, a KServe `{"error": ...}` body, and for 429 and 503 when to
/// try again. The one place that turns inner failures into responses.
#[derive(Debug)]
pub struct InnerError {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
    www_authenticate: Option<&'static str>,
}

impl InnerError {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message (fixed text, names and shapes only).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error with this status and message (fixed text, names and shapes only).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None, www_authenticate: None }
    }

    /// Adds `Retry-After` (whole seconds, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Adds a `WWW-Authenticate` challenge (RFC 6750 section 3).
    pub fn challenge(mut self, value: &'static str) -> Self {
        self.www_authenticate = Some(value);
        self
    }
}

impl IntoResponse for InnerError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(ErrorBody { error: self.message })).into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<ModelError> for InnerError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::InvalidInput(msg) => InnerError::new(StatusCode::BAD_REQUEST, msg),
            // Fixed text and tensor names only (the runtime's message, which quotes the
            // index, was dropped where the error was made).
            e @ ModelError::InputValues { .. } => InnerError::new(StatusCode::BAD_REQUEST, e.to_string()),
            ModelError::TooLarge(msg) => InnerError::new(StatusCode::PAYLOAD_TOO_LARGE, msg),
            other => {
                // Every variant's text is fixed or names files and tensors; the runtime's own
                // message, which can quote input values, never reaches this point.
                tracing::error!(error = %other, "inference failed");
                InnerError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference failed")
            }
        }
    }
}

/// Builds the inner router, with the tenant check in front of every route.
pub fn router(models: Arc<Models>, tenants: Arc<Directory>) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models", get(list))
        .route("/v2/models/{name}", get(metadata))
        .route("/v2/models/{name}/versions/{version}", get(metadata_version))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        // An NDJSON stream has no size limit of its own (its lines do); a single request is
        // capped where it is read, in `dispatch`.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .fallback(|| async { InnerError::new(StatusCode::NOT_FOUND, "no such inference API route") })
        .with_state(models)
        .layer(axum::middleware::from_fn_with_state(tenants, crate::authorization::authorize))
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
    let ready = !models.catalog().registry.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(Health { live: true, ready })).into_response()
}

/// `GET /v2/models`: only the models the calling tenant may use.
async fn list(State(models): State<Arc<Models>>, Extension(grant): Extension<Grant>) -> Response {
    let mut list = models.catalog().registry.list();
    list.models.retain(|m| grant.allows(&m.name));
    axum::Json(list).into_response()
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
    meta.versions = models.catalog().registry.versions(name);
    Ok(axum::Json(meta).into_response())
}

async fn infer(
    State(models): State<Arc<Models>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, InnerError> {
    dispatch(models, name, None, request).await
}

async fn infer_version(
    State(models): State<Arc<Models>>,
    Path((name, version)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Result<Response, InnerError> {
    dispatch(models, name, Some(version), request).await
}

/// An NDJSON stream goes to [`crate::streaming::score`] (after the model was found, so an
/// unknown model is one 404, not an error line per line); anything else is one request.
async fn dispatch(
    models: Arc<Models>,
    name: String,
    version: Option<String>,
    request: axum::extract::Request,
) -> Result<Response, InnerError> {
    models.find(&name, version.as_deref())?;
    if crate::streaming::is_ndjson(request.headers()) {
        let reauthorize = request.extensions().get::<crate::authorization::Reauthorize>().cloned();
        return Ok(crate::streaming::score(models, name, version, reauthorize, request.into_body()));
    }
    let max = models.limits.max_line_bytes;
    let body = axum::body::to_bytes(request.into_body(), max).await.map_err(|_| {
        InnerError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is larger than {max} bytes; send fewer rows, or stream them as NDJSON"),
        )
    })?;
    let answer = models.score(&name, version.as_deref(), &body).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], answer).into_response())
}

/// Parses, queues for a session of `served`, runs and serializes one inference request.
async fn score_with(served: &Served, limits: InnerLimits, body: &[u8]) -> Result<Vec<u8>, InnerError> {
    let request = parse_request(body)?;
    run_on_session(served, limits, move |model| score_parsed(model, limits, vec![request]))
        .await?
        .pop()
        .unwrap_or_else(|| Err(inference_failed()))
}

/// Parses one KServe V2 inference request. serde_json's own message may quote a value from
/// the body, so only where it failed is reported.
pub fn parse_request(body: &[u8]) -> Result<InferenceRequest, InnerError> {
    serde_json::from_slice(body).map_err(|e| {
        InnerError::new(
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
    })
}

impl Models {
    /// Parses, runs and serializes the request lines `lines` for `name` (`version`, or the
    /// newest) with one session, all on the blocking thread that holds it (so that two groups
    /// of lines use two cores): each line is parsed on its own ([`parse_request`]), those that
    /// parse are stacked into one run of the runtime when they can be ([`Model::infer_batch`]),
    /// and each answer is serialized under the size cap. One result per line, in order. The
    /// outer error (the model busy or unknown) concerns them all.
    pub async fn score_lines(
        &self,
        name: &str,
        version: Option<&str>,
        lines: Vec<Vec<u8>>,
    ) -> Result<Vec<Result<Vec<u8>, InnerError>>, InnerError> {
        let served = self.find(name, version)?;
        let limits = self.limits;
        run_on_session(&served, limits, move |model| {
            // Per line, the parse error or `None` for a request that goes to the run.
            let mut refused: Vec<Option<InnerError>> = Vec::with_capacity(lines.len());
            let mut requests = Vec::with_capacity(lines.len());
            for line in &lines {
                match parse_request(line) {
                    Ok(request) => {
                        requests.push(request);
                        refused.push(None);
                    }
                    Err(e) => refused.push(Some(e)),
                }
            }
            drop(lines);
            let mut answers = score_parsed(model, limits, requests).into_iter();
            refused
                .into_iter()
                .map(|refused| match refused {
                    None => answers.next().unwrap_or_else(|| Err(inference_failed())),
                    Some(e) => Err(e),
                })
                .collect()
        })
        .await
    }
}

fn inference_failed() -> InnerError {
    InnerError::new(StatusCode::INTERNAL_SERVER_ERROR, "inference failed")
}

/// Runs `requests` (stacked when they can be) and serializes each answer with the size cap.
fn score_parsed(
    model: &Model,
    limits: InnerLimits,
    requests: Vec<InferenceRequest>,
) -> Vec<Result<Vec<u8>, InnerError>> {
    if requests.is_empty() {
        return Vec::new();
    }
    tracing::debug!(model = model.name(), requests = requests.len(), "inference started");
    let answers = model.infer_batch(&requests, limits.max_output_elements());
    drop(requests);
    tracing::debug!(model = model.name(), "inference finished");
    answers
        .into_iter()
        .map(|answer| answer.map_err(InnerError::from).and_then(|a| serialize_capped(&a, limits.max_response_bytes)))
        .collect()
}

/// Waits at most the queue timeout for a session of `served`, then runs `job` on a blocking
/// thread that holds it (the permit is released when the job has really ended, also when the
/// client gave up), with the queue, busy and inference metrics around it.
async fn run_on_session<T: Send + 'static>(
    served: &Served,
    limits: InnerLimits,
    job: impl FnOnce(&Model) -> T + Send + 'static,
) -> Result<T, InnerError> {
    let queue_timeout = limits.queue_timeout;
    let metrics = sealgate_server::metrics::global();
    let metrics_model = metrics.model(Some(served.model.name()));
    let queued = std::time::Instant::now();
    let free = served.slots.clone().try_acquire_owned().ok();
    if free.is_some() {
        served.pace.found_free();
    }
    let waited = async {
        match free {
            Some(permit) => Ok(permit),
            None => served.slots.clone().acquire_owned().await,
        }
    };
    let permit = match tokio::time::timeout(queue_timeout, waited).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(InnerError::new(StatusCode::SERVICE_UNAVAILABLE, "the model is shutting down")),
        Err(_) => {
            // A wait that timed out is the one an operator most needs to see.
            metrics.queue_wait(metrics_model, queued.elapsed());
            return Err(InnerError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "model '{}' is busy: no session was free within {}",
                    served.model.name(),
                    humantime::format_duration(queue_timeout)
                ),
            )
            .retry_after(Duration::from_secs(1)));
        }
    };
    metrics.queue_wait(metrics_model, queued.elapsed());
    let (model, pace) = (served.model.clone(), served.pace.clone());
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _busy = metrics.session_busy(metrics_model);
        let started = std::time::Instant::now();
        let out = job(&model);
        let held = started.elapsed();
        metrics.inference(metrics_model, held);
        pace.record(held);
        out
    })
    .await
    .map_err(|_| inference_failed())
}

fn serialize_capped(value: &impl Serialize, max: usize) -> Result<Vec<u8>, InnerError> {
    // Most answers are small: one allocation holds them.
    let mut out = CappedWriter { buf: Vec::with_capacity(max.min(512)), max };
    serde_json::to_writer(&mut out, value).map_err(|_| {
        InnerError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the answer is larger than {max} bytes; send fewer rows or ask for fewer outputs"),
        )
    })?;
    Ok(out.buf)
}

/// A `Vec` that refuses to grow past `max`.
struct CappedWriter {
    buf: Vec<u8>,
    max: usize,
}

impl Write for CappedWriter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes).map(|()| bytes.len())
    }

    // serde_json writes an answer as many small pieces, each through `write_all`.
    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.buf.len().saturating_add(bytes.len()) > self.max {
            return Err(std::io::Error::other("answer over the size cap"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_stops_at_the_cap() {
        let big: Vec<u32> = (0..1000).collect();
        let exact = serde_json::to_vec(&big).unwrap();
        assert_eq!(serialize_capped(&big, exact.len()).unwrap(), exact);
        let refused = serialize_capped(&big, exact.len() - 1).unwrap_err();
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(refused.message.contains("larger than"));
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let response = InnerError::new(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .retry_after(Duration::from_millis(1200))
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response =
            InnerError::new(StatusCode::TOO_MANY_REQUESTS, "x").retry_after(Duration::from_millis(10)).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}

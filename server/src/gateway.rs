//! The outer router: what relays, load balancers and the network can see.
//!
//! `GET /.well-known/ohttp-gateway` publishes the key configurations (RFC 9540);
//! `POST` there takes an encapsulated request, decapsulates it, hands the inner request to
//! the inner KServe router with `oneshot`, and encapsulates the answer. Once decapsulation
//! succeeds the outer status is always 200 and outer headers are fixed, so nothing about
//! the inner request or response (path, model, status, size class aside) leaks outside.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use sealgate_protocol::{GatewayKeys, RequestHeader, ServerResponse, bhttp, media_type, problem_type};
use tower::ServiceExt;
use zeroize::Zeroizing;

use sealgate_server::metrics::{self, Refusal, ReplayRefusal};
use sealgate_server::redis::Redis;
use sealgate_server::replay::{self, DateRefusal, Remembered, ReplayStore, ReplayWindow};

use crate::admission::{Admission, Pace, QueueLimits, Shed};
use crate::log_throttle::{self, LogThrottle};
use crate::problem::Problem;

/// Refusals a client can trigger at will are logged at most once a second each.
static REFUSED: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);
static SHED: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);
static REPLAY: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest encapsulated request accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest inner response body, in bytes.
    pub max_response_bytes: usize,
    /// Time allowed for reading the body and for the inner request.
    pub request_timeout: Duration,
    /// Encapsulated requests handled at once; beyond it the gateway sheds load with an
    /// outer 503 before reading or decrypting anything.
    pub max_in_flight: usize,
    /// The longest a request may be expected to wait for a session under a standing queue;
    /// a request that would wait longer is shed like one beyond `max_in_flight`
    /// ([`crate::admission`]).
    pub max_queue_delay: Duration,
    /// The same while the queue keeps emptying (bursts).
    pub burst_queue_delay: Duration,
    /// The longest a client may cache the key list (`Cache-Control: max-age`); shorter
    /// before a scheduled rotation ([`Gateway::replace_keys`]).
    pub key_cache_max_age: Duration,
    /// How far an inner request's `Date` may be from the gateway's clock (anti-replay,
    /// RFC 9458 section 6.5).
    pub replay_window: Duration,
    /// Requests remembered at once to refuse replays within the window.
    pub replay_capacity: usize,
}

impl Limits {
    /// What [`Admission`] needs of them.
    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_in_flight: self.max_in_flight,
            max_queue_delay: self.max_queue_delay,
            burst_queue_delay: self.burst_queue_delay,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_response_bytes: 16 << 20,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 64,
            max_queue_delay: Duration::from_millis(20),
            burst_queue_delay: Duration::from_millis(500),
            key_cache_max_age: Duration::from_secs(300),
            replay_window: replay::DEFAULT_WINDOW,
            replay_capacity: replay::DEFAULT_CAPACITY,
        }
    }
}

/// Shared state of the outer router.
pub struct Gateway {
    /// The keys accepted now and their encoded list; replaced whole on rotation.
    keys: RwLock<Arc<KeySet>>,
    /// Names of served models: the only path-derived text that may reach the log, so a
    /// client-chosen string never does.
    model_names: Vec<String>,
    inner: Router,
    limits: Limits,
    /// One permit per encapsulated request being handled (`Limits::max_in_flight`,
    /// `Limits::max_queue_delay`).
    admission: Admission,
    /// The requests answered within the replay window, by `enc`: in memory, or in the Redis
    /// the replicas share.
    replay: ReplayStore,
    /// Answer requests unchecked when the shared replay store cannot be asked
    /// (`--replay-store-fail-open`), rather than refusing them.
    replay_fail_open: bool,
}

/// Why [`Gateway::check_fresh`] did not let a request through.
pub(crate) enum Unfresh {
    /// The inner answer to send instead (inside the encryption).
    Answer(bhttp::Response),
    /// The shared replay store could not be asked and the gateway fails closed: a `503`.
    StoreUnreachable,
}

impl Gateway {
    /// Wires the keys and the inner router together.
    pub fn new(keys: GatewayKeys, inner: Router, model_names: Vec<String>, limits: Limits) -> Self {
        let admission = Admission::new(limits.queue_limits(), Arc::new(Pace::default()));
        let keys = RwLock::new(Arc::new(KeySet::new(keys, None)));
        let replay = ReplayStore::Memory(ReplayWindow::new(limits.replay_window, limits.replay_capacity));
        Self { keys, model_names, inner, limits, admission, replay, replay_fail_open: false }
    }

    /// Admits requests by `pace`, the sessions and hold times the inner router measures
    /// (without it only `Limits::max_in_flight` applies).
    pub fn with_pace(mut self, pace: Arc<Pace>) -> Self {
        self.admission = Admission::new(self.limits.queue_limits(), pace);
        self
    }

    /// Keeps the replay window in `redis`, shared with the other replicas, instead of in
    /// memory. When Redis cannot be asked, requests get an outer `503` unless `fail_open`.
    pub fn with_shared_replay(mut self, redis: Redis, fail_open: bool) -> Self {
        self.replay = ReplayStore::shared(redis, self.limits.replay_window);
        self.replay_fail_open = fail_open;
        self
    }

    /// Whether the request whose head is `head` and whose encapsulated key is `enc` may be
    /// answered (RFC 9458 section 6.5): its `Date` within the replay window of now, and its
    /// `enc` not seen within that window. Otherwise, before anything runs, the inner answer
    /// to send instead: a `400` date problem with the gateway's `Date` (by which a client
    /// dates one retry, RFC 9458 section 6.5.2), a `400` for a replay, a `503` when the
    /// window is full; or [`Unfresh::StoreUnreachable`] when the shared store cannot be
    /// asked and the gateway fails closed. The one check of the one-shot and chunked paths.
    pub(crate) async fn check_fresh(&self, head: &bhttp::Request, enc: &[u8]) -> Result<(), Unfresh> {
        let now = SystemTime::now();
        let date = match replay::check_date(head.header("date"), now, self.replay.window()) {
            Ok(date) => date,
            Err(refusal) => {
                metrics::global().replay_refused(ReplayRefusal::Date);
                if let Some(suppressed) = REPLAY.allow() {
                    tracing::warn!(reason = ?refusal, suppressed, "refused a request for its Date (anti-replay)");
                }
                return Err(Unfresh::Answer(date_problem(refusal, now)));
            }
        };
        let remembered = match self.replay.remember(enc, date, now).await {
            Ok(remembered) => remembered,
            Err(error) => {
                metrics::global().replay_store_error();
                if self.replay_fail_open {
                    if let Some(suppressed) = REPLAY.allow() {
                        tracing::warn!(%error, suppressed, "the replay store cannot be asked; answering unchecked (--replay-store-fail-open)");
                    }
                    return Ok(());
                }
                metrics::global().replay_refused(ReplayRefusal::StoreUnreachable);
                if let Some(suppressed) = REPLAY.allow() {
                    tracing::error!(%error, suppressed, "the replay store cannot be asked; refusing requests (503) until it can");
                }
                return Err(Unfresh::StoreUnreachable);
            }
        };
        match remembered {
            Remembered::New => Ok(()),
            Remembered::Replayed => {
                metrics::global().replay_refused(ReplayRefusal::Replayed);
                if let Some(suppressed) = REPLAY.allow() {
                    tracing::warn!(suppressed, "refused a replayed request (its enc was answered within the window)");
                }
                Err(Unfresh::Answer(error_response(
                    StatusCode::BAD_REQUEST,
                    "this request was received before (a replay); it is not answered twice".into(),
                )))
            }
            Remembered::Full => {
                metrics::global().replay_refused(ReplayRefusal::Full);
                if let Some(suppressed) = REPLAY.allow() {
                    tracing::warn!(
                        suppressed,
                        "refused a request: the replay window is full (raise --replay-capacity)"
                    );
                }
                let mut answer = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway cannot remember more requests right now; try again shortly".into(),
                );
                answer.headers.push(bhttp::Field::new("retry-after", "1"));
                Err(Unfresh::Answer(answer))
            }
        }
    }

    /// Says in the log, at start-up, where the replay window is kept and whether a shared
    /// store answers. An unreachable one does not stop start-up: requests are refused
    /// (or, failing open, answered unchecked) until it answers.
    pub async fn probe_replay_store(&self) {
        match &self.replay {
            ReplayStore::Memory(_) => {
                tracing::info!(capacity = self.limits.replay_capacity, "replay window kept in memory (one replica)");
            }
            ReplayStore::Redis { redis, .. } => match redis.ping().await {
                Ok(()) => tracing::info!(store = %redis.url(), "replay window shared in Redis"),
                Err(error) => tracing::error!(
                    store = %redis.url(),
                    %error,
                    fail_open = self.replay_fail_open,
                    "the replay store does not answer; requests are refused until it does unless failing open"
                ),
            },
        }
    }

    /// Replaces the accepted keys (after a rotation). Requests already being handled keep
    /// the set they started with. `next_rotation`, when one is scheduled, shortens the key
    /// list's max-age so no client caches it past the rotation.
    /// The limits every request is held to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The keys in force now; a request keeps the set it started with to its end.
    pub fn key_set_keys(&self) -> GatewayKeys {
        self.key_set().keys.clone()
    }

    /// The names of the served models (for logs and metrics labels).
    pub fn model_names(&self) -> &[String] {
        &self.model_names
    }

    /// The inner KServe router.
    pub fn inner_router(&self) -> Router {
        self.inner.clone()
    }

    pub fn replace_keys(&self, keys: GatewayKeys, next_rotation: Option<SystemTime>) {
        let set = Arc::new(KeySet::new(keys, next_rotation));
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = set;
    }

    /// The key set in force now.
    fn key_set(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// One generation of the gateway's keys: what decapsulates, what `GET` publishes, and when
/// it is due to be replaced by a scheduled rotation.
struct KeySet {
    keys: GatewayKeys,
    encoded: Vec<u8>,
    next_rotation: Option<SystemTime>,
}

impl KeySet {
    fn new(keys: GatewayKeys, next_rotation: Option<SystemTime>) -> Self {
        Self { encoded: keys.encoded_configs(), keys, next_rotation }
    }

    /// The key list's max-age at `now`: the configured cap, or less when the next scheduled
    /// rotation is nearer (zero once it is due).
    fn max_age(&self, cap: Duration, now: SystemTime) -> Duration {
        match self.next_rotation {
            Some(at) => cap.min(at.duration_since(now).unwrap_or(Duration::ZERO)),
            None => cap,
        }
    }
}

/// Browser-facing options of the outer router.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// Origins allowed to call the gateway from a browser (CORS). Empty: no CORS headers,
    /// so only same-origin pages can read answers.
    pub cors_origins: Vec<HeaderValue>,
    /// A folder of static files (a web app) served for every path the gateway does not own.
    pub static_dir: Option<std::path::PathBuf>,
}

/// Builds the outer router.
pub fn router(gateway: Arc<Gateway>, web: WebOptions) -> Router {
    let limit = gateway.limits.max_body_bytes;
    let mut router = Router::new()
        .route(sealgate_protocol::GATEWAY_PATH, get(key_configs).post(relay))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        // The handler enforces the limit itself (to answer with problem+json); this layer
        // only stops axum's default 2 MB cap from applying first.
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(gateway);
    if let Some(dir) = web.static_dir {
        router = router.merge(crate::static_files::router(dir));
    }
    if !web.cors_origins.is_empty() {
        // Only what an OHTTP client needs: GET keys, POST requests with a content type.
        // No credentials: the bearer token travels inside the encryption, not in cookies.
        let cors = tower_http::cors::CorsLayer::new()
            .allow_origin(web.cors_origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600));
        router = router.layer(cors);
    }
    router
}

/// Where [`plaintext_bench_router`] serves the inner API without encryption.
pub const PLAINTEXT_BENCH_PREFIX: &str = "/danger-plaintext-bench";

/// The benchmark-only plaintext path (`sealgate serve --danger-plaintext-bench`, loopback
/// only): `PLAINTEXT_BENCH_PREFIX` + an inner path runs the same inner router as the OHTTP
/// endpoint, with the same body limit, timeout and one log line per request, but no
/// encryption. It takes an in-flight permit like the encrypted path, so both pay for the same
/// admission control. Comparing the two isolates what OHTTP itself costs the server.
pub fn plaintext_bench_router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.limits.max_body_bytes;
    Router::new()
        .route(&format!("{PLAINTEXT_BENCH_PREFIX}/{{*path}}"), axum::routing::any(plaintext_bench))
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(gateway)
}

async fn plaintext_bench(State(gw): State<Arc<Gateway>>, request: Request) -> Result<Response, Problem> {
    let started = Instant::now();
    let _permit = admit(&gw)?;
    let limit = gw.limits.max_body_bytes;
    let (mut parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, limit);
    let body = match tokio::time::timeout(gw.limits.request_timeout, body.collect()).await {
        Err(_) => return Err(Problem::Timeout),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(Problem::PayloadTooLarge { limit }),
        Ok(Err(_)) => return Err(Problem::BadRequest("the request body could not be read")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let inner_path = path.strip_prefix(PLAINTEXT_BENCH_PREFIX).unwrap_or(path);
    // A fresh request, like the one the encrypted path builds from Binary HTTP: the outer
    // router's path parameters travel in the extensions and would confuse the inner
    // router's `Path` extractors.
    let mut inner = Request::new(Body::from(body));
    *inner.uri_mut() = inner_path.parse().map_err(|_| Problem::BadRequest("invalid path"))?;
    *inner.method_mut() = parts.method;
    *inner.headers_mut() = std::mem::take(&mut parts.headers);
    let model = served_model_in(inner.uri().path(), &gw.model_names);
    let fut = gw.inner.clone().oneshot(inner);
    let response = match tokio::time::timeout(gw.limits.request_timeout, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => return Err(Problem::Timeout),
    };
    // Collected like the encrypted path's answer, so both pay for the same copies.
    let (parts, body) = response.into_parts();
    let body = match http_body_util::Limited::new(body, gw.limits.max_response_bytes).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    };
    tracing::info!(
        inner_status = parts.status.as_u16(),
        model = model.as_deref().unwrap_or("-"),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "served PLAINTEXT benchmark request"
    );
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// `/readyz`: 200 once the gateway listens with its models loaded, 503 with the reason
/// before that and from the first shutdown signal on ([`metrics::Metrics::ready`]; the
/// metrics listener answers the same, and keeps answering during the drain).
pub async fn readyz() -> Response {
    match metrics::global().ready() {
        Ok(()) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// A permit for one request ([`Admission::admit`]), or the 503 that sheds it.
fn admit(gw: &Gateway) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
    gw.admission.admit().map_err(|shed| {
        metrics::global().shed();
        if let Some(suppressed) = SHED.allow() {
            match shed {
                Shed::Full { max_in_flight } => {
                    tracing::warn!(max_in_flight, suppressed, "shedding load: 503 before decryption")
                }
                Shed::Delay { expected, limit, standing } => tracing::warn!(
                    expected_wait = ?expected,
                    ?limit,
                    standing_queue = standing,
                    suppressed,
                    "shedding load: 503 before decryption"
                ),
            }
        }
        Problem::Overloaded(shed)
    })
}

async fn key_configs(State(gw): State<Arc<Gateway>>) -> Response {
    let set = gw.key_set();
    let max_age = set.max_age(gw.limits.key_cache_max_age, SystemTime::now()).as_secs();
    // Each fetch of the key list is logged at debug level: the tests count refetches by it.
    tracing::debug!(max_age, "served the key configurations");
    let mut response = set.encoded.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_KEYS));
    let cache_control =
        HeaderValue::from_str(&format!("max-age={max_age}")).unwrap_or_else(|_| HeaderValue::from_static("no-store"));
    headers.insert(header::CACHE_CONTROL, cache_control);
    response
}

async fn relay(State(gw): State<Arc<Gateway>>, request: Request) -> Result<Response, Problem> {
    let started = Instant::now();
    // Shed load before reading or decrypting anything: a refusal here costs almost nothing.
    // The permit lives until the answer is encapsulated (for a chunked request, until its
    // answer has streamed out).
    let permit = admit(&gw)?;
    let metrics = metrics::global();
    if is_media_type(request.headers(), media_type::OHTTP_CHUNKED_REQUEST) {
        let result = crate::chunked_relay::relay(gw.clone(), request, started, permit).await;
        if let Err((reason, _)) = &result {
            metrics.refused(*reason);
            metrics.request_finished(started.elapsed());
        }
        return result.map_err(|(_, problem)| problem);
    }
    let _permit = permit;
    let _in_flight = metrics.in_flight();
    let result = relay_admitted(&gw, request, started).await;
    if let Err((reason, _)) = &result {
        metrics.refused(*reason);
    }
    metrics.request_finished(started.elapsed());
    result.map_err(|(_, problem)| problem)
}

/// True when the request's content type is `expected` (parameters and case aside).
fn is_media_type(headers: &HeaderMap, expected: &str) -> bool {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(expected)
}

/// Logs a refused decapsulation (at most once a second).
pub(crate) fn log_refusal(e: &sealgate_protocol::Error) {
    if let Some(suppressed) = REFUSED.allow() {
        tracing::info!(error = %e, suppressed, "refused encapsulated request");
    }
}

/// The metrics reason of a refused decapsulation.
pub(crate) fn refusal_of(e: &sealgate_protocol::Error) -> Refusal {
    use sealgate_protocol::Error as E;
    match e {
        E::Decrypt => Refusal::Decrypt,
        _ => match Problem::from_decapsulation(e) {
            Problem::KeyConfigMismatch(_) => Refusal::KeyConfig,
            _ => Refusal::Malformed,
        },
    }
}

/// Everything `relay` does once the request holds its in-flight permit; a refusal comes
/// with its reason for the metrics.
async fn relay_admitted(gw: &Gateway, request: Request, started: Instant) -> Result<Response, (Refusal, Problem)> {
    let metrics = metrics::global();
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case(media_type::OHTTP_REQUEST) {
        return Err((Refusal::MediaType, Problem::UnsupportedMediaType));
    }
    let limit = gw.limits.max_body_bytes;
    if content_length(request.headers()).is_some_and(|n| n > limit as u64) {
        return Err((Refusal::TooLarge, Problem::PayloadTooLarge { limit }));
    }
    let body = http_body_util::Limited::new(request.into_body(), limit);
    let body = match tokio::time::timeout(gw.limits.request_timeout, body.collect()).await {
        Err(_) => return Err((Refusal::Timeout, Problem::Timeout)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err((Refusal::TooLarge, Problem::PayloadTooLarge { limit }));
        }
        Ok(Err(_)) => return Err((Refusal::Unreadable, Problem::BadRequest("the request body could not be read"))),
        Ok(Ok(collected)) => collected.to_bytes(),
    };

    let decapsulating = Instant::now();
    // Opened where it arrived: the body's buffer is taken over (copied once when it is
    // shared), the ciphertext decrypted in place, and the inner request's content handed on as
    // a slice of that buffer, never copied again; the buffer is wiped when its last slice is
    // dropped. The set current now serves this request to its end, even if a rotation
    // replaces it.
    let mut buffer = Zeroizing::new(Vec::from(body));
    let (range, responder) = gw.key_set().keys.decapsulate_in_place(&mut buffer).map_err(|e| {
        log_refusal(&e);
        (refusal_of(&e), Problem::from_decapsulation(&e))
    })?;
    let suite = responder.suite();
    // The first byte of an encapsulated request is its key id (RFC 9458 section 4.3); it
    // names one of our keys, since decapsulation succeeded with it.
    metrics.decapsulated(buffer.first().copied().unwrap_or_default(), decapsulating.elapsed());
    let buffer = Bytes::from_owner(buffer);

    // From here on the client can read our answer, so every outcome is an encrypted one but
    // one: an unreachable shared replay store (an outer 503 that says nothing of the request).
    let enc = buffer.slice(RequestHeader::LEN..range.start);
    let (inner_response, model, tenant) = answer(gw, buffer.slice(range), &enc).await?;
    drop(buffer);
    metrics.answered(metrics.model(model.as_deref()), inner_response.status);
    metrics.tenant(tenant.as_deref());
    tracing::info!(
        kem = suite.kem.name(),
        aead = suite.aead.name(),
        inner_status = inner_response.status,
        model = model.as_deref().unwrap_or("-"),
        tenant = tenant.as_deref().unwrap_or("-"),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "served encapsulated request"
    );
    Ok(encapsulate(responder, &inner_response))
}

/// Runs the inner request and returns the Binary HTTP response, plus for logging the model
/// name when the path names one and the tenant when the request was authorized.
/// The one outer refusal after decryption: the shared replay store cannot be asked and the
/// gateway fails closed.
async fn answer(gw: &Gateway, inner_bytes: Bytes, enc: &[u8]) -> Result<Answered, (Refusal, Problem)> {
    let (mut request, content) = match bhttp::Request::decode_head(&inner_bytes) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("the decrypted request is not valid Binary HTTP (RFC 9292): {e}");
            return Ok((error_response(StatusCode::BAD_REQUEST, msg), None, None));
        }
    };
    let model = served_model_in(&request.path, &gw.model_names);
    match gw.check_fresh(&request, enc).await {
        Ok(()) => {}
        Err(Unfresh::Answer(refusal)) => return Ok((refusal, model, None)),
        Err(Unfresh::StoreUnreachable) => return Err((Refusal::ReplayStore, Problem::ReplayStoreUnreachable)),
    }
    let body = match content {
        Some(range) => inner_bytes.slice(range),
        // The indeterminate-length form's chunks, joined by the decoder.
        None => Bytes::from_owner(Zeroizing::new(std::mem::take(&mut request.body))),
    };
    drop(inner_bytes);
    let http_request = match to_http_head(request, Body::from(body)) {
        Ok(r) => r,
        Err(msg) => return Ok((error_response(StatusCode::BAD_REQUEST, msg.into()), model, None)),
    };
    let fut = gw.inner.clone().oneshot(http_request);
    let response = match tokio::time::timeout(gw.limits.request_timeout, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => return Ok((error_response(StatusCode::GATEWAY_TIMEOUT, "inference timed out".into()), model, None)),
    };
    let tenant = crate::authorization::tenant_of(&response).map(str::to_owned);
    Ok((from_http(response, gw.limits.max_response_bytes).await, model, tenant))
}

/// An inner answer, with the model its path named and the tenant it was authorized as.
type Answered = (bhttp::Response, Option<String>, Option<String>);

/// The model a request path names, if it is one the gateway serves.
pub(crate) fn served_model_in(path: &str, served: &[String]) -> Option<String> {
    let rest = path.strip_prefix("/v2/models/")?;
    let name = rest.split(['/', '?']).next()?;
    served.iter().find(|s| *s == name).cloned()
}

/// The inner answer to a request refused for its `Date`: `400`, the problem type of RFC 9458
/// section 6.5.1 and the gateway's own `Date`, by which the client dates one retry.
fn date_problem(refusal: DateRefusal, now: SystemTime) -> bhttp::Response {
    let body = serde_json::json!({
        "type": problem_type::DATE,
        "title": "the request's Date is not acceptable",
        "status": 400,
        "detail": refusal.message(),
    });
    let headers = vec![
        bhttp::Field::new("content-type", media_type::PROBLEM_JSON),
        bhttp::Field::new("date", replay::http_date(now)),
    ];
    bhttp::Response::new(400, headers, serde_json::to_vec(&body).unwrap_or_default())
}

/// An inner error answer as Binary HTTP (a KServe `{"error": ...}` body).
pub(crate) fn error_response(status: StatusCode, message: String) -> bhttp::Response {
    let body = serde_json::to_vec(&sealgate_protocol::inference::ErrorBody { error: message }).unwrap_or_default();
    bhttp::Response::new(status.as_u16(), vec![bhttp::Field::new("content-type", "application/json")], body)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Turns the head of a decrypted Binary HTTP request and its content (a slice of the
/// decrypted buffer, or a chunked request's stream) into an `http::Request` for the inner
/// router.
pub(crate) fn to_http_head(request: bhttp::Request, body: Body) -> Result<Request, &'static str> {
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| "invalid method")?;
    let uri: Uri = request.path.parse().map_err(|_| "invalid path")?;
    // Straight into a map sized for the fields, rather than through `Request::builder`,
    // which re-checks each name and value it is given.
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for field in &request.headers {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| "invalid header name")?;
        let value = HeaderValue::from_bytes(&field.value).map_err(|_| "invalid header value")?;
        headers.try_append(name, value).map_err(|_| "too many header fields")?;
    }
    let mut http = Request::new(body);
    *http.method_mut() = method;
    *http.uri_mut() = uri;
    *http.headers_mut() = headers;
    Ok(http)
}

/// Collects the inner router's answer into a Binary HTTP response (bounded in size).
async fn from_http(response: Response, max: usize) -> bhttp::Response {
    let (parts, body) = response.into_parts();
    let body = match http_body_util::Limited::new(body, max).collect().await {
        // `Vec::from` takes over the buffer when the body came as one piece (the inner
        // router's JSON answers do) instead of copying it.
        Ok(c) => Vec::from(c.to_bytes()),
        Err(_) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, "the response is too large".into()),
    };
    let mut response = from_http_head(&parts);
    response.body = body;
    response
}

/// The status and header fields of an inner answer as a Binary HTTP head (no body).
pub(crate) fn from_http_head(parts: &axum::http::response::Parts) -> bhttp::Response {
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_LENGTH)
        .map(|(name, value)| bhttp::Field::new(name.as_str(), value.as_bytes()))
        .collect();
    bhttp::Response::new(parts.status.as_u16(), headers, Vec::new())
}

/// The randomness of response nonces (RFC 9458 section 4.4; the chunked response's too):
/// `rand`'s thread-local ChaCha12 generator, seeded from the operating system and reseeded
/// from it every 64 KiB of output. A nonce must be unpredictable and never repeat; both hold
/// for a CSPRNG seeded from the OS, and it saves the `getrandom` system call that each
/// response otherwise costs (a VM exit on some hypervisors). The HPKE keys themselves come
/// from the OS generator directly (`data_dir`).
pub(crate) fn response_rng() -> rand::rngs::ThreadRng {
    rand::rng()
}

/// Seals the inner answer, encoded straight into the buffer it is encrypted in.
fn encapsulate(responder: ServerResponse, inner: &bhttp::Response) -> Response {
    match responder.encapsulate_with(inner.encoded_len(), |out| inner.encode_into(out), &mut response_rng()) {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_RESPONSE));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "response encapsulation failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    //! The outer router without a socket: `oneshot` with a stand-in inner router that
    //! echoes the decrypted request, so these tests need neither TLS nor ONNX Runtime.

    use axum::body::Bytes;
    use axum::routing::post;
    use sealgate_protocol::{ClientRequest, ClientResponse, GatewayKey, Kem, KeyConfig, SymmetricSuite};

    use super::*;

    fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    fn app(limits: Limits) -> (Router, KeyConfig) {
        let key = GatewayKey::generate(5, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        let config = key.config().clone();
        let inner = Router::new().route("/echo", post(|body: Bytes| async move { body }));
        let gw = Gateway::new(GatewayKeys::new(vec![key]).unwrap(), inner, vec!["echo".into()], limits);
        let web = WebOptions { cors_origins: vec![HeaderValue::from_static("https://app.example")], static_dir: None };
        (router(Arc::new(gw), web), config)
    }

    fn post_ohttp(body: Vec<u8>, content_type: &str) -> Request {
        axum::http::Request::post(sealgate_protocol::GATEWAY_PATH)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    }

    /// `inner` sealed to `config`, dated now as a client dates it.
    fn encapsulated(config: &KeyConfig, inner: &bhttp::Request) -> (Vec<u8>, ClientResponse) {
        let mut inner = inner.clone();
        inner.headers.push(bhttp::Field::new("date", replay::http_date(SystemTime::now())));
        ClientRequest::new(config, SymmetricSuite::ALL[0]).unwrap().encapsulate(&inner.encode(), &mut rng()).unwrap()
    }

    async fn call(app: &Router, request: Request) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
    }

    fn problem_type(body: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(body).unwrap()["type"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_inner_request_keeps_every_field_in_order_and_refuses_bad_ones() {
        let mut request = bhttp::Request::new("POST", "https", "gw", "/v2/models/m/infer?x=1");
        request.headers =
            vec![bhttp::Field::new("accept", "a"), bhttp::Field::new("x-one", "1"), bhttp::Field::new("accept", "b")];
        let http = to_http_head(request, Body::empty()).unwrap();
        assert_eq!(http.method(), Method::POST);
        assert_eq!(http.uri(), "/v2/models/m/infer?x=1");
        let accept: Vec<_> = http.headers().get_all(header::ACCEPT).iter().collect();
        assert_eq!(accept, ["a", "b"], "a repeated field keeps both values, in order");
        assert_eq!(http.headers().len(), 3);

        for (name, value, error) in
            [("bad name", "v", "invalid header name"), ("x-ok", "line\nbreak", "invalid header value")]
        {
            let mut request = bhttp::Request::new("POST", "https", "gw", "/");
            request.headers = vec![bhttp::Field::new(name, value)];
            assert_eq!(to_http_head(request, Body::empty()).unwrap_err(), error);
        }
        let request = bhttp::Request::new("GET", "https", "gw", "not a path");
        assert_eq!(to_http_head(request, Body::empty()).unwrap_err(), "invalid path");
        let request = bhttp::Request::new("G E T", "https", "gw", "/");
        assert_eq!(to_http_head(request, Body::empty()).unwrap_err(), "invalid method");
    }

    #[test]
    fn response_nonces_do_not_repeat() {
        use rand_core::Rng as _;
        let nonces: std::collections::HashSet<[u8; 16]> = (0..10_000)
            .map(|_| {
                let mut nonce = [0_u8; 16];
                response_rng().fill_bytes(&mut nonce);
                nonce
            })
            .collect();
        assert_eq!(nonces.len(), 10_000);
    }

    #[tokio::test]
    async fn publishes_key_configurations() {
        let (app, config) = app(Limits::default());
        let request = axum::http::Request::get(sealgate_protocol::GATEWAY_PATH).body(Body::empty()).unwrap();
        let (status, headers, body) = call(&app, request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], media_type::OHTTP_KEYS);
        assert_eq!(headers[header::CACHE_CONTROL], "max-age=300");
        assert_eq!(KeyConfig::decode_list(&body).unwrap(), vec![config]);
    }

    #[tokio::test]
    async fn a_replaced_key_set_is_published_and_the_old_key_refused() {
        let key = GatewayKey::generate(5, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        let old = key.config().clone();
        let inner = Router::new().route("/echo", post(|body: Bytes| async move { body }));
        let gw = Arc::new(Gateway::new(GatewayKeys::new(vec![key]).unwrap(), inner, vec![], Limits::default()));
        let app = router(gw.clone(), WebOptions::default());
        let (sealed_before, pending) = encapsulated(&old, &bhttp::Request::new("POST", "https", "gw", "/echo"));

        let new = GatewayKey::generate(6, Kem::XWing, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        let new_config = new.config().clone();
        let rotation = SystemTime::now() + Duration::from_secs(42);
        gw.replace_keys(GatewayKeys::new(vec![new]).unwrap(), Some(rotation));
        let get = || axum::http::Request::get(sealgate_protocol::GATEWAY_PATH).body(Body::empty()).unwrap();
        let (_, headers, body) = call(&app, get()).await;
        assert_eq!(KeyConfig::decode_list(&body).unwrap(), vec![new_config]);
        // The max-age counts down to the scheduled rotation (a second may have passed).
        let max_age = headers[header::CACHE_CONTROL].to_str().unwrap().to_owned();
        assert!(["max-age=41", "max-age=42"].contains(&max_age.as_str()), "{max_age}");

        let (status, _, body) = call(&app, post_ohttp(sealed_before, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem_type(&body), sealgate_protocol::problem_type::OHTTP_KEY);
        drop(pending);
    }

    #[test]
    fn the_key_list_max_age_is_capped_by_the_next_rotation() {
        let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        let keys = GatewayKeys::new(vec![key]).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let cap = Duration::from_secs(300);
        assert_eq!(KeySet::new(keys.clone(), None).max_age(cap, now), cap);
        let soon = KeySet::new(keys.clone(), Some(now + Duration::from_secs(20)));
        assert_eq!(soon.max_age(cap, now), Duration::from_secs(20));
        let later = KeySet::new(keys.clone(), Some(now + Duration::from_secs(20_000)));
        assert_eq!(later.max_age(cap, now), cap);
        let due = KeySet::new(keys, Some(now - Duration::from_secs(1)));
        assert_eq!(due.max_age(cap, now), Duration::ZERO, "a rotation is due: do not cache");
    }

    #[tokio::test]
    async fn round_trip_through_the_inner_router() {
        let (app, config) = app(Limits::default());
        let mut inner = bhttp::Request::new("POST", "https", "gw", "/echo");
        inner.body = b"secret features".to_vec();
        let (enc, pending) = encapsulated(&config, &inner);
        let (status, headers, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], media_type::OHTTP_RESPONSE);
        let answer = bhttp::Response::decode(&pending.decapsulate(&body).unwrap()).unwrap();
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"secret features"[..]));
    }

    /// The inner request's content reaches the inner router whole in both Binary HTTP forms:
    /// a slice of the decrypted buffer (known length, here 300 KB) or the indeterminate
    /// form's chunks joined.
    #[tokio::test]
    async fn content_reaches_the_inner_router_in_either_form() {
        let (app, config) = app(Limits::default());
        let large: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
        let mut inner = bhttp::Request::new("POST", "https", "gw", "/echo");
        inner.body = large.clone();
        let (enc, pending) = encapsulated(&config, &inner);
        let (status, _, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::OK);
        let answer = bhttp::Response::decode(&pending.decapsulate(&body).unwrap()).unwrap();
        assert_eq!((answer.status, answer.body.len()), (200, large.len()));
        assert!(answer.body == large);

        let mut head = bhttp::Request::new("POST", "https", "gw", "/echo");
        head.headers.push(bhttp::Field::new("date", replay::http_date(SystemTime::now())));
        let (mut wire, mut encoder) = bhttp::stream::Encoder::request(&head);
        wire.extend(encoder.body(b"secret "));
        wire.extend(encoder.body(b"features"));
        wire.extend(encoder.finish(&[]));
        let (enc, pending) =
            ClientRequest::new(&config, SymmetricSuite::ALL[0]).unwrap().encapsulate(&wire, &mut rng()).unwrap();
        let (status, _, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::OK);
        let answer = bhttp::Response::decode(&pending.decapsulate(&body).unwrap()).unwrap();
        assert_eq!((answer.status, answer.body.as_slice()), (200, &b"secret features"[..]));
    }

    #[tokio::test]
    async fn inner_errors_stay_inside_the_encryption() {
        let (app, config) = app(Limits::default());
        // A route the inner router does not have: the outer status is still 200.
        let (enc, pending) = encapsulated(&config, &bhttp::Request::new("GET", "https", "gw", "/nowhere"));
        let (status, _, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(bhttp::Response::decode(&pending.decapsulate(&body).unwrap()).unwrap().status, 404);

        // Not Binary HTTP at all.
        let (enc, pending) = ClientRequest::new(&config, SymmetricSuite::ALL[2])
            .unwrap()
            .encapsulate(b"\x07not binary http", &mut rng())
            .unwrap();
        let (status, _, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::OK);
        let answer = bhttp::Response::decode(&pending.decapsulate(&body).unwrap()).unwrap();
        assert_eq!(answer.status, 400);
        assert!(String::from_utf8_lossy(&answer.body).contains("Binary HTTP"));
    }

    #[tokio::test]
    async fn outer_errors_are_problem_json() {
        let (app, config) = app(Limits { max_body_bytes: 1000, ..Limits::default() });
        let (good, _) = encapsulated(&config, &bhttp::Request::new("GET", "https", "gw", "/echo"));

        let (status, headers, _) = call(&app, post_ohttp(good.clone(), "text/plain")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(headers[header::CONTENT_TYPE], media_type::PROBLEM_JSON);

        let (status, _, _) = call(&app, post_ohttp(vec![0; 1001], media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

        let (status, _, _) = call(&app, post_ohttp(good[..10].to_vec(), media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let mut wrong_key = good.clone();
        wrong_key[0] ^= 1;
        let (status, _, body) = call(&app, post_ohttp(wrong_key, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem_type(&body), sealgate_protocol::problem_type::OHTTP_KEY);

        let mut tampered = good;
        *tampered.last_mut().unwrap() ^= 1;
        let (status, _, body) = call(&app, post_ohttp(tampered, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem_type(&body), "about:blank");
    }

    #[tokio::test]
    async fn requests_beyond_max_in_flight_are_shed_before_decryption() {
        let (app, config) = app(Limits { max_in_flight: 1, ..Limits::default() });
        // The first request's body never ends, so it holds the only permit.
        let stalled = axum::http::Request::post(sealgate_protocol::GATEWAY_PATH)
            .header(header::CONTENT_TYPE, media_type::OHTTP_REQUEST)
            .body(Body::from_stream(stalled_body()))
            .unwrap();
        let first = tokio::spawn(app.clone().oneshot(stalled));
        tokio::task::yield_now().await;
        let mut shed = None;
        for _ in 0..100 {
            let (enc, _) = encapsulated(&config, &bhttp::Request::new("POST", "https", "gw", "/echo"));
            let (status, headers, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                shed = Some((headers, body));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (headers, body) = shed.expect("the second request is shed while the first holds the permit");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(headers[header::CONTENT_TYPE], media_type::PROBLEM_JSON);
        assert_eq!(problem_type(&body), "about:blank");
        first.abort();
        let _ = first.await;
        // With the permit back, requests are served again.
        let (enc, pending) = encapsulated(&config, &bhttp::Request::new("POST", "https", "gw", "/echo"));
        let (status, _, body) = call(&app, post_ohttp(enc, media_type::OHTTP_REQUEST)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(pending.decapsulate(&body).is_ok());
    }

    #[tokio::test]
    async fn a_body_that_never_finishes_times_out() {
        let (app, _) = app(Limits { request_timeout: Duration::from_millis(200), ..Limits::default() });
        let stalled = stalled_body();
        let request = axum::http::Request::post(sealgate_protocol::GATEWAY_PATH)
            .header(header::CONTENT_TYPE, media_type::OHTTP_REQUEST)
            .body(Body::from_stream(stalled))
            .unwrap();
        let (status, headers, _) = call(&app, request).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(headers[header::CONTENT_TYPE], media_type::PROBLEM_JSON);
    }

    /// A body stream that yields one chunk and then never ends, like a slowloris client.
    fn stalled_body() -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        struct Stalled(bool);
        impl futures_core::Stream for Stalled {
            type Item = Result<Bytes, std::io::Error>;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                if self.0 {
                    std::task::Poll::Pending
                } else {
                    self.0 = true;
                    std::task::Poll::Ready(Some(Ok(Bytes::from_static(b"\x01\x00"))))
                }
            }
        }
        Stalled(false)
    }

    #[tokio::test]
    async fn plaintext_bench_path_exists_only_when_merged_in() {
        let (app, _) = app(Limits::default());
        let request = || {
            axum::http::Request::post(format!("{PLAINTEXT_BENCH_PREFIX}/echo/word?x=1"))
                .body(Body::from("features in the clear"))
                .unwrap()
        };
        let (status, _, _) = call(&app, request()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        // A path parameter, as the KServe routes have: the outer route's own parameter must
        // not reach the inner router's extractor.
        let echo = |axum::extract::Path(word): axum::extract::Path<String>, body: String| async move {
            format!("{word}: {body}")
        };
        let inner = Router::new().route("/echo/{word}", post(echo));
        let gw = Arc::new(Gateway::new(GatewayKeys::new(vec![key]).unwrap(), inner, vec![], Limits::default()));
        let app = router(gw.clone(), WebOptions::default()).merge(plaintext_bench_router(gw));
        let (status, _, body) = call(&app, request()).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"word: features in the clear"[..]));
        // An inner 404 passes through unchanged: there is no encryption to hide it in.
        let missing =
            axum::http::Request::get(format!("{PLAINTEXT_BENCH_PREFIX}/nowhere")).body(Body::empty()).unwrap();
        assert_eq!(call(&app, missing).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn cors_preflight_allows_only_configured_origins() {
        let (app, _) = app(Limits::default());
        let preflight = |origin: &'static str| {
            axum::http::Request::builder()
                .method(Method::OPTIONS)
                .uri(sealgate_protocol::GATEWAY_PATH)
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
                .body(Body::empty())
                .unwrap()
        };
        let (status, headers, _) = call(&app, preflight("https://app.example")).await;
        assert!(status.is_success());
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        let (_, headers, _) = call(&app, preflight("https://evil.example")).await;
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}

//! The outer router: what relays, load balancers and the network can see.
//!
//! `GET /.well-known/ohttp-gateway` publishes the key configurations (RFC 9540);
//! `POST` there takes an encapsulated request, decapsulates it, hands the inner request to
//! the inner KServe router with `oneshot`, and encapsulates the answer. Once decapsulation
//! succeeds the outer status is always 200 and outer headers are fixed, so nothing about
//! the inner request or response (path, model, status, size class aside) leaks outside.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use sealgate_protocol::{GatewayKeys, ServerResponse, bhttp, media_type};
use tower::ServiceExt;
use zeroize::Zeroizing;

use crate::problem::Problem;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest encapsulated request accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest inner response body, in bytes.
    pub max_response_bytes: usize,
    /// Time allowed for reading the body and for the inner request.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1 << 20, max_response_bytes: 16 << 20, request_timeout: Duration::from_secs(30) }
    }
}

/// Shared state of the outer router.
pub struct Gateway {
    keys: GatewayKeys,
    encoded_configs: Vec<u8>,
    inner: Router,
    limits: Limits,
}

impl Gateway {
    /// Wires the keys and the inner router together.
    pub fn new(keys: GatewayKeys, inner: Router, limits: Limits) -> Self {
        let encoded_configs = keys.encoded_configs();
        Self { keys, encoded_configs, inner, limits }
    }
}

/// Builds the outer router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.limits.max_body_bytes;
    Router::new()
        .route(sealgate_protocol::GATEWAY_PATH, get(key_configs).post(relay))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        // The handler enforces the limit itself (to answer with problem+json); this layer
        // only stops axum's default 2 MB cap from applying first.
        .layer(DefaultBodyLimit::max(limit.saturating_add(1)))
        .with_state(gateway)
}

async fn key_configs(State(gw): State<Arc<Gateway>>) -> Response {
    let mut response = gw.encoded_configs.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_KEYS));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response
}

async fn relay(State(gw): State<Arc<Gateway>>, request: Request) -> Result<Response, Problem> {
    let started = Instant::now();
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case(media_type::OHTTP_REQUEST) {
        return Err(Problem::UnsupportedMediaType);
    }
    let limit = gw.limits.max_body_bytes;
    if content_length(request.headers()).is_some_and(|n| n > limit as u64) {
        return Err(Problem::PayloadTooLarge { limit });
    }
    let body = http_body_util::Limited::new(request.into_body(), limit);
    let body = match tokio::time::timeout(gw.limits.request_timeout, body.collect()).await {
        Err(_) => return Err(Problem::Timeout),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(Problem::PayloadTooLarge { limit }),
        Ok(Err(_)) => return Err(Problem::BadRequest("the request body could not be read")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };

    let (inner_bytes, responder) = gw.keys.decapsulate(&body).map_err(|e| {
        let problem = Problem::from_decapsulation(&e);
        tracing::info!(error = %e, "refused encapsulated request");
        problem
    })?;
    let suite = responder.suite();

    // From here on the client can read our answer, so every outcome is an encrypted one.
    let (inner_response, model) = answer(&gw, &inner_bytes).await;
    drop(inner_bytes);
    tracing::info!(
        aead = suite.aead.name(),
        inner_status = inner_response.status,
        model = model.as_deref().unwrap_or("-"),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "served encapsulated request"
    );
    Ok(encapsulate(responder, &inner_response))
}

/// Runs the inner request and returns the Binary HTTP response, plus the model name for
/// logging when the path names one.
async fn answer(gw: &Gateway, inner_bytes: &[u8]) -> (bhttp::Response, Option<String>) {
    let request = match bhttp::Request::decode(inner_bytes) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("the decrypted request is not valid Binary HTTP (RFC 9292): {e}");
            return (error_response(StatusCode::BAD_REQUEST, msg), None);
        }
    };
    let model = model_from_path(&request.path);
    let http_request = match to_http(request) {
        Ok(r) => r,
        Err(msg) => return (error_response(StatusCode::BAD_REQUEST, msg.into()), model),
    };
    let fut = gw.inner.clone().oneshot(http_request);
    let response = match tokio::time::timeout(gw.limits.request_timeout, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(never)) => match never {},
        Err(_) => return (error_response(StatusCode::GATEWAY_TIMEOUT, "inference timed out".into()), model),
    };
    (from_http(response, gw.limits.max_response_bytes).await, model)
}

fn model_from_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/models/")?;
    let name = rest.split(['/', '?']).next()?;
    sealgate_models::is_valid_name(name).then(|| name.to_owned())
}

fn error_response(status: StatusCode, message: String) -> bhttp::Response {
    let body = serde_json::to_vec(&sealgate_protocol::inference::ErrorBody { error: message }).unwrap_or_default();
    bhttp::Response::new(status.as_u16(), vec![bhttp::Field::new("content-type", "application/json")], body)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Turns the decrypted Binary HTTP request into an `http::Request` for the inner router.
fn to_http(mut request: bhttp::Request) -> Result<Request, &'static str> {
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| "invalid method")?;
    let uri: Uri = request.path.parse().map_err(|_| "invalid path")?;
    let mut builder = axum::http::Request::builder().method(method).uri(uri);
    for field in &request.headers {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| "invalid header name")?;
        let value = HeaderValue::from_bytes(&field.value).map_err(|_| "invalid header value")?;
        builder = builder.header(name, value);
    }
    let body = std::mem::take(&mut request.body);
    builder.body(Body::from(body)).map_err(|_| "invalid request")
}

/// Collects the inner router's answer into a Binary HTTP response (bounded in size).
async fn from_http(response: Response, max: usize) -> bhttp::Response {
    let (parts, body) = response.into_parts();
    let body = match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes().to_vec(),
        Err(_) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, "the response is too large".into()),
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_LENGTH)
        .map(|(name, value)| bhttp::Field::new(name.as_str(), value.as_bytes()))
        .collect();
    bhttp::Response::new(parts.status.as_u16(), headers, body)
}

fn encapsulate(responder: ServerResponse, inner: &bhttp::Response) -> Response {
    let plaintext = Zeroizing::new(inner.encode());
    match responder.encapsulate(&plaintext, &mut rand_core::UnwrapErr(getrandom::SysRng)) {
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

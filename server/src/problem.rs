//! The one place that turns outer (relay-visible) failures into HTTP responses.
//!
//! Every outer error is an RFC 9457 `application/problem+json` body with a short generic
//! text. Nothing from the request body ever reaches it: before decapsulation we only know
//! framing facts, and after decapsulation errors travel inside the encryption instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sealgate_protocol::{media_type, problem_type};
use serde::Serialize;

use crate::admission::Shed;

/// An outer error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The POST body is not `message/ohttp-req`.
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The encapsulated request is malformed or fails to decrypt.
    BadRequest(&'static str),
    /// The key id or algorithms do not match a current key configuration.
    KeyConfigMismatch(&'static str),
    /// The request body did not arrive in time.
    Timeout,
    /// The gateway sheds the request (admission control): at its limit of requests in
    /// flight, or the request would wait too long for a session.
    Overloaded(Shed),
    /// The shared replay store (`--replay-store`) cannot be asked, and the gateway fails
    /// closed rather than answer a request it cannot check against replays.
    ReplayStoreUnreachable,
}

#[derive(Serialize)]
struct Body {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

impl Problem {
    /// Maps a protocol error from decapsulation. Framing errors are 400; key mismatches are
    /// 422 with the `ohttp-key` problem type so clients refetch the key configuration
    /// (RFC 9458 section 5.3). Decryption failures say nothing more than that.
    pub fn from_decapsulation(e: &sealgate_protocol::Error) -> Self {
        use sealgate_protocol::Error as E;
        match e {
            E::UnknownKeyId(_) => Problem::KeyConfigMismatch("unknown key identifier"),
            E::UnsupportedKem(_) => Problem::KeyConfigMismatch("unsupported KEM"),
            E::UnsupportedKdf(_) => Problem::KeyConfigMismatch("unsupported KDF"),
            E::UnsupportedAead(_) => Problem::KeyConfigMismatch("unsupported AEAD"),
            E::SuiteNotOffered => Problem::KeyConfigMismatch("algorithms not offered for this key"),
            E::Truncated => Problem::BadRequest("encapsulated request is truncated"),
            E::Decrypt => Problem::BadRequest("encapsulated request could not be decrypted"),
            _ => Problem::BadRequest("encapsulated request is malformed"),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            Problem::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "about:blank",
                "Unsupported Media Type",
                format!("requests must be {}", media_type::OHTTP_REQUEST),
            ),
            Problem::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "about:blank",
                "Content Too Large",
                format!("the request body exceeds {limit} bytes"),
            ),
            Problem::BadRequest(detail) => (StatusCode::BAD_REQUEST, "about:blank", "Bad Request", (*detail).into()),
            Problem::KeyConfigMismatch(detail) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                problem_type::OHTTP_KEY,
                "key configuration mismatch",
                format!("{detail}; fetch the current key configuration"),
            ),
            Problem::Timeout => (StatusCode::REQUEST_TIMEOUT, "about:blank", "Request Timeout", String::new()),
            Problem::Overloaded(Shed::Full { max_in_flight }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "about:blank",
                "Service Unavailable",
                format!("the gateway is handling its limit of {max_in_flight} requests; retry shortly"),
            ),
            Problem::Overloaded(Shed::Delay { limit, .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "about:blank",
                "Service Unavailable",
                format!(
                    "the gateway is at capacity: the request would wait more than {} for the model; retry shortly",
                    humantime::format_duration(*limit)
                ),
            ),
            Problem::ReplayStoreUnreachable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "about:blank",
                "Service Unavailable",
                "the gateway cannot check requests against replays right now; retry shortly".into(),
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let retry_after = matches!(self, Problem::Overloaded(_) | Problem::ReplayStoreUnreachable);
        let (status, kind, title, detail) = self.parts();
        let body = Body { kind, title, status: status.as_u16(), detail };
        // Serializing a struct of strings and a number cannot fail.
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type::PROBLEM_JSON));
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

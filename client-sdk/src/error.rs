//! The one error type of the SDK.

use sealgate_protocol::inference::ErrorBody;

/// Everything that can go wrong between a call and its answer.
///
/// Texts never contain request data: they are safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gateway URL is not a valid `https://` URL.
    #[error("invalid gateway URL: {0}")]
    InvalidUrl(String),
    /// The bearer token file could not be read or holds no single token (its content is
    /// never part of the message).
    #[error("bearer token file: {0}")]
    TokenFile(String),
    /// The CA certificate could not be read or parsed.
    #[error("invalid CA certificate: {0}")]
    InvalidCaCertificate(String),
    /// The gateway could not be reached, or the connection failed (TLS included).
    #[error("cannot reach the gateway: {0}")]
    Transport(String),
    /// The request did not complete within the configured timeout.
    #[error("the gateway did not answer within the timeout")]
    Timeout,
    /// The gateway refused the request before decrypting it (RFC 9457 problem details).
    #[error("the gateway refused the request ({status}): {title}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Problem {
        /// Outer HTTP status.
        status: u16,
        /// The problem type URI.
        problem_type: String,
        /// The problem title.
        title: String,
        /// The problem detail, if any.
        detail: Option<String>,
    },
    /// The key configuration's SHA-256 does not match the pinned value.
    #[error("the gateway's key configuration does not match the pinned SHA-256 (got {got})")]
    KeyConfigPinMismatch {
        /// The fingerprint received, hex.
        got: String,
    },
    /// The gateway offers no key configuration this client can use.
    #[error("the gateway offers no usable key configuration: {0}")]
    NoUsableKeyConfig(String),
    /// Encapsulation, decapsulation or Binary HTTP failed (includes a response that does not
    /// decrypt).
    #[error("OHTTP protocol error: {0}")]
    Protocol(#[from] sealgate_protocol::Error),
    /// The gateway answered something that is not OHTTP.
    #[error("unexpected response from the gateway: {0}")]
    UnexpectedResponse(String),
    /// The inference API answered with an error (inside the encryption).
    #[error("inference error {status}: {message}")]
    Inference {
        /// Inner HTTP status.
        status: u16,
        /// The error message of the KServe `{"error": ...}` body.
        message: String,
    },
    /// The gateway is at its limit of requests in flight and shed this one before decrypting
    /// it (outer 503). Nothing ran; sending it again after `retry_after` is safe.
    #[error("the gateway is overloaded; retry after {}", retry_after.map_or("a moment".into(), |d| format!("{} s", d.as_secs())))]
    Overloaded {
        /// The gateway's `Retry-After`, when it sent one.
        retry_after: Option<std::time::Duration>,
    },
    /// The inference API's answer is not the expected JSON.
    #[error("invalid inference response: {0}")]
    InvalidResponse(String),
}

impl Error {
    /// Builds an [`Error::Inference`] from an inner status and body.
    pub(crate) fn inference(status: u16, body: &[u8]) -> Self {
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| format!("HTTP status {status}"));
        Error::Inference { status, message }
    }

    /// The inner `Retry-After` of an [`Error::Inference`] 429 (over the tenant's rate) or 503
    /// (the model is busy) is not kept; these statuses are the signal to back off.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Overloaded { .. } | Error::Inference { status: 429 | 503, .. })
    }

    /// True for the RFC 9458 `ohttp-key` problem: the key configuration should be refetched.
    pub fn is_key_config_mismatch(&self) -> bool {
        matches!(self, Error::Problem { problem_type, .. } if problem_type == sealgate_protocol::problem_type::OHTTP_KEY)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return Error::Timeout;
        }
        // reqwest's Display omits the cause chain, which is where TLS errors live.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Error::Transport(text)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

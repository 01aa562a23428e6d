//! The one error type of the browser client, and how it becomes a JavaScript `Error`.
//!
//! A page needs two things from a failure: a sentence a developer understands at a glance
//! ("the gateway's key configuration does not match the pinned SHA-256"), and a stable value
//! to branch on. So every [`ClientError`] turns into a plain JS `Error` whose `message` is the
//! sentence, whose `name` is `SealgateError`, and whose `code` is one of the kebab-case
//! strings of [`ClientError::code`] (the `SealgateErrorCode` TypeScript type lists them);
//! `status` and `problemType` are set when the gateway sent them.
//!
//! Texts never contain request data (feature values, the token): they name tensors, indexes
//! and shapes only, so a page may log them or send them to its error tracker.

use core::fmt;

/// Everything that can go wrong between `Sealgate.connect`/`gw.infer` and their answers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientError {
    /// The options passed to `connect` are wrong (URL, pin, AEAD name, types).
    InvalidOptions(String),
    /// The request the page built is not a valid KServe V2 request; nothing was sent.
    InvalidInput(String),
    /// `fetch` failed: no connection, DNS, TLS certificate not trusted, CORS refused.
    Network {
        /// What was fetched.
        url: String,
        /// The browser's own text (browsers say little, on purpose).
        cause: String,
    },
    /// The gateway did not answer within the timeout.
    Timeout {
        /// The configured timeout, milliseconds.
        millis: u32,
    },
    /// Something answered, but not like a Sealgate gateway (wrong URL, a proxy's error page).
    UnexpectedResponse(String),
    /// The gateway refused the request before decrypting it (RFC 9457 problem details).
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
    /// The key configuration's SHA-256 differs from the pinned one: someone may be
    /// substituting keys. Nothing was encrypted to the unexpected key.
    KeyConfigPinMismatch {
        /// The fingerprint received, lowercase hex.
        got: String,
    },
    /// The gateway offers no key configuration this client can use.
    NoUsableKeyConfig(String),
    /// The encrypted answer did not decrypt: altered in transit or from another server.
    /// Deliberately without detail.
    Decrypt,
    /// Encapsulation or Binary HTTP decoding failed.
    Protocol(String),
    /// The inference API answered with an error, inside the encryption.
    Inference {
        /// Inner HTTP status (400 bad tensor, 403 model not allowed, 404 unknown model ...).
        status: u16,
        /// The KServe `{"error": ...}` message.
        message: String,
    },
    /// The inference API's answer decrypted but is not the expected JSON.
    InvalidResponse(String),
}

impl ClientError {
    /// The stable, machine-readable name of the failure (`error.code` in JavaScript).
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::InvalidOptions(_) => "invalid-options",
            ClientError::InvalidInput(_) => "invalid-input",
            ClientError::Network { .. } => "network",
            ClientError::Timeout { .. } => "timeout",
            ClientError::UnexpectedResponse(_) => "unexpected-response",
            ClientError::Problem { .. } => "problem",
            ClientError::KeyConfigPinMismatch { .. } => "key-config-pin-mismatch",
            ClientError::NoUsableKeyConfig(_) => "no-usable-key-config",
            ClientError::Decrypt => "decrypt",
            ClientError::Protocol(_) => "protocol",
            ClientError::Inference { .. } => "inference",
            ClientError::InvalidResponse(_) => "invalid-response",
        }
    }

    /// The HTTP status that goes with the failure: outer for problems, inner for inference.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem { status, .. } | ClientError::Inference { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for the RFC 9458 `ohttp-key` problem: the key configuration should be refetched.
    pub fn is_key_config_mismatch(&self) -> bool {
        matches!(self, ClientError::Problem { problem_type, .. } if problem_type == sealgate_protocol::problem_type::OHTTP_KEY)
    }

    /// An inner (decrypted) error response: status plus the KServe `{"error": ...}` message
    /// when the body had one.
    pub fn inference(status: u16, message: Option<String>) -> Self {
        let message = message.unwrap_or_else(|| format!("HTTP status {status} without a KServe error body"));
        ClientError::Inference { status, message }
    }

    /// An outer non-success answer: problem details when the gateway sent RFC 9457 JSON
    /// (`problem` is `None` otherwise), else a hint that the URL is probably not a gateway.
    pub fn outer(status: u16, content_type: &str, problem: Option<ProblemDetails>, url: &str) -> Self {
        match problem {
            Some(p) if content_type.eq_ignore_ascii_case(sealgate_protocol::media_type::PROBLEM_JSON) => {
                ClientError::Problem {
                    status,
                    problem_type: p.problem_type.unwrap_or_else(|| "about:blank".to_owned()),
                    title: p.title.unwrap_or_default(),
                    detail: p.detail,
                }
            }
            _ => ClientError::UnexpectedResponse(format!(
                "{url} answered HTTP {status}{}; is this the URL of a Sealgate gateway?",
                if content_type.is_empty() { String::new() } else { format!(" ({content_type})") }
            )),
        }
    }
}

/// The fields of an RFC 9457 problem body that the client reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProblemDetails {
    /// `type`, a URI.
    pub problem_type: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `detail`.
    pub detail: Option<String>,
}

impl From<sealgate_protocol::Error> for ClientError {
    fn from(e: sealgate_protocol::Error) -> Self {
        match e {
            sealgate_protocol::Error::Decrypt => ClientError::Decrypt,
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidOptions(m) => write!(f, "invalid Sealgate options: {m}"),
            ClientError::InvalidInput(m) => write!(f, "invalid inference request: {m} (nothing was sent)"),
            ClientError::Network { url, cause } => write!(
                f,
                "cannot reach the gateway at {url}: {cause} (is the URL right, is the gateway up, \
                 does the browser trust its certificate, and does it allow this origin?)"
            ),
            ClientError::Timeout { millis } => write!(f, "the gateway did not answer within {millis} ms"),
            ClientError::UnexpectedResponse(m) => write!(f, "unexpected response: {m}"),
            ClientError::Problem { status, title, detail, .. } => {
                write!(f, "the gateway refused the request ({status}): {title}")?;
                match detail {
                    Some(d) if !d.is_empty() => write!(f, ": {d}"),
                    _ => Ok(()),
                }
            }
            ClientError::KeyConfigPinMismatch { got } => write!(
                f,
                "the gateway's key configuration does not match the pinned SHA-256 (got {got}); \
                 nothing was encrypted to it"
            ),
            ClientError::NoUsableKeyConfig(m) => write!(f, "the gateway offers no usable key configuration: {m}"),
            ClientError::Decrypt => f.write_str(
                "the gateway's response could not be decrypted: it was altered on the way or does not \
                 come from the gateway this request was encrypted to",
            ),
            ClientError::Protocol(m) => write!(f, "OHTTP protocol error: {m}"),
            ClientError::Inference { status, message } => write!(f, "inference failed ({status}): {message}"),
            ClientError::InvalidResponse(m) => write!(f, "invalid inference response: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Shorthand for results of this crate.
pub type Result<T, E = ClientError> = core::result::Result<T, E>;

impl From<ClientError> for wasm_bindgen::JsValue {
    /// A JS `Error` with `name`, `code` and, when known, `status` and `problemType`.
    fn from(e: ClientError) -> Self {
        use wasm_bindgen::JsValue;
        let error = js_sys::Error::new(&e.to_string());
        error.set_name("SealgateError");
        let set = |key: &str, value: JsValue| {
            // Setting a property on a fresh Error object cannot fail.
            let _ = js_sys::Reflect::set(&error, &JsValue::from_str(key), &value);
        };
        set("code", JsValue::from_str(e.code()));
        if let Some(status) = e.status() {
            set("status", JsValue::from(status));
        }
        if let ClientError::Problem { problem_type, .. } = &e {
            set("problemType", JsValue::from_str(problem_type));
        }
        error.into()
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn problem_bodies_become_problems() {
        let problem = ProblemDetails {
            problem_type: Some("https://iana.org/assignments/http-problem-types#ohttp-key".into()),
            title: Some("key configuration mismatch".into()),
            detail: Some("unknown key identifier".into()),
        };
        let e = ClientError::outer(422, "application/problem+json", Some(problem), "u");
        assert!(e.is_key_config_mismatch());
        assert_eq!(e.code(), "problem");
        assert_eq!(e.status(), Some(422));
        assert_eq!(
            e.to_string(),
            "the gateway refused the request (422): key configuration mismatch: unknown key identifier"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn other_answers_say_the_url_is_probably_wrong() {
        let e = ClientError::outer(404, "text/html", None, "https://x.example/p");
        assert_eq!(e.code(), "unexpected-response");
        assert!(e.to_string().contains("https://x.example/p answered HTTP 404 (text/html)"), "{e}");
        // JSON that looks like a problem only counts with the problem media type.
        let e = ClientError::outer(500, "application/json", Some(ProblemDetails::default()), "u");
        assert_eq!(e.code(), "unexpected-response");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn inner_errors_carry_the_kserve_message() {
        let e = ClientError::inference(404, Some("model 'x' not found".into()));
        assert_eq!(e.to_string(), "inference failed (404): model 'x' not found");
        assert_eq!(e.status(), Some(404));
        let e = ClientError::inference(500, None);
        assert_eq!(e.to_string(), "inference failed (500): HTTP status 500 without a KServe error body");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn decryption_failures_have_no_detail() {
        let e = ClientError::from(sealgate_protocol::Error::Decrypt);
        assert_eq!(e, ClientError::Decrypt);
        assert_eq!(e.code(), "decrypt");
    }
}

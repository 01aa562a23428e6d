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

/// Everything that can go wrong between `Sealgate.connect`/`gw.infer` and their answers:
/// the browser client's own failures, and the client core's classification of the
/// gateway's answers ([`ClientError::Exchange`]), whose codes come from the core.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientError {
    /// The options passed to `connect` are wrong (URL, pin, AEAD or KEM name, types).
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
    /// `fetch` resolved to something that is not a `Response`.
    NotAResponse {
        /// What was fetched.
        url: String,
    },
    /// The gateway answered and the client core classified the answer as a failure: refused
    /// (problem details), overloaded, not a gateway, a key that does not match the pin, an
    /// answer that does not decrypt, or an inference error inside the encryption.
    Exchange(sealgate_client_core::Error),
    /// The inference API's answer decrypted but is not the expected JSON.
    InvalidResponse(String),
}

impl ClientError {
    /// The stable, machine-readable name of the failure (`error.code` in JavaScript): the
    /// client core's code for answers it classified.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::InvalidOptions(_) => "invalid-options",
            ClientError::InvalidInput(_) => "invalid-input",
            ClientError::Network { .. } => "network",
            ClientError::Timeout { .. } => "timeout",
            ClientError::NotAResponse { .. } => "unexpected-response",
            // A stream's error line is an inference error of one request, as for `infer`;
            // its `line` property says which.
            ClientError::Exchange(sealgate_client_core::Error::Line { .. }) => "inference",
            ClientError::Exchange(e) => e.code(),
            ClientError::InvalidResponse(_) => "invalid-response",
        }
    }

    /// The HTTP status that goes with the failure: outer for problems, inner for inference.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Exchange(e) => e.status(),
            _ => None,
        }
    }

    /// True for the RFC 9458 `ohttp-key` problem: the key configuration should be refetched.
    pub fn is_key_config_mismatch(&self) -> bool {
        matches!(self, ClientError::Exchange(e) if e.is_key_config_mismatch())
    }

    /// The text a page sees: the error and its cause, `: `-separated. Through the core's
    /// typed `cause()`, not `source()`: a `dyn Error` would link every error type's `Debug`.
    pub fn message(&self) -> String {
        match self {
            ClientError::Exchange(e) => match e.cause() {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
            other => other.to_string(),
        }
    }
}

impl From<sealgate_client_core::Error> for ClientError {
    fn from(e: sealgate_client_core::Error) -> Self {
        ClientError::Exchange(e)
    }
}

impl From<sealgate_protocol::Error> for ClientError {
    fn from(e: sealgate_protocol::Error) -> Self {
        ClientError::Exchange(e.into())
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
            ClientError::NotAResponse { url } => {
                write!(f, "unexpected response: fetch({url}) resolved to something other than a Response")
            }
            ClientError::Exchange(e) => fmt::Display::fmt(e, f),
            ClientError::InvalidResponse(m) => write!(f, "invalid inference response: {m}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Exchange(e) => Some(e),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClientError> = core::result::Result<T, E>;

impl From<ClientError> for wasm_bindgen::JsValue {
    /// A JS `Error` with `name`, `code` and, when known, `status` and `problemType`.
    fn from(e: ClientError) -> Self {
        use wasm_bindgen::JsValue;
        let error = js_sys::Error::new(&e.message());
        error.set_name("SealgateError");
        let set = |key: &str, value: JsValue| {
            // Setting a property on a fresh Error object cannot fail.
            let _ = js_sys::Reflect::set(&error, &JsValue::from_str(key), &value);
        };
        set("code", JsValue::from_str(e.code()));
        if let Some(status) = e.status() {
            set("status", JsValue::from(status));
        }
        match &e {
            ClientError::Exchange(sealgate_client_core::Error::Problem { problem_type, .. }) => {
                set("problemType", JsValue::from_str(problem_type));
            }
            ClientError::Exchange(sealgate_client_core::Error::Line { line, .. }) => {
                set("line", JsValue::from(*line as f64));
            }
            _ => {}
        }
        error.into()
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn codes_of_answers_come_from_the_client_core() {
        let core = sealgate_client_core::Error::Inference { status: 404, message: "model 'x' not found".into() };
        let e = ClientError::from(core.clone());
        assert_eq!((e.code(), e.status()), (core.code(), Some(404)));
        assert_eq!(e.message(), "inference failed (404): model 'x' not found");
        let e = ClientError::from(sealgate_protocol::Error::Decrypt);
        assert_eq!(e.code(), "decrypt");
        let e = ClientError::from(sealgate_protocol::Error::Truncated);
        assert_eq!((e.code(), e.message().as_str()), ("protocol", "OHTTP protocol error: message truncated"));
        assert_eq!(ClientError::Timeout { millis: 5 }.code(), "timeout");
    }
}

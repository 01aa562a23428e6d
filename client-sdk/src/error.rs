//! The one error type of the SDK: the SDK's own failures (configuration, files, the network)
//! beside the client core's classification of the gateway's answers.
//!
//! Causes are kept, typed, as [`std::error::Error::source`]: a TLS failure is an
//! [`Error::Transport`] whose source chain holds the `reqwest`, `hyper` and `rustls` errors
//! themselves, so a caller can `downcast_ref` them; [`Report`] prints the whole chain.

use std::path::PathBuf;

pub use sealgate_client_core::Error as ExchangeError;

/// A cause the SDK keeps without naming its type in the API (the PEM, I/O and rustls errors
/// of a CA certificate).
pub type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong between a call and its answer.
///
/// Texts never contain request data or the token: they are safe to log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gateway URL is not a valid `https://` URL with a host.
    #[error("invalid gateway URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
        /// The parser's error, when the URL did not parse at all.
        #[source]
        cause: Option<url::ParseError>,
    },
    /// A model name that could change the inner route (see `Client::infer`); nothing was sent.
    #[error("'{0}' is not a valid model name: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    InvalidModelName(String),
    /// The bearer token file could not be read or holds no single token (its content is
    /// never part of the message).
    #[error("bearer token file {}: {problem}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
        /// The I/O error, when it could not be read.
        #[source]
        cause: Option<std::io::Error>,
    },
    /// The CA certificate could not be read or parsed, or none was configured.
    #[error("invalid CA certificate: {problem}")]
    InvalidCaCertificate {
        /// What went wrong, naming the file when there is one.
        problem: String,
        /// The I/O, PEM or rustls error.
        #[source]
        cause: Option<BoxedCause>,
    },
    /// The TLS client configuration could not be built.
    #[error("TLS configuration")]
    Tls(#[source] rustls::Error),
    /// The gateway could not be reached, or the connection failed (TLS included): the source
    /// chain says why.
    #[error("cannot reach the gateway")]
    Transport(#[source] reqwest::Error),
    /// The request did not complete within the configured timeout.
    #[error("the gateway did not answer within the timeout")]
    Timeout(#[source] reqwest::Error),
    /// The gateway answered, and the client core classified the answer as a failure: refused
    /// (problem details), overloaded, not a gateway, a key that does not match the pin, an
    /// answer that does not decrypt, or an inference error inside the encryption. Match on
    /// [`ExchangeError`] for the kind.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A streamed call waited longer than the client's timeout for the gateway: for the
    /// outer answer, or for the next piece of the answer while answers were still owed.
    #[error("the gateway sent nothing for {} s while answers were owed", waited.as_secs())]
    StreamStalled {
        /// How long the client waited.
        waited: std::time::Duration,
    },
    /// The inference request could not be encoded as JSON.
    #[error("the inference request cannot be encoded as JSON")]
    InvalidRequest(#[source] serde_json::Error),
    /// The inference API's answer decrypted but is not the expected JSON.
    #[error("invalid inference response")]
    InvalidResponse(#[source] serde_json::Error),
}

impl Error {
    /// The client core's classification, when the gateway answered.
    pub fn exchange(&self) -> Option<&ExchangeError> {
        match self {
            Error::Exchange(e) => Some(e),
            _ => None,
        }
    }

    /// True when the gateway shed the request (outer 503), the tenant is over its rate (inner
    /// 429) or the model was busy (inner 503): nothing ran, and sending it later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.exchange().is_some_and(ExchangeError::is_retryable)
    }

    /// True for the RFC 9458 `ohttp-key` problem: the key configuration should be refetched.
    pub fn is_key_config_mismatch(&self) -> bool {
        self.exchange().is_some_and(ExchangeError::is_key_config_mismatch)
    }

    /// The outer or inner HTTP status of a gateway answer classified as a failure.
    pub fn status(&self) -> Option<u16> {
        self.exchange().and_then(ExchangeError::status)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() { Error::Timeout(e) } else { Error::Transport(e) }
    }
}

/// Displays an error with its whole source chain, `: `-separated (`cannot reach the
/// gateway: error sending request ...: invalid peer certificate: UnknownIssuer`).
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one classification of what can go wrong in an exchange with a gateway.
//!
//! Every client (the Rust SDK, the browser package, `sealgate-load` through the SDK, the
//! end-to-end harness) gets its failures from here, so a refused request, a stale key, a
//! substituted key or a tampered answer reads the same everywhere. I/O failures (no
//! connection, a timeout) are not here: each client has its own I/O and wraps this type in its
//! own error enum beside them.
//!
//! Texts never contain request data: they name statuses, media types, URLs and key
//! fingerprints only, so they are safe to log. Causes from the protocol crate are kept as
//! [`core::error::Error::source`], not flattened into the text.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

/// What went wrong between sealing a request and reading its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gateway refused the request before decrypting it, with RFC 9457 problem details.
    /// The `ohttp-key` problem (RFC 9458 section 5.3) is one: see
    /// [`Error::is_key_config_mismatch`].
    #[error("the gateway refused the request ({status}): {title}{}", detail_suffix(detail.as_deref()))]
    Problem {
        /// Outer HTTP status.
        status: u16,
        /// The problem type URI (`about:blank` when the body had none).
        problem_type: String,
        /// The problem title.
        title: String,
        /// The problem detail, if any.
        detail: Option<String>,
    },
    /// The gateway is at its limit of requests in flight and shed this one before decrypting
    /// it (outer 503). Nothing ran; sending it again after `retry_after` is safe.
    #[error("the gateway is overloaded; retry after {}", retry_after.map_or("a moment".into(), |d| alloc::format!("{} s", d.as_secs())))]
    Overloaded {
        /// The gateway's `Retry-After`, when it sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// Something answered, but not like a Sealgate gateway: a status without problem details
    /// (a proxy's error page, a wrong URL) or a success of the wrong media type.
    #[error("{}", Unexpected { url, status: *status, content_type, expected })]
    UnexpectedResponse {
        /// The URL that answered.
        url: String,
        /// The outer HTTP status.
        status: u16,
        /// The media type of the answer, without parameters; empty when absent.
        content_type: String,
        /// The media type a gateway answers with.
        expected: &'static str,
    },
    /// No key configuration in the gateway's list has the pinned SHA-256: someone may be
    /// substituting keys. Nothing was encrypted to the key received.
    #[error(
        "the gateway's key configuration does not match the pinned SHA-256 (got {got}); nothing was encrypted to it"
    )]
    KeyConfigPinMismatch {
        /// The fingerprint of the configuration that would have been used, lowercase hex.
        got: String,
    },
    /// The gateway's `application/ohttp-keys` list is empty or does not parse (the cause says
    /// which rule it broke).
    #[error("the gateway offers no usable key configuration")]
    NoUsableKeyConfig {
        /// Why the list could not be read; `None` for an empty list.
        #[source]
        cause: Option<sealgate_protocol::Error>,
    },
    /// The encrypted answer did not decrypt: altered in transit, or from a server other than
    /// the one the request was encrypted to. Deliberately without detail.
    #[error(
        "the gateway's response could not be decrypted: it was altered on the way or does not come from the \
         gateway this request was encrypted to"
    )]
    Decrypt,
    /// Sealing the request or decoding the decrypted Binary HTTP answer failed.
    #[error("OHTTP protocol error")]
    Protocol(#[source] sealgate_protocol::Error),
    /// The inference API answered with an error status, inside the encryption.
    #[error("inference failed ({status}): {message}")]
    Inference {
        /// Inner HTTP status (400 bad tensor, 401 no token, 403 model not allowed, 404 unknown
        /// model, 429 over the tenant's rate, 503 model busy ...).
        status: u16,
        /// The KServe `{"error": ...}` message, or a sentence saying there was none.
        message: String,
    },
    /// One line of an NDJSON stream failed inside the encryption (the gateway's error line
    /// `{"error", "status", "line"}`); the lines before and after it are unaffected, except
    /// for the error line that ends a request stream the gateway could not read to its end.
    #[error("line {line} failed ({status}): {message}")]
    Line {
        /// The 1-based number of the request line (blank lines counted).
        line: u64,
        /// The status a single request would have had (400, 403, 413, 429, 503 ...).
        status: u16,
        /// The gateway's fixed error text; never a request value.
        message: String,
    },
    /// A line of a streamed answer is longer than the limit the caller set; the stream is
    /// abandoned, since what follows can no longer be matched to the requests.
    #[error("a line of the streamed answer is longer than {max} bytes")]
    LineTooLong {
        /// The limit, in bytes.
        max: usize,
    },
    /// A request line given to a stream contains a line break, which would make it two
    /// lines; nothing of it was sealed.
    #[error("a streamed request line contains a line break")]
    InvalidLine,
}

impl Error {
    /// The stable, machine-readable name of the failure: kebab-case, one per variant. The
    /// browser package exposes it as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Problem { .. } => "problem",
            Error::Overloaded { .. } => "overloaded",
            Error::UnexpectedResponse { .. } => "unexpected-response",
            Error::KeyConfigPinMismatch { .. } => "key-config-pin-mismatch",
            Error::NoUsableKeyConfig { .. } => "no-usable-key-config",
            Error::Decrypt => "decrypt",
            Error::Protocol(_) => "protocol",
            Error::Inference { .. } => "inference",
            Error::Line { .. } => "line",
            Error::LineTooLong { .. } => "line-too-long",
            Error::InvalidLine => "invalid-line",
        }
    }

    /// The HTTP status that goes with the failure: outer for problems, overload and unexpected
    /// answers, inner for inference errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Problem { status, .. } | Error::Inference { status, .. } | Error::Line { status, .. } => {
                Some(*status)
            }
            Error::UnexpectedResponse { status, .. } => Some(*status),
            Error::Overloaded { .. } => Some(503),
            _ => None,
        }
    }

    /// The protocol error behind [`Error::NoUsableKeyConfig`] or [`Error::Protocol`], the same
    /// as `source()` but typed (so a caller that only displays it need not go through
    /// `dyn Error`, whose vtables would pull `Debug` formatting into the browser module).
    pub fn cause(&self) -> Option<&sealgate_protocol::Error> {
        match self {
            Error::NoUsableKeyConfig { cause } => cause.as_ref(),
            Error::Protocol(cause) => Some(cause),
            _ => None,
        }
    }

    /// True for the RFC 9458 `ohttp-key` problem: the key configuration should be refetched.
    pub fn is_key_config_mismatch(&self) -> bool {
        matches!(self, Error::Problem { problem_type, .. } if problem_type == sealgate_protocol::problem_type::OHTTP_KEY)
    }

    /// True when sending the same request later may succeed and nothing ran this time: the
    /// gateway shed it (outer 503), the tenant is over its rate (inner 429) or the model was
    /// busy past the queue timeout (inner 503); for a stream's error line, the same for that
    /// line alone.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Overloaded { .. }
                | Error::Inference { status: 429 | 503, .. }
                | Error::Line { status: 429 | 503, .. }
        )
    }
}

impl From<sealgate_protocol::Error> for Error {
    fn from(e: sealgate_protocol::Error) -> Self {
        match e {
            sealgate_protocol::Error::Decrypt => Error::Decrypt,
            other => Error::Protocol(other),
        }
    }
}

fn detail_suffix(detail: Option<&str>) -> String {
    match detail {
        Some(d) if !d.is_empty() => alloc::format!(": {d}"),
        _ => String::new(),
    }
}

/// The text of [`Error::UnexpectedResponse`]: says what answered and what to check.
struct Unexpected<'a> {
    url: &'a str,
    status: u16,
    content_type: &'a str,
    expected: &'a str,
}

impl fmt::Display for Unexpected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Unexpected { url, status, content_type, expected } = self;
        if (200..300).contains(status) {
            write!(f, "{url} answered with content type '{content_type}', not {expected}")?;
        } else {
            write!(f, "{url} answered HTTP {status}")?;
            if !content_type.is_empty() {
                write!(f, " ({content_type})")?;
            }
        }
        f.write_str("; is this the URL of a Sealgate gateway?")
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

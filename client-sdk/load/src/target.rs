//! The two things `sealgate-load` can load: the encrypted OHTTP endpoint through the SDK,
//! and the gateway's benchmark-only plaintext path (`--compare-plaintext`).
//!
//! Both send the same pre-serialized KServe bodies over the same kind of connection
//! (TLS 1.3, same HTTP version, connections reused), so the difference between their
//! results is what Oblivious HTTP costs. Every answer is classified into one [`Outcome`]:
//! a success (a 2xx inference response that parses) or an error of one [`ErrorKind`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealgate_client::inference::InferenceResponse;
use sealgate_client::{Client, Error, ExchangeError, HttpVersion, Report, bhttp, check_status};

/// Path prefix of the gateway's plaintext benchmark route (`sealgate serve
/// --danger-plaintext-bench`).
pub const PLAINTEXT_BENCH_PREFIX: &str = "/danger-plaintext-bench";

/// Why a request failed, as counted in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// No answer: connection refused or reset, TLS failure, timeout.
    Transport,
    /// The gateway shed the request before decrypting it: outer 503 (at `--max-in-flight`).
    Overloaded,
    /// The tenant is over its request rate: inner 429.
    RateLimited,
    /// No session of the model was free within the gateway's queue timeout: inner 503.
    Busy,
    /// The gateway refused before decrypting: an outer 4xx/5xx problem.
    Problem,
    /// The model or inference API answered an error status (inside the encryption).
    Inference,
    /// The answer did not decrypt, or the OHTTP / Binary HTTP framing was wrong.
    Decryption,
    /// A 2xx answer that is not an inference response, or an unexpected media type.
    InvalidResponse,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Transport,
        ErrorKind::Overloaded,
        ErrorKind::RateLimited,
        ErrorKind::Busy,
        ErrorKind::Problem,
        ErrorKind::Inference,
        ErrorKind::Decryption,
        ErrorKind::InvalidResponse,
    ];

    /// The name used in reports (and as the JSON key).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Transport => "transport",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Busy => "busy",
            ErrorKind::Problem => "problem",
            ErrorKind::Inference => "inference",
            ErrorKind::Decryption => "decryption",
            ErrorKind::InvalidResponse => "invalid_response",
        }
    }
}

/// The result of one request.
#[derive(Debug)]
pub enum Outcome {
    /// A valid inference response; `crypto` is the client's HPKE time (encrypted only).
    Ok {
        /// Client-side encapsulation + decapsulation time.
        crypto: Option<Duration>,
    },
    /// A failure of this kind, with the HTTP status when there was one and a message that
    /// never holds request data.
    Failed {
        /// The kind.
        kind: ErrorKind,
        /// Outer or inner HTTP status, if any.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
}

/// Which endpoint a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /.well-known/ohttp-gateway`, end-to-end encrypted.
    Encrypted,
    /// `POST /danger-plaintext-bench/v2/models/{model}/infer`, no OHTTP.
    Plaintext,
}

impl Mode {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Encrypted => "encrypted",
            Mode::Plaintext => "plaintext",
        }
    }
}

/// What the load loop calls: one endpoint plus the bodies to cycle through.
pub enum Target {
    /// Through the SDK: a fresh HPKE encapsulation per request.
    Encrypted {
        /// The SDK client (connections pooled inside).
        client: Client,
        /// One inner request per body, built once.
        requests: Vec<bhttp::Request>,
    },
    /// Plain HTTPS to the benchmark path.
    Plaintext {
        /// The HTTPS client (connections pooled inside).
        http: reqwest::Client,
        /// The full URL of the plaintext infer route.
        url: reqwest::Url,
        /// `Bearer TOKEN`, if any.
        authorization: Option<HeaderValue>,
        /// The KServe bodies.
        bodies: Vec<Vec<u8>>,
    },
}

/// What both targets are built from.
pub struct Settings<'a> {
    /// Gateway base URL.
    pub url: &'a str,
    /// CA certificates (PEM).
    pub ca_pem: &'a [u8],
    /// Bearer token.
    pub token: Option<&'a str>,
    /// HTTP version.
    pub http_version: HttpVersion,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Builds the SDK client for the encrypted target (no network traffic yet). Connection
/// failures are not retried: a load test must count them, not hide them.
pub fn sdk_client(settings: &Settings<'_>) -> Result<Client, Error> {
    let mut builder = Client::builder(settings.url)
        .ca_certificate_pem(settings.ca_pem)
        .http_version(settings.http_version)
        .timeout(settings.timeout)
        .connect_retries(0);
    if let Some(token) = settings.token {
        builder = builder.bearer_token(token);
    }
    builder.build()
}

impl Target {
    /// The encrypted target for `model` with these bodies.
    pub fn encrypted(client: Client, model: &str, bodies: &[Vec<u8>]) -> Self {
        let path = format!("/v2/models/{model}/infer");
        let requests = bodies.iter().map(|body| client.inner_request("POST", &path, body.clone())).collect();
        Target::Encrypted { client, requests }
    }

    /// The plaintext target for `model`: the same TLS 1.3 settings as the SDK's.
    pub fn plaintext(settings: &Settings<'_>, model: &str, bodies: Vec<Vec<u8>>) -> Result<Self> {
        let base = reqwest::Url::parse(settings.url).context("--url")?;
        let url = base.join(&format!("{PLAINTEXT_BENCH_PREFIX}/v2/models/{model}/infer")).context("--url")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(settings.ca_pem) {
            roots.add(cert.context("--ca")?).context("--ca")?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = match settings.http_version {
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
            _ => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        let mut http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        http = match settings.http_version {
            HttpVersion::Http1 => http.http1_only(),
            HttpVersion::Http2 => http.http2_prior_knowledge(),
            _ => http,
        };
        let http = http.build().context("building the HTTPS client")?;
        let authorization = settings
            .token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).context("--token is not a valid header value"))
            .transpose()?;
        Ok(Target::Plaintext { http, url, authorization, bodies })
    }

    /// Which endpoint this is.
    pub fn mode(&self) -> Mode {
        match self {
            Target::Encrypted { .. } => Mode::Encrypted,
            Target::Plaintext { .. } => Mode::Plaintext,
        }
    }

    /// Sends request number `index` (bodies are used in turn) and classifies the answer.
    pub async fn send(&self, index: u64) -> Outcome {
        match self {
            Target::Encrypted { client, requests } => {
                let Some(request) = pick(requests, index) else { return no_body() };
                match client.send_timed(request).await {
                    Ok((response, timings)) => answered(response, Some(timings.crypto())),
                    Err(e) => classify(&e),
                }
            }
            Target::Plaintext { http, url, authorization, bodies } => {
                let Some(body) = pick(bodies, index) else { return no_body() };
                let mut request = http
                    .post(url.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.clone());
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value.clone());
                }
                let response = match request.send().await {
                    Ok(r) => r,
                    Err(e) => return transport(&e),
                };
                let status = response.status().as_u16();
                let problem = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/problem+json"));
                let body = match response.bytes().await {
                    Ok(b) => b,
                    Err(e) => return transport(&e),
                };
                match status {
                    503 if problem => Outcome::Failed {
                        kind: ErrorKind::Overloaded,
                        status: Some(status),
                        message: "HTTP 503: the gateway shed the request".into(),
                    },
                    // The gateway's own refusals (body limit, timeout) are problem+json, like
                    // the OHTTP endpoint's; anything else comes from the inference API.
                    _ if problem => Outcome::Failed {
                        kind: ErrorKind::Problem,
                        status: Some(status),
                        message: format!("HTTP {status} problem"),
                    },
                    _ => answered(bhttp::Response::new(status, Vec::new(), body.to_vec()), None),
                }
            }
        }
    }
}

fn pick<T>(items: &[T], index: u64) -> Option<&T> {
    items.get(usize::try_from(index % items.len().max(1) as u64).ok()?)
}

fn no_body() -> Outcome {
    Outcome::Failed { kind: ErrorKind::InvalidResponse, status: None, message: "no request body to send".into() }
}

/// An inner answer: a KServe V2 response, or an error status classified by the client core.
fn answered(response: bhttp::Response, crypto: Option<Duration>) -> Outcome {
    match check_status(response) {
        Ok(response) => parsed(&response.body, crypto),
        Err(e) => classify(&e.into()),
    }
}

fn parsed(body: &[u8], crypto: Option<Duration>) -> Outcome {
    match serde_json::from_slice::<InferenceResponse>(body) {
        Ok(_) => Outcome::Ok { crypto },
        Err(e) => Outcome::Failed {
            kind: ErrorKind::InvalidResponse,
            status: None,
            message: format!("not a KServe V2 inference response: {e}"),
        },
    }
}

/// The kind of an inner error status: the gateway's admission refusals have their own.
fn inner_kind(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::RateLimited,
        503 => ErrorKind::Busy,
        _ => ErrorKind::Inference,
    }
}

fn transport(e: &reqwest::Error) -> Outcome {
    Outcome::Failed { kind: ErrorKind::Transport, status: None, message: Report(e).to_string() }
}

/// Maps an SDK error to the report's kinds; the message is the error with its causes.
pub fn classify(e: &Error) -> Outcome {
    let (kind, status) = match e {
        Error::Transport(_) | Error::Timeout(_) => (ErrorKind::Transport, None),
        Error::Exchange(exchange) => match exchange {
            ExchangeError::Overloaded { .. } => (ErrorKind::Overloaded, Some(503)),
            ExchangeError::Problem { status, .. } => (ErrorKind::Problem, Some(*status)),
            ExchangeError::Inference { status, .. } => (inner_kind(*status), Some(*status)),
            ExchangeError::Decrypt | ExchangeError::Protocol(_) => (ErrorKind::Decryption, None),
            _ => (ErrorKind::InvalidResponse, exchange.status()),
        },
        _ => (ErrorKind::InvalidResponse, None),
    };
    Outcome::Failed { kind, status, message: Report(e).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_errors_land_in_their_kind() {
        let kind = |e: Error| match classify(&e) {
            Outcome::Failed { kind, .. } => kind,
            Outcome::Ok { .. } => unreachable!(),
        };
        let exchange = |e: ExchangeError| kind(Error::Exchange(e));
        let problem = ExchangeError::Problem { status: 422, problem_type: "x".into(), title: "t".into(), detail: None };
        assert_eq!(exchange(problem), ErrorKind::Problem);
        let inference = |status| ExchangeError::Inference { status, message: "m".into() };
        assert_eq!(exchange(inference(404)), ErrorKind::Inference);
        assert_eq!(exchange(inference(429)), ErrorKind::RateLimited);
        assert_eq!(exchange(inference(503)), ErrorKind::Busy);
        assert_eq!(exchange(ExchangeError::Overloaded { retry_after: None }), ErrorKind::Overloaded);
        assert_eq!(exchange(ExchangeError::Decrypt), ErrorKind::Decryption);
        let unexpected = ExchangeError::UnexpectedResponse {
            url: "u".into(),
            status: 200,
            content_type: "text/html".into(),
            expected: "message/ohttp-res",
        };
        assert_eq!(exchange(unexpected), ErrorKind::InvalidResponse);
    }

    #[test]
    fn answers_are_checked() {
        assert!(matches!(parsed(br#"{"model_name":"m","outputs":[]}"#, None), Outcome::Ok { .. }));
        assert!(matches!(parsed(b"{}", None), Outcome::Failed { kind: ErrorKind::InvalidResponse, .. }));
        match answered(bhttp::Response::new(404, Vec::new(), br#"{"error":"unknown model 'x'"}"#.to_vec()), None) {
            Outcome::Failed { kind, status, message } => {
                assert_eq!((kind, status), (ErrorKind::Inference, Some(404)));
                assert!(message.contains("unknown model"));
            }
            Outcome::Ok { .. } => panic!("an error status is not a success"),
        }
        assert_eq!(pick(&[1, 2, 3], 4), Some(&2));
        assert_eq!(pick::<u8>(&[], 4), None);
    }
}

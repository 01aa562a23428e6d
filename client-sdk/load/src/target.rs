//! The things `sealgate-load` can load: the encrypted OHTTP endpoint through the SDK, one
//! request per call or (`--stream N`) one chunked NDJSON stream of N lines per call, and the
//! gateway's benchmark-only plaintext path (`--compare-plaintext`).
//!
//! Both send the same pre-serialized KServe bodies over the same kind of connection
//! (TLS 1.3, same HTTP version, connections reused), so the difference between their
//! results is what Oblivious HTTP costs. Every answer is classified into one [`Outcome`]:
//! a success (a 2xx inference response that parses) or an error of one [`ErrorKind`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealgate_client::inference::{InferenceRequest, InferenceResponse, TensorData};
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
        /// How often it was sent again after getting no answer (`--retries`).
        resent: u32,
    },
    /// A stream that ran to its end (some of its lines may have failed).
    Streamed(StreamStats),
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

/// What one streamed request measured, line by line.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Rows in the lines answered with an inference response.
    pub rows_ok: u64,
    /// Rows in the lines answered with an error line.
    pub rows_failed: u64,
    /// From starting the request to the first answer line.
    pub first_line: Option<Duration>,
    /// For each answered line, from when the SDK took it from the input to its answer.
    pub line_latencies: Vec<Duration>,
    /// The first error line's message (never request data).
    pub first_error: Option<String>,
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
    /// Through the SDK's `infer_stream_lines`: one chunked OHTTP request of `lines` NDJSON
    /// lines. Like the other targets' bodies, each line's JSON is made once, before the run,
    /// and each answer line is checked for an error line but not parsed (the plaintext side
    /// does not parse its answers either): what is measured is the exchange, not the load
    /// generator's JSON.
    Stream {
        /// The SDK client.
        client: Client,
        /// The model.
        model: String,
        /// Each line's JSON (compact, no line break), used in turn.
        requests: Arc<Vec<Vec<u8>>>,
        /// Lines per stream.
        lines: u64,
        /// Rows per line (the first dimension of the line's first input).
        rows_per_line: u64,
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
        /// Rows per body, counted when the run reports rows (`--stream`).
        rows: Option<u64>,
        /// The bodies are NDJSON (`--stream N --plaintext-as ndjson`): one answer line per
        /// request line is expected.
        ndjson: Option<u64>,
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
    /// How often a request that got no answer is sent again (`--retries`).
    pub retries: u32,
    /// Prepare the next request's HPKE encapsulation off the critical path (the SDK's
    /// default; `--no-precompute` turns it off).
    pub precompute: bool,
}

/// Builds the SDK client for the encrypted target (no network traffic yet). A request that
/// got no answer is sent again only with `--retries` (default 0: a load test counts
/// failures rather than hiding them), and every resending is counted in the report.
pub fn sdk_client(settings: &Settings<'_>) -> Result<Client, Error> {
    let mut builder = Client::builder(settings.url)
        .ca_certificate_pem(settings.ca_pem)
        .http_version(settings.http_version)
        .timeout(settings.timeout)
        .connect_retries(settings.retries)
        .precompute(settings.precompute);
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

    /// The streaming target for `model`: `lines` lines per request, the bodies in turn.
    pub fn stream(client: Client, model: &str, bodies: &[Vec<u8>], lines: u64) -> Result<Self> {
        let requests: Vec<InferenceRequest> = bodies
            .iter()
            .map(|body| serde_json::from_slice(body).context("an input body is not an inference request"))
            .collect::<Result<_>>()?;
        let rows_per_line = requests.first().map_or(1, rows_of);
        let requests = requests
            .iter()
            .map(|request| serde_json::to_vec(request).context("serializing a line"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Target::Stream { client, model: model.to_owned(), requests: Arc::new(requests), lines, rows_per_line })
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
        Ok(Target::Plaintext { http, url, authorization, bodies, rows: None, ndjson: None })
    }

    /// Counts `rows` rows per successful request in the report (the plaintext side of a
    /// `--stream` comparison).
    pub fn counting_rows(mut self, rows_per_request: u64) -> Self {
        if let Target::Plaintext { rows, .. } = &mut self {
            *rows = Some(rows_per_request);
        }
        self
    }

    /// Sends the bodies as NDJSON of `lines` lines each (the plaintext side of `--stream N
    /// --plaintext-as ndjson`): the same per-line scoring as the stream, without OHTTP.
    pub fn sending_ndjson(mut self, lines: u64) -> Self {
        if let Target::Plaintext { ndjson, .. } = &mut self {
            *ndjson = Some(lines);
        }
        self
    }

    /// Rows per successful plain request, when the run reports rows.
    pub fn rows_per_request(&self) -> Option<u64> {
        match self {
            Target::Plaintext { rows, .. } => *rows,
            _ => None,
        }
    }

    /// Which endpoint this is.
    pub fn mode(&self) -> Mode {
        match self {
            Target::Encrypted { .. } | Target::Stream { .. } => Mode::Encrypted,
            Target::Plaintext { .. } => Mode::Plaintext,
        }
    }

    /// Sends request number `index` (bodies are used in turn) and classifies the answer.
    pub async fn send(&self, index: u64) -> Outcome {
        match self {
            Target::Encrypted { client, requests } => {
                let Some(request) = pick(requests, index) else { return no_body() };
                match client.send_timed(request).await {
                    Ok((response, timings)) => answered(response, Some(timings.crypto()), timings.resent),
                    Err(e) => classify(&e),
                }
            }
            Target::Stream { client, model, requests, lines, rows_per_line } => {
                stream(client, model, requests, *lines, *rows_per_line).await
            }
            Target::Plaintext { http, url, authorization, bodies, ndjson, .. } => {
                let Some(body) = pick(bodies, index) else { return no_body() };
                let content_type = if ndjson.is_some() { "application/x-ndjson" } else { "application/json" };
                let mut request = http
                    .post(url.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
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
                    200 if ndjson.is_some() => ndjson_answered(&body, ndjson.unwrap_or(0)),
                    _ => answered(bhttp::Response::new(status, Vec::new(), body.to_vec()), None, 0),
                }
            }
        }
    }
}

/// A plaintext NDJSON answer: complete when it has one line per request line and no error
/// line among them.
fn ndjson_answered(body: &[u8], lines: u64) -> Outcome {
    let answers: Vec<&[u8]> = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let failed = answers.iter().filter(|l| sealgate_client::line_error(l).is_some()).count();
    if answers.len() as u64 == lines && failed == 0 {
        return Outcome::Ok { crypto: None, resent: 0 };
    }
    Outcome::Failed {
        kind: ErrorKind::InvalidResponse,
        status: Some(200),
        message: format!("{} answer lines for {lines} request lines, {failed} of them errors", answers.len()),
    }
}

/// One stream of `lines` lines: each line's send time is taken when the SDK pulls it from
/// the input (which is when it is sealed and handed to the connection), its answer time
/// when the SDK yields the answer.
async fn stream(client: &Client, model: &str, requests: &Arc<Vec<Vec<u8>>>, lines: u64, rows_per_line: u64) -> Outcome {
    use futures_util::StreamExt as _;
    let started = Instant::now();
    let sent_at = Arc::new(Mutex::new(Vec::with_capacity(usize::try_from(lines).unwrap_or(0).min(1 << 24))));
    let input = {
        let (requests, sent_at) = (requests.clone(), sent_at.clone());
        futures_util::stream::iter(0..lines).filter_map(move |i| {
            let request = pick(&requests, i).cloned();
            sent_at.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now());
            std::future::ready(request)
        })
    };
    let mut answers = std::pin::pin!(client.infer_stream_lines(model, input));
    let mut stats = StreamStats::default();
    let mut answered = 0usize;
    while let Some(answer) = answers.next().await {
        let now = Instant::now();
        stats.first_line.get_or_insert(now - started);
        match answer {
            Ok(_) => stats.rows_ok += rows_per_line,
            Err(Error::Exchange(e @ ExchangeError::Line { .. })) => {
                stats.rows_failed += rows_per_line;
                stats.first_error.get_or_insert_with(|| e.to_string());
            }
            // The stream as a whole failed: nothing after this.
            Err(e) => return classify(&e),
        }
        let sent = sent_at.lock().unwrap_or_else(PoisonError::into_inner).get(answered).copied();
        stats.line_latencies.push(now.saturating_duration_since(sent.unwrap_or(started)));
        answered += 1;
    }
    if answered as u64 != lines {
        return Outcome::Failed {
            kind: ErrorKind::InvalidResponse,
            status: None,
            message: format!("the stream ended after {answered} of {lines} answers"),
        };
    }
    Outcome::Streamed(stats)
}

/// The rows of a request: the first dimension of its first input.
fn rows_of(request: &InferenceRequest) -> u64 {
    request.inputs.first().and_then(|input| input.shape.first().copied()).unwrap_or(1)
}

/// One NDJSON body of `lines` lines (the bodies in turn, each on one line) and its rows.
pub fn ndjson_body(bodies: &[Vec<u8>], lines: u64) -> Result<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut rows = 0;
    for i in 0..lines {
        let body = pick(bodies, i).context("no input body")?;
        let request: InferenceRequest =
            serde_json::from_slice(body).context("an input body is not an inference request")?;
        out.extend(serde_json::to_vec(&request).context("serializing a line")?);
        out.push(b'\n');
        rows += rows_of(&request);
    }
    Ok((out, rows))
}

/// One batch request holding the rows of `lines` lines (the bodies in turn): every input's
/// data concatenated, its first dimension summed. The plaintext side of `--stream`.
pub fn batch_body(bodies: &[Vec<u8>], lines: u64) -> Result<(Vec<u8>, u64)> {
    let requests: Vec<InferenceRequest> = bodies
        .iter()
        .map(|body| serde_json::from_slice(body).context("an input body is not an inference request"))
        .collect::<Result<_>>()?;
    let first = requests.first().context("no input body")?;
    let mut batch = first.clone();
    for input in &mut batch.inputs {
        match input.shape.first_mut() {
            Some(first) => *first = 0,
            None => anyhow::bail!("input '{}' has no batch dimension to put rows in", input.name),
        }
        input.data = match input.data {
            TensorData::Bool(_) => TensorData::Bool(Vec::new()),
            TensorData::Int(_) => TensorData::Int(Vec::new()),
            TensorData::Float(_) => TensorData::Float(Vec::new()),
        };
    }
    for i in 0..lines {
        let request = pick(&requests, i).context("no input body")?;
        for (into, from) in batch.inputs.iter_mut().zip(&request.inputs) {
            if let Some(first) = into.shape.first_mut() {
                *first += from.shape.first().copied().unwrap_or(1);
            }
            match (&mut into.data, &from.data) {
                (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
                (TensorData::Int(a), TensorData::Int(b)) => a.extend_from_slice(b),
                (TensorData::Float(a), TensorData::Float(b)) => a.extend_from_slice(b),
                _ => anyhow::bail!("input '{}' changes its kind of data between bodies", into.name),
            }
        }
    }
    let rows = rows_of(&batch);
    Ok((serde_json::to_vec(&batch).context("serializing the batch request")?, rows))
}

fn pick<T>(items: &[T], index: u64) -> Option<&T> {
    items.get(usize::try_from(index % items.len().max(1) as u64).ok()?)
}

fn no_body() -> Outcome {
    Outcome::Failed { kind: ErrorKind::InvalidResponse, status: None, message: "no request body to send".into() }
}

/// An inner answer: a KServe V2 response, or an error status classified by the client core.
fn answered(response: bhttp::Response, crypto: Option<Duration>, resent: u32) -> Outcome {
    match check_status(response) {
        Ok(response) => parsed(&response.body, crypto, resent),
        Err(e) => classify(&e.into()),
    }
}

fn parsed(body: &[u8], crypto: Option<Duration>, resent: u32) -> Outcome {
    match serde_json::from_slice::<InferenceResponse>(body) {
        Ok(_) => Outcome::Ok { crypto, resent },
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
            Outcome::Ok { .. } | Outcome::Streamed(_) => unreachable!(),
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
        assert!(matches!(parsed(br#"{"model_name":"m","outputs":[]}"#, None, 0), Outcome::Ok { .. }));
        assert!(matches!(parsed(b"{}", None, 0), Outcome::Failed { kind: ErrorKind::InvalidResponse, .. }));
        match answered(bhttp::Response::new(404, Vec::new(), br#"{"error":"unknown model 'x'"}"#.to_vec()), None, 0) {
            Outcome::Failed { kind, status, message } => {
                assert_eq!((kind, status), (ErrorKind::Inference, Some(404)));
                assert!(message.contains("unknown model"));
            }
            Outcome::Ok { .. } | Outcome::Streamed(_) => panic!("an error status is not a success"),
        }
        assert_eq!(pick(&[1, 2, 3], 4), Some(&2));
        let line = |data: Vec<f64>| {
            let rows = data.len() as u64 / 2;
            let request = InferenceRequest {
                id: None,
                inputs: vec![sealgate_client::inference::InputTensor {
                    name: "input".into(),
                    shape: vec![rows, 2],
                    datatype: sealgate_client::inference::DataType::Fp32,
                    data: TensorData::Float(data),
                }],
                outputs: None,
            };
            serde_json::to_vec(&request).unwrap()
        };
        let (body, rows) = batch_body(&[line(vec![1.0, 2.0]), line(vec![3.0, 4.0, 5.0, 6.0])], 3).unwrap();
        assert_eq!(rows, 1 + 2 + 1);
        let batch: InferenceRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(batch.inputs[0].shape, [4, 2]);
        assert_eq!(batch.inputs[0].data, TensorData::Float(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0]));
        let (body, rows) = ndjson_body(&[line(vec![1.0, 2.0]), line(vec![3.0, 4.0, 5.0, 6.0])], 3).unwrap();
        assert_eq!((body.iter().filter(|&&b| b == b'\n').count(), rows), (3, 4));
        assert!(matches!(ndjson_answered(b"{}\n{}\n", 2), Outcome::Ok { .. }));
        let error_line = br#"{"error":"bad","status":400,"line":2}"#;
        assert!(matches!(ndjson_answered(&[&b"{}\n"[..], error_line].concat(), 2), Outcome::Failed { .. }));
        assert!(matches!(ndjson_answered(b"{}\n", 2), Outcome::Failed { .. }));
        assert_eq!(pick::<u8>(&[], 4), None);
    }
}

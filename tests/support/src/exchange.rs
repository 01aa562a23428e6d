//! Raw HTTP and hand-made OHTTP exchanges with a [`Gateway`], for the tests that must send
//! what no well-behaved client sends: a plain HTTPS client that trusts the gateway's CA,
//! encapsulation with `sealgate_protocol` directly, inner Binary HTTP requests built by
//! hand, and outer responses read to the end.
//!
//! The policy a well-behaved client follows (the inner request's headers, reading an answer
//! and an inner error) is not repeated here: it comes from the client core, like the SDK's.

use std::sync::Arc;
use std::time::Duration;

use rustls::SupportedProtocolVersion;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sealgate_client::{ExchangeError, Report};
use sealgate_client_core::{Finished, OuterResponse, Preferences};
use sealgate_protocol::{Aead, ClientRequest, ClientResponse, Kdf, KeyConfig, SymmetricSuite, bhttp, media_type};

use crate::Gateway;

impl Gateway {
    /// A plain HTTPS client that trusts the gateway's CA and speaks only TLS 1.3.
    pub fn raw_http(&self) -> reqwest::Client {
        self.raw_http_with_versions(&[&rustls::version::TLS13])
    }

    /// A plain HTTPS client that trusts the gateway's CA and offers only `versions`.
    pub fn raw_http_with_versions(&self, versions: &[&'static SupportedProtocolVersion]) -> reqwest::Client {
        self.raw_http_configured(versions, Duration::from_secs(30))
    }

    /// [`Gateway::raw_http`] that waits up to `timeout` for a whole exchange (a long stream
    /// on a busy machine).
    pub fn raw_http_patient(&self, timeout: Duration) -> reqwest::Client {
        self.raw_http_configured(&[&rustls::version::TLS13], timeout)
    }

    fn raw_http_configured(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        timeout: Duration,
    ) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem()) {
            roots.add(cert.expect("the CA file holds PEM certificates")).expect("a valid CA certificate");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("the provider supports these TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .build()
            .expect("building the HTTPS client")
    }

    /// The client core's preferences for this gateway: its authority and its test token.
    pub fn preferences(&self) -> Preferences {
        let token = self.token().map(|t| zeroize::Zeroizing::new(t.to_owned()));
        Preferences::new(self.url().trim_start_matches("https://")).token(token)
    }

    /// Seals a Binary HTTP request to `config` with the client core and opens the answer:
    /// the whole exchange a client makes, with only a `Date` of now added when the request
    /// has none (the caller sets every other inner header, `authorization` included; send an
    /// undated request with [`Gateway::exchange_as_is`]). Panics unless the core reads the
    /// answer as a decrypted response.
    pub async fn exchange(&self, config: &KeyConfig, request: &bhttp::Request) -> bhttp::Response {
        let mut request = request.clone();
        if request.header("date").is_none() {
            date_now(&mut request);
        }
        self.exchange_as_is(config, &request).await
    }

    /// [`Gateway::exchange`] with the request exactly as given, `Date` or not.
    pub async fn exchange_as_is(&self, config: &KeyConfig, request: &bhttp::Request) -> bhttp::Response {
        let session = self.preferences().adopt(config.clone()).expect("no pin to check");
        let sealed = session.seal(&request.encode(), &mut rand_core::UnwrapErr(getrandom::SysRng)).expect("sealing");
        let outer = self.post_encapsulated(Some(media_type::OHTTP_REQUEST), sealed.encapsulated).await;
        match sealed.pending.finish(&OuterResponse::new(outer.status, &outer.content_type, &outer.body)) {
            Ok(Finished::Answer(response)) => response,
            other => panic!("expected a decrypted answer, got {other:?}: {}", outer.text()),
        }
    }

    /// `GET` a path of the gateway with [`Gateway::raw_http`].
    pub async fn get(&self, path: &str) -> RawResponse {
        let response = self
            .raw_http()
            .get(self.endpoint(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {}", Report(&e)));
        RawResponse::read(response).await
    }

    /// Fetches and decodes the key configuration list; checks its media type. Returns the
    /// first configuration (the gateway has one key).
    pub async fn fetch_key_config(&self) -> KeyConfig {
        let response = self.get(sealgate_protocol::GATEWAY_PATH).await;
        assert_eq!(response.status, 200, "GET {}: {}", sealgate_protocol::GATEWAY_PATH, response.text());
        assert_eq!(response.content_type, media_type::OHTTP_KEYS);
        let configs = KeyConfig::decode_list(&response.body).expect("a valid application/ohttp-keys body");
        configs.into_iter().next().expect("decode_list never returns an empty list")
    }

    /// `POST`s `body` to the gateway resource with the given content type (none when `None`).
    pub async fn post_encapsulated(&self, content_type: Option<&str>, body: Vec<u8>) -> RawResponse {
        let mut request = self.raw_http().post(self.endpoint(sealgate_protocol::GATEWAY_PATH)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("POST to the gateway: {}", Report(&e)));
        RawResponse::read(response).await
    }
}

/// An outer HTTP response, fully read.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The media type of `content-type`, lowercase, without parameters; empty when absent.
    pub content_type: String,
    /// `retry-after`, when present.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Reads a reqwest response to the end.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let retry_after =
            response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.unwrap_or_else(|e| panic!("reading a response body: {}", Report(&e)));
        Self { status, content_type, retry_after, body: body.to_vec() }
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an RFC 9457 problem: `status`, `application/problem+json`, a JSON object
    /// whose `type` is `problem_type` (`about:blank` for plain HTTP errors), whose `status`
    /// repeats the status and that has a title. Returns the parsed body.
    pub fn assert_problem(&self, status: u16, problem_type: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "expected status {status}, got {}: {}", self.status, self.text());
        assert_eq!(self.content_type, media_type::PROBLEM_JSON, "content type of a {status} answer");
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the problem body is not JSON ({e}): {}", self.text()));
        assert_eq!(json["type"], problem_type, "problem type in {json}");
        assert_eq!(json["status"], status, "problem status in {json}");
        assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()), "problem title in {json}");
        json
    }
}

/// Encapsulates `plaintext` (normally a Binary HTTP request) to `config` with HKDF-SHA256
/// and `aead`, using the system RNG.
pub fn encapsulate(config: &KeyConfig, aead: Aead, plaintext: &[u8]) -> (Vec<u8>, ClientResponse) {
    ClientRequest::new(config, SymmetricSuite::new(Kdf::HkdfSha256, aead))
        .expect("the gateway's key configuration offers this AEAD")
        .encapsulate(plaintext, &mut rand_core::UnwrapErr(getrandom::SysRng))
        .expect("encapsulating a request")
}

/// An inner request as the SDK sends it (the client core's [`Preferences::inner_request`]):
/// `method path` to the gateway's authority, with the gateway's [`Gateway::token`], a JSON
/// content type when there is a body, and a `Date` of now.
pub fn inner_request(gateway: &Gateway, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
    let mut request = gateway.preferences().inner_request(method, path, body);
    date_now(&mut request);
    request
}

/// The system clock, UNIX seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sets the request's `Date` to now, as every client does (the gateway refuses a request
/// without one, RFC 9458 section 6.5).
pub fn date_now(request: &mut bhttp::Request) {
    sealgate_client_core::set_date(request, unix_now());
}

/// The status and KServe `{"error": ...}` message of an inner error response, as the client
/// core reads them.
pub fn inner_error(response: &bhttp::Response) -> (u16, String) {
    match sealgate_client::check_status(response.clone()) {
        Err(ExchangeError::Inference { status, message }) => (status, message),
        other => panic!("expected an inner error, got {other:?}"),
    }
}

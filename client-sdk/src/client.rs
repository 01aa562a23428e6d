//! The client: configuration, key-config cache, one encrypted exchange, typed calls.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealgate_protocol::inference::{InferenceRequest, InferenceResponse, ModelList, ModelMetadata};
use sealgate_protocol::{Aead, ClientRequest, Kdf, Kem, KeyConfig, SymmetricSuite, bhttp, media_type};
use serde::Deserialize;
use tokio::sync::RwLock;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    url: String,
    roots: Vec<CertificateDer<'static>>,
    token: Option<Zeroizing<String>>,
    timeout: Duration,
    connect_timeout: Duration,
    connect_retries: u32,
    pinned_key_config: Option<[u8; 32]>,
    aead: Aead,
    kem: Kem,
    http_version: HttpVersion,
    error: Option<Error>,
}

/// Which HTTP version the client speaks to the gateway (over TLS 1.3 either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpVersion {
    /// Offer HTTP/2 and HTTP/1.1 in ALPN and use what the server picks (the default).
    #[default]
    Negotiate,
    /// HTTP/1.1 only: one request at a time per connection, several pooled connections.
    Http1,
    /// HTTP/2 only: concurrent requests multiplexed on one connection.
    Http2,
}

/// Where the client's own cryptography time went in one [`Client::send_timed`] exchange.
///
/// Covers the HPKE work of RFC 9458 on the client side only: sealing the request (§4.3,
/// including the fresh encapsulation) and opening the response (§4.4). Binary HTTP
/// encoding, JSON and the network are not in it. When the gateway asked for a key refresh
/// and the request was sent twice, both attempts are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExchangeTimings {
    /// Time spent encapsulating the request.
    pub encapsulate: Duration,
    /// Time spent decapsulating the response.
    pub decapsulate: Duration,
}

impl ExchangeTimings {
    /// Encapsulation plus decapsulation.
    pub fn crypto(&self) -> Duration {
        self.encapsulate + self.decapsulate
    }
}

impl ClientBuilder {
    /// Trusts the CA certificate(s) in this PEM text (for example the gateway's development
    /// CA). Without one, no server is trusted: the SDK never falls back to an unpinned
    /// connection.
    pub fn ca_certificate_pem(mut self, pem: &[u8]) -> Self {
        match CertificateDer::pem_slice_iter(pem).collect::<std::result::Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => self.roots.extend(certs),
            Ok(_) => self.error = Some(Error::InvalidCaCertificate("no certificate in the PEM text".into())),
            Err(e) => self.error = Some(Error::InvalidCaCertificate(e.to_string())),
        }
        self
    }

    /// Reads [`ClientBuilder::ca_certificate_pem`] from a file.
    pub fn ca_certificate_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| Error::InvalidCaCertificate(format!("{}: {e}", path.display())))?;
        Ok(self.ca_certificate_pem(&pem))
    }

    /// Sends `authorization: Bearer TOKEN` inside every encrypted request.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Zeroizing::new(token.into()));
        self
    }

    /// Reads the bearer token from a file, such as `.sealgate/dev.token` (see
    /// [`crate::read_token_file`]).
    pub fn bearer_token_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        self.token = Some(crate::read_token_file(path)?);
        Ok(self)
    }

    /// Total time allowed for one call (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time allowed to connect (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often to retry when connecting fails (default 2). Only connection failures are
    /// retried: then the gateway has seen nothing.
    pub fn connect_retries(mut self, retries: u32) -> Self {
        self.connect_retries = retries;
        self
    }

    /// Accepts only a key configuration whose SHA-256 is `sha256` (as printed by
    /// `sealgate serve`), so a compromised relay cannot substitute its own key.
    pub fn pin_key_config_sha256(mut self, sha256: [u8; 32]) -> Self {
        self.pinned_key_config = Some(sha256);
        self
    }

    /// The AEAD to use when the gateway offers it (default AES-128-GCM).
    pub fn aead(mut self, aead: Aead) -> Self {
        self.aead = aead;
        self
    }

    /// The key encapsulation to prefer when the gateway offers it (default X25519).
    /// `Kem::XWing` (ML-KEM-768 + X25519) keeps requests confidential against a future
    /// quantum computer, for about 1.1 KB more per request. A gateway offering only the other
    /// KEM is still used; pin the key configuration to insist.
    pub fn kem(mut self, kem: Kem) -> Self {
        self.kem = kem;
        self
    }

    /// Which HTTP version to speak (default: negotiate HTTP/2 or HTTP/1.1 with ALPN).
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.http_version = version;
        self
    }

    /// Builds the client (no network traffic yet).
    pub fn build(self) -> Result<Client> {
        let base = url::Url::parse(&self.url).map_err(|e| Error::InvalidUrl(e.to_string()))?;
        if base.scheme() != "https" {
            return Err(Error::InvalidUrl("the gateway URL must be https://".into()));
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let authority = match (base.host_str(), base.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(Error::InvalidUrl("the gateway URL has no host".into())),
        };
        if self.roots.is_empty() {
            return Err(Error::InvalidCaCertificate("no CA certificate configured; call ca_certificate_file".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.roots {
            roots.add(cert).map_err(|e| Error::InvalidCaCertificate(e.to_string()))?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(tls_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // reqwest sets ALPN only on TLS configurations it builds itself; with a preconfigured
        // one it uses whatever protocol the server selects from our list (none: HTTP/1.1).
        tls.alpn_protocols = match self.http_version {
            HttpVersion::Negotiate => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
            HttpVersion::Http2 => vec![b"h2".to_vec()],
        };
        let mut http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60));
        http = match self.http_version {
            HttpVersion::Negotiate => http,
            HttpVersion::Http1 => http.http1_only(),
            // Without this a server that ignores ALPN would get HTTP/1.1 silently.
            HttpVersion::Http2 => http.http2_prior_knowledge(),
        };
        let http = http.build().map_err(|e| Error::Transport(e.to_string()))?;
        let gateway_url = base.join(sealgate_protocol::GATEWAY_PATH).map_err(|e| Error::InvalidUrl(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                gateway_url,
                authority,
                token: self.token,
                connect_retries: self.connect_retries,
                pinned_key_config: self.pinned_key_config,
                aead: self.aead,
                kem: self.kem,
                key_config: RwLock::new(None),
            }),
        })
    }
}

/// The TLS 1.3 provider: AEAD suites only, post-quantum hybrid key exchange first.
fn tls_provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![aws_lc_rs::kx_group::X25519MLKEM768, aws_lc_rs::kx_group::X25519],
        ..aws_lc_rs::default_provider()
    }
}

/// A Sealgate client. Cheap to clone; clones share connections and the key cache.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    gateway_url: url::Url,
    authority: String,
    token: Option<Zeroizing<String>>,
    connect_retries: u32,
    pinned_key_config: Option<[u8; 32]>,
    aead: Aead,
    kem: Kem,
    key_config: RwLock<Option<KeyConfig>>,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

impl Client {
    /// Starts configuring a client for the gateway at `url` (such as `https://127.0.0.1:8443`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            roots: Vec::new(),
            token: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            connect_retries: 2,
            pinned_key_config: None,
            aead: Aead::Aes128Gcm,
            kem: Kem::X25519HkdfSha256,
            http_version: HttpVersion::Negotiate,
            error: None,
        }
    }

    /// The cached key configuration, fetching it on first use.
    pub async fn key_config(&self) -> Result<KeyConfig> {
        if let Some(config) = self.inner.key_config.read().await.as_ref() {
            return Ok(config.clone());
        }
        self.refresh_key_config().await
    }

    /// Fetches the key configuration now (RFC 9540 discovery) and caches it.
    pub async fn refresh_key_config(&self) -> Result<KeyConfig> {
        let response = self.with_retries(|| self.inner.http.get(self.inner.gateway_url.clone()).send()).await?;
        let status = response.status();
        let content_type = header_str(response.headers().get(CONTENT_TYPE));
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(problem(status.as_u16(), &body));
        }
        if !content_type.eq_ignore_ascii_case(media_type::OHTTP_KEYS) {
            return Err(Error::UnexpectedResponse(format!("key configuration has content type '{content_type}'")));
        }
        let configs = KeyConfig::decode_list(&body).map_err(|e| Error::NoUsableKeyConfig(e.to_string()))?;
        let config = self.choose(configs)?;
        if let Some(pin) = self.inner.pinned_key_config {
            let got = config.sha256();
            if got != pin {
                return Err(Error::KeyConfigPinMismatch { got: hex::encode(got) });
            }
        }
        *self.inner.key_config.write().await = Some(config.clone());
        Ok(config)
    }

    fn choose(&self, configs: Vec<KeyConfig>) -> Result<KeyConfig> {
        choose_config(configs, self.inner.pinned_key_config, self.inner.kem, self.inner.aead)
    }

    /// Sends one Binary HTTP request through the gateway and returns the decrypted response.
    /// Refetches the key configuration once if the gateway says it changed.
    pub async fn send(&self, request: &bhttp::Request) -> Result<bhttp::Response> {
        self.send_timed(request).await.map(|(response, _)| response)
    }

    /// [`Client::send`], also returning how long the client spent in HPKE (for load tests
    /// such as `sealgate-load`, which report the client's crypto time apart from the
    /// round trip).
    pub async fn send_timed(&self, request: &bhttp::Request) -> Result<(bhttp::Response, ExchangeTimings)> {
        let encoded = Zeroizing::new(request.encode());
        let mut timings = ExchangeTimings::default();
        let response = match self.exchange(&encoded, &mut timings).await {
            Err(e) if e.is_key_config_mismatch() => {
                self.refresh_key_config().await?;
                self.exchange(&encoded, &mut timings).await
            }
            other => other,
        }?;
        Ok((response, timings))
    }

    async fn exchange(&self, encoded: &[u8], timings: &mut ExchangeTimings) -> Result<bhttp::Response> {
        let config = self.key_config().await?;
        let suite = config
            .suite_for(self.inner.aead)
            .or_else(|| config.suites().first().copied())
            .unwrap_or(SymmetricSuite::new(Kdf::HkdfSha256, self.inner.aead));
        let started = Instant::now();
        let (encapsulated, pending) =
            ClientRequest::new(&config, suite)?.encapsulate(encoded, &mut rand_core::UnwrapErr(getrandom::SysRng))?;
        timings.encapsulate += started.elapsed();
        let response = self
            .with_retries(|| {
                self.inner
                    .http
                    .post(self.inner.gateway_url.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_REQUEST))
                    .body(encapsulated.clone())
                    .send()
            })
            .await?;
        let status = response.status();
        let content_type = header_str(response.headers().get(CONTENT_TYPE));
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Err(Error::Overloaded { retry_after: retry_after(response.headers()) });
        }
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(problem(status.as_u16(), &body));
        }
        if !content_type.eq_ignore_ascii_case(media_type::OHTTP_RESPONSE) {
            return Err(Error::UnexpectedResponse(format!("content type '{content_type}'")));
        }
        let started = Instant::now();
        let plaintext = pending.decapsulate(&body);
        timings.decapsulate += started.elapsed();
        let plaintext = Zeroizing::new(plaintext?);
        Ok(bhttp::Response::decode(&plaintext)?)
    }

    async fn with_retries<F, Fut>(&self, mut send: F) -> Result<reqwest::Response>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    {
        let mut attempt = 0;
        loop {
            match send().await {
                Err(e) if e.is_connect() && attempt < self.inner.connect_retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    /// The inner request the typed calls send: `method path` to the gateway's authority,
    /// accepting JSON, with a JSON content type when there is a body and the bearer token
    /// when one is configured. Hand it to [`Client::send`] or [`Client::send_timed`].
    pub fn inner_request(&self, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
        let mut request = bhttp::Request::new(method, "https", &self.inner.authority, path);
        request.headers.push(bhttp::Field::new("accept", "application/json"));
        if !body.is_empty() {
            request.headers.push(bhttp::Field::new("content-type", "application/json"));
        }
        if let Some(token) = &self.inner.token {
            request.headers.push(bhttp::Field::new("authorization", format!("Bearer {}", token.as_str())));
        }
        request.body = body;
        request
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Vec<u8>) -> Result<T> {
        let response = self.send(&self.inner_request(method, path, body)).await?;
        if !(200..300).contains(&response.status) {
            return Err(Error::inference(response.status, &response.body));
        }
        serde_json::from_slice(&response.body).map_err(|e| Error::InvalidResponse(e.to_string()))
    }

    /// Runs `request` on the newest version of `model`.
    pub async fn infer(&self, model: &str, request: &InferenceRequest) -> Result<InferenceResponse> {
        let body = serde_json::to_vec(request).map_err(|e| Error::InvalidResponse(e.to_string()))?;
        self.call("POST", &format!("/v2/models/{}/infer", path_segment(model)?), body).await
    }

    /// Lists the models the gateway serves.
    pub async fn models(&self) -> Result<ModelList> {
        self.call("GET", "/v2/models", Vec::new()).await
    }

    /// The inputs and outputs of `model`.
    pub async fn model_metadata(&self, model: &str) -> Result<ModelMetadata> {
        self.call("GET", &format!("/v2/models/{}", path_segment(model)?), Vec::new()).await
    }
}

/// Prefers a pinned configuration, then one with the chosen KEM and AEAD, then the chosen
/// KEM with any AEAD, then the chosen AEAD with any KEM, then the gateway's first.
fn choose_config(configs: Vec<KeyConfig>, pin: Option<[u8; 32]>, kem: Kem, aead: Aead) -> Result<KeyConfig> {
    if let Some(c) = pin.and_then(|pin| configs.iter().find(|c| c.sha256() == pin)) {
        return Ok(c.clone());
    }
    let preferences: [&dyn Fn(&KeyConfig) -> bool; 3] =
        [&|c| c.kem() == kem && c.suite_for(aead).is_some(), &|c| c.kem() == kem, &|c| c.suite_for(aead).is_some()];
    let preferred = preferences.iter().find_map(|matches| configs.iter().find(|c| matches(c)).cloned());
    preferred.or_else(|| configs.into_iter().next()).ok_or_else(|| Error::NoUsableKeyConfig("empty list".into()))
}

/// Model names travel in the inner path: refuse anything that could change the route (the
/// protocol's rule, shared with the browser client).
fn path_segment(name: &str) -> Result<&str> {
    crate::inference::check::check_model_name(name)
        .map_err(|_| Error::InvalidUrl(format!("'{name}' is not a valid model name")))
}

fn header_str(value: Option<&HeaderValue>) -> String {
    value.and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_owned()
}

/// `Retry-After` in seconds (RFC 9110 section 10.2.3; the HTTP-date form is not used by the
/// gateway and is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    let seconds: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(std::time::Duration::from_secs(seconds))
}

fn problem(status: u16, body: &[u8]) -> Error {
    let parsed: Option<ProblemBody> = serde_json::from_slice(body).ok();
    let (kind, title, detail) = match parsed {
        Some(p) => (p.kind.unwrap_or_else(|| "about:blank".into()), p.title.unwrap_or_default(), p.detail),
        None => ("about:blank".into(), format!("HTTP {status}"), None),
    };
    Error::Problem { status, problem_type: kind, title, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_configurations_are_chosen_by_kem_then_aead() {
        let config = |id, kem: Kem, aead| {
            let public_key = vec![9; kem.public_key_len()];
            KeyConfig::new(id, kem, public_key, vec![SymmetricSuite::new(Kdf::HkdfSha256, aead)]).unwrap()
        };
        let x25519 = config(1, Kem::X25519HkdfSha256, Aead::Aes128Gcm);
        let xwing = config(2, Kem::XWing, Aead::Aes128Gcm);
        let xwing_chacha = config(3, Kem::XWing, Aead::ChaCha20Poly1305);
        let both = vec![x25519.clone(), xwing.clone(), xwing_chacha.clone()];
        let choose = |configs: &[KeyConfig], pin, kem, aead| choose_config(configs.to_vec(), pin, kem, aead).unwrap();
        // The default (X25519) stays X25519 while the gateway offers it ...
        assert_eq!(choose(&both, None, Kem::X25519HkdfSha256, Aead::Aes128Gcm), x25519);
        assert_eq!(choose(&both, None, Kem::X25519HkdfSha256, Aead::ChaCha20Poly1305), x25519);
        // ... and a gateway that offers only X-Wing is used with X-Wing.
        assert_eq!(choose(&both[1..], None, Kem::X25519HkdfSha256, Aead::Aes128Gcm), xwing);
        // Preferring X-Wing picks it, with the chosen AEAD where offered.
        assert_eq!(choose(&both, None, Kem::XWing, Aead::Aes128Gcm), xwing);
        assert_eq!(choose(&both, None, Kem::XWing, Aead::ChaCha20Poly1305), xwing_chacha);
        assert_eq!(choose(&both[..1], None, Kem::XWing, Aead::Aes128Gcm), x25519);
        // A pin wins over every preference.
        assert_eq!(choose(&both, Some(xwing_chacha.sha256()), Kem::X25519HkdfSha256, Aead::Aes128Gcm), xwing_chacha);
    }

    #[test]
    fn builder_refuses_bad_configuration() {
        assert!(matches!(Client::builder("http://127.0.0.1:1").build(), Err(Error::InvalidUrl(_))));
        assert!(matches!(Client::builder("not a url").build(), Err(Error::InvalidUrl(_))));
        assert!(matches!(Client::builder("https://127.0.0.1:1").build(), Err(Error::InvalidCaCertificate(_))));
        let empty_pem = Client::builder("https://127.0.0.1:1").ca_certificate_pem(b"").build();
        assert!(matches!(empty_pem, Err(Error::InvalidCaCertificate(_))));
        let missing = Client::builder("https://127.0.0.1:1").ca_certificate_file("/nonexistent/ca.pem");
        assert!(matches!(missing, Err(Error::InvalidCaCertificate(_))));
    }

    #[test]
    fn model_names_cannot_change_the_route() {
        assert!(path_segment("credit-risk").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn problem_bodies_are_parsed() {
        let body = br#"{"type":"https://iana.org/assignments/http-problem-types#ohttp-key","title":"t","status":422}"#;
        let e = problem(422, body);
        assert!(e.is_key_config_mismatch());
        assert!(!problem(400, b"garbage").is_key_config_mismatch());
    }
}

//! The client: configuration, key-config cache, one encrypted exchange, typed calls.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealgate_protocol::inference::{InferenceRequest, InferenceResponse, ModelList, ModelMetadata};
use sealgate_protocol::{Aead, ClientRequest, Kdf, KeyConfig, SymmetricSuite, bhttp, media_type};
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
    error: Option<Error>,
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
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(tls_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
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

    /// Prefers a pinned configuration, then one offering the chosen AEAD, then any.
    fn choose(&self, configs: Vec<KeyConfig>) -> Result<KeyConfig> {
        if let Some(c) = self.inner.pinned_key_config.and_then(|pin| configs.iter().find(|c| c.sha256() == pin)) {
            return Ok(c.clone());
        }
        let preferred = configs.iter().find(|c| c.suite_for(self.inner.aead).is_some()).cloned();
        preferred.or_else(|| configs.into_iter().next()).ok_or_else(|| Error::NoUsableKeyConfig("empty list".into()))
    }

    /// Sends one Binary HTTP request through the gateway and returns the decrypted response.
    /// Refetches the key configuration once if the gateway says it changed.
    pub async fn send(&self, request: &bhttp::Request) -> Result<bhttp::Response> {
        let encoded = Zeroizing::new(request.encode());
        match self.exchange(&encoded).await {
            Err(e) if e.is_key_config_mismatch() => {
                self.refresh_key_config().await?;
                self.exchange(&encoded).await
            }
            other => other,
        }
    }

    async fn exchange(&self, encoded: &[u8]) -> Result<bhttp::Response> {
        let config = self.key_config().await?;
        let suite = config
            .suite_for(self.inner.aead)
            .or_else(|| config.suites().first().copied())
            .unwrap_or(SymmetricSuite::new(Kdf::HkdfSha256, self.inner.aead));
        let (encapsulated, pending) =
            ClientRequest::new(&config, suite)?.encapsulate(encoded, &mut rand_core::UnwrapErr(getrandom::SysRng))?;
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
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(problem(status.as_u16(), &body));
        }
        if !content_type.eq_ignore_ascii_case(media_type::OHTTP_RESPONSE) {
            return Err(Error::UnexpectedResponse(format!("content type '{content_type}'")));
        }
        let plaintext = Zeroizing::new(pending.decapsulate(&body)?);
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

    fn inner_request(&self, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
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

/// Model names travel in the inner path: refuse anything that could change the route.
fn path_segment(name: &str) -> Result<&str> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        Ok(name)
    } else {
        Err(Error::InvalidUrl(format!("'{name}' is not a valid model name")))
    }
}

fn header_str(value: Option<&HeaderValue>) -> String {
    value.and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_owned()
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

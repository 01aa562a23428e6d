//! The client: configuration, key-config cache, one encrypted exchange, typed calls.
//!
//! The key configuration is fetched once and shared by every clone of a client. A refetch
//! (the gateway rotated its keys) is single-flight: one fetch is in flight at a time, callers
//! that need one meanwhile wait for it and use its result, and every cached configuration
//! carries a generation so a caller that saw an older one never fetches again over a newer
//! one. Both rules, and when a configuration is too old to use, are the client core's
//! (`KeyCache`, shared with the browser client); this file adds the clock (time since the
//! client was built), the locks that make the refetch single-flight, and the I/O. Streamed
//! calls (`Client::infer_stream`) are in `stream.rs`, on the same cache.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sealgate_client_core::{Finished, KeyCache, OuterResponse, Preferences, Session};
use sealgate_protocol::inference::{InferenceRequest, InferenceResponse, ModelList, ModelMetadata};
use sealgate_protocol::{Aead, Kem, KeyConfig, PrecomputedRequest, bhttp, media_type};
use tokio::sync::{Mutex, RwLock};
use zeroize::Zeroizing;

use crate::error::{BoxedCause, Error, Result};

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
    clock_offset: i64,
    precompute: bool,
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
    /// How often the request was sent again, sealed afresh, because an attempt got no
    /// answer (see [`ClientBuilder::connect_retries`]).
    pub resent: u32,
    /// Time spent preparing the encapsulation of a later request while this one travelled
    /// ([`ClientBuilder::precompute`]): client CPU, but off this request's critical path.
    pub precompute: Duration,
}

impl ExchangeTimings {
    /// Encapsulation plus decapsulation: the client's HPKE time on the request's critical
    /// path (a prepared encapsulation's setup is in [`ExchangeTimings::precompute`]).
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
            Ok(_) => self.error = Some(ca_error("no certificate in the PEM text".into(), None)),
            Err(e) => self.error = Some(ca_error("the PEM text does not parse".into(), Some(e.into()))),
        }
        self
    }

    /// Reads [`ClientBuilder::ca_certificate_pem`] from a file.
    pub fn ca_certificate_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem =
            std::fs::read(path).map_err(|e| ca_error(format!("cannot read {}", path.display()), Some(e.into())))?;
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

    /// How often a request is sent again when it got no answer (default 2): connecting
    /// failed, the connection broke before the answer was read (a replica behind a load
    /// balancer died), or a relay answered 502 or 504 (it could not reach the gateway). Each
    /// retry is sealed afresh, so the gateway never sees the same encapsulation twice (a
    /// replica that already remembered the first would refuse it as a replay). Timeouts are
    /// not retried: that request may still be running.
    pub fn connect_retries(mut self, retries: u32) -> Self {
        self.connect_retries = retries;
        self
    }

    /// Prepare the HPKE encapsulation of the next request while this one travels (default
    /// on): the ephemeral key pair and shared secret of RFC 9180's `SetupBaseS` for the
    /// current key configuration are computed once a request has been handed to the
    /// connection, so the next request pays only the AEAD and the framing (about 40 µs less
    /// on its critical path with X25519 here, more with X-Wing). Each prepared context seals
    /// exactly one request and is dropped when the key configuration changes; at most one is
    /// kept per request in flight. Off: every request does its whole encapsulation when it
    /// is sent, and no HPKE state outlives a request.
    pub fn precompute(mut self, on: bool) -> Self {
        self.precompute = on;
        self
    }

    /// Seconds added to this machine's clock when dating requests (default 0), for a clock
    /// known to be off. Every request carries its time in an inner `Date` (RFC 9458 section
    /// 6.5) and the gateway refuses one too far from its own clock; the client then sends that
    /// request once more dated by the gateway's time from the refusal. That time is used for
    /// that one retry only (RFC 9458 section 6.5.2: never for other requests), so a clock that
    /// is far off costs every request a second exchange: set the offset, or fix the clock.
    pub fn clock_offset(mut self, seconds: i64) -> Self {
        self.clock_offset = seconds;
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
        let invalid = |reason, cause| Error::InvalidUrl { url: self.url.clone(), reason, cause };
        let base = url::Url::parse(&self.url).map_err(|e| invalid("it does not parse", Some(e)))?;
        if base.scheme() != "https" {
            return Err(invalid("the gateway URL must be https://", None));
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        let authority = match (base.host_str(), base.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(invalid("the gateway URL has no host", None)),
        };
        let http = self.http_client()?;
        let gateway_url =
            base.join(sealgate_protocol::GATEWAY_PATH).map_err(|e| invalid("it does not parse", Some(e)))?;
        let preferences =
            Preferences::new(authority).token(self.token).pin(self.pinned_key_config).kem(self.kem).aead(self.aead);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                gateway_url,
                preferences,
                connect_retries: self.connect_retries,
                timeout: self.timeout,
                keys: RwLock::new(KeyCache::new()),
                refetch: Mutex::new(()),
                epoch: Instant::now(),
                clock_offset: self.clock_offset,
                precompute: self.precompute.then(|| std::sync::Mutex::new(Precomputed::default())),
            }),
        })
    }

    /// The HTTP client: TLS 1.3 only ([`sealgate_protocol::tls`]), trusting only the
    /// configured CA, speaking the configured HTTP version.
    fn http_client(&self) -> Result<reqwest::Client> {
        if self.roots.is_empty() {
            return Err(ca_error("no CA certificate configured; call ca_certificate_file".into(), None));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in &self.roots {
            roots.add(cert.clone()).map_err(|e| ca_error("the certificate is not usable".into(), Some(e.into())))?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(sealgate_protocol::tls::provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(Error::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // reqwest sets ALPN only on TLS configurations it builds itself; with a preconfigured
        // one it uses whatever protocol the server selects from our list (none: HTTP/1.1).
        tls.alpn_protocols = match self.http_version {
            HttpVersion::Negotiate => sealgate_protocol::tls::alpn_protocols(),
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
        http.build().map_err(Error::Transport)
    }
}

/// The system clock, UNIX seconds.
fn system_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn ca_error(problem: String, cause: Option<BoxedCause>) -> Error {
    Error::InvalidCaCertificate { problem, cause }
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
    preferences: Preferences,
    connect_retries: u32,
    /// The time allowed for one call (for a stream: for each wait, see `stream.rs`).
    timeout: Duration,
    /// The key configuration in use, chosen by the client core; empty until first use.
    keys: RwLock<KeyCache<Arc<Session>>>,
    /// Held while a key configuration is being fetched: one fetch at a time.
    refetch: Mutex<()>,
    /// The start of the clock the key cache is read with.
    epoch: Instant,
    /// Seconds added to the system clock to date requests (the builder's).
    clock_offset: i64,
    /// Prepared encapsulations (`ClientBuilder::precompute`), `None` when off.
    precompute: Option<std::sync::Mutex<Precomputed>>,
}

/// Encapsulations prepared for the key configuration of one generation of the key cache.
#[derive(Debug, Default)]
struct Precomputed {
    generation: u64,
    ready: Vec<PrecomputedRequest>,
}

/// The most prepared encapsulations kept: enough for as many requests in flight.
const MAX_PRECOMPUTED: usize = 256;

/// A fetched key configuration, its generation and when it was fetched.
type Cached = sealgate_client_core::Cached<Arc<Session>>;

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
            clock_offset: 0,
            precompute: true,
            error: None,
        }
    }

    /// The cached key configuration, fetching it on first use.
    pub async fn key_config(&self) -> Result<KeyConfig> {
        Ok(self.session().await?.session().key_config().clone())
    }

    /// Fetches the key configuration now (RFC 9540 discovery) and caches it. With a
    /// pinned configuration, a gateway that no longer offers it is an error (the client
    /// core's `KeyConfigPinMismatch`), never a silent switch.
    pub async fn refresh_key_config(&self) -> Result<KeyConfig> {
        let seen = self.inner.keys.read().await.generation();
        Ok(self.refresh_session(seen).await?.session().key_config().clone())
    }

    /// Now, on the key cache's clock.
    pub(crate) fn now(&self) -> Duration {
        self.inner.epoch.elapsed()
    }

    /// The time requests are dated with: the system clock plus the configured offset, UNIX
    /// seconds.
    pub(crate) fn request_time(&self) -> u64 {
        system_secs().saturating_add_signed(self.clock_offset())
    }

    /// Seconds this client adds to the system clock when dating requests
    /// ([`ClientBuilder::clock_offset`]).
    pub fn clock_offset(&self) -> i64 {
        self.inner.clock_offset
    }

    /// The cached configuration; fetched first when there is none, or when the key list's
    /// max-age has run out (the gateway may have rotated its keys since).
    pub(crate) async fn session(&self) -> Result<Cached> {
        let seen = {
            let keys = self.inner.keys.read().await;
            if let Some(cached) = keys.fresh(self.now()) {
                return Ok(cached.clone());
            }
            keys.generation()
        };
        self.refresh_session(seen).await
    }

    /// Replaces the cached configuration of generation `seen` (0: none) with a fresh one.
    /// Single-flight: when another caller has already replaced it while this one waited for
    /// the fetch lock, that newer configuration is returned and nothing is fetched.
    pub(crate) async fn refresh_session(&self, seen: u64) -> Result<Cached> {
        let _fetching = self.inner.refetch.lock().await;
        if let Some(cached) = self.inner.keys.read().await.newer_than(seen) {
            return Ok(cached.clone());
        }
        let fetched_at = self.now();
        let response = self.with_retries(|| self.inner.http.get(self.inner.gateway_url.clone()).send()).await?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.bytes().await?;
        let session = Arc::new(self.inner.preferences.discover(&outer(status, &headers, &body))?);
        Ok(self.inner.keys.write().await.install(seen, session, fetched_at).clone())
    }

    /// Sends one Binary HTTP request through the gateway and returns the decrypted response.
    /// Refetches the key configuration once if the gateway says it changed.
    pub async fn send(&self, request: &bhttp::Request) -> Result<bhttp::Response> {
        self.send_timed(request).await.map(|(response, _)| response)
    }

    /// [`Client::send`], also returning how long the client spent in HPKE (for load tests
    /// such as `sealgate-load`, which report the client's crypto time apart from the
    /// round trip).
    ///
    /// Each attempt is sealed afresh (a new HPKE context) and dated by the client's clock;
    /// when the gateway refuses the date (its clock differs by more than its replay window),
    /// the request is sent once more dated by the gateway's time from the refusal, which is
    /// used for nothing else (RFC 9458 section 6.5.2). Both retries are safe: the gateway
    /// refused the request before running it. A request that got no answer at all is sent
    /// again, sealed afresh, up to [`ClientBuilder::connect_retries`] times: it may have
    /// run, but every gateway call is a read (inference, metadata), so running it twice
    /// changes nothing, and a fresh encapsulation is a new request, not a replay.
    pub async fn send_timed(&self, request: &bhttp::Request) -> Result<(bhttp::Response, ExchangeTimings)> {
        let mut timings = ExchangeTimings::default();
        let mut cached = self.session().await?;
        let mut refetched = false;
        let mut resent = 0;
        // The gateway's time from a date refusal: this request's retry is dated by it.
        let mut gateway_date = None;
        loop {
            let date = gateway_date.unwrap_or_else(|| self.request_time());
            let may_resend = resent < self.inner.connect_retries;
            let finished = match self.exchange(&cached, request, date, may_resend, &mut timings).await? {
                Attempt::Undelivered => {
                    resent += 1;
                    timings.resent = resent;
                    tokio::time::sleep(Duration::from_millis(100 << resent)).await;
                    continue;
                }
                Attempt::Finished(finished) => finished,
            };
            match finished {
                Finished::Answer(response) => match sealgate_client_core::clock_correction(&response) {
                    // Never more than one retry with an adjusted date (RFC 9458 section 6.5.2).
                    Some(gateway_time) if gateway_date.is_none() => gateway_date = Some(gateway_time),
                    _ => return Ok((response, timings)),
                },
                // Never more than one retry per request.
                Finished::RefetchKeys(_) if !refetched => {
                    refetched = true;
                    cached = self.refresh_session(cached.generation()).await?;
                }
                Finished::RefetchKeys(e) => return Err(e.into()),
            }
        }
    }

    async fn exchange(
        &self,
        cached: &Cached,
        request: &bhttp::Request,
        date: u64,
        may_resend: bool,
        timings: &mut ExchangeTimings,
    ) -> Result<Attempt> {
        let session = cached.session();
        let started = Instant::now();
        let ready = self.take_precomputed(cached);
        let sealed = session.seal_request_with(request, date, ready, &mut rand_core::UnwrapErr(getrandom::SysRng))?;
        timings.encapsulate += started.elapsed();
        let send = self
            .inner
            .http
            .post(self.inner.gateway_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(media_type::OHTTP_REQUEST))
            .body(sealed.encapsulated)
            .send();
        // `join!` polls the send first, which hands the request to its connection's task;
        // the next request's encapsulation is then prepared while this one travels.
        let (sent, ()) = tokio::join!(send, async { self.prepare_next(cached, timings) });
        let response = match sent {
            Ok(response) => response,
            Err(e) if may_resend && undelivered(&e) => return Ok(Attempt::Undelivered),
            Err(e) => return Err(e.into()),
        };
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) if may_resend && undelivered(&e) => return Ok(Attempt::Undelivered),
            Err(e) => return Err(e.into()),
        };
        let answer = outer(status, &headers, &body);
        if may_resend && relay_could_not_reach_gateway(&answer) {
            return Ok(Attempt::Undelivered);
        }
        let started = Instant::now();
        let finished = sealed.pending.finish_at(&answer, cached.age(self.now()));
        timings.decapsulate += started.elapsed();
        Ok(Attempt::Finished(finished?))
    }

    /// A prepared encapsulation for `cached`'s configuration, if one is ready.
    fn take_precomputed(&self, cached: &Cached) -> Option<PrecomputedRequest> {
        let mut pool = self.inner.precompute.as_ref()?.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.generation != cached.generation() {
            // Made for a configuration that has been replaced: never used.
            *pool = Precomputed { generation: cached.generation(), ready: Vec::new() };
        }
        pool.ready.pop()
    }

    /// Prepares one encapsulation for a later request to `cached`'s configuration.
    fn prepare_next(&self, cached: &Cached, timings: &mut ExchangeTimings) {
        let Some(pool) = self.inner.precompute.as_ref() else { return };
        let started = Instant::now();
        // A failure here only means the next request does its own encapsulation.
        let Ok(ready) = cached.session().precompute(&mut rand_core::UnwrapErr(getrandom::SysRng)) else { return };
        timings.precompute += started.elapsed();
        let mut pool = pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.generation == cached.generation() && pool.ready.len() < MAX_PRECOMPUTED {
            pool.ready.push(ready);
        }
    }

    /// The HTTP client, for the streamed exchange in `stream.rs`.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The gateway resource all exchanges are posted to.
    pub(crate) fn gateway_url(&self) -> &url::Url {
        &self.inner.gateway_url
    }

    /// The configured time allowed for one call.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How often a failed connection is retried.
    pub(crate) fn connect_retries(&self) -> u32 {
        self.inner.connect_retries
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
        self.inner.preferences.inner_request(method, path, body)
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Vec<u8>) -> Result<T> {
        let response = sealgate_client_core::check_status(self.send(&self.inner_request(method, path, body)).await?)?;
        serde_json::from_slice(&response.body).map_err(Error::InvalidResponse)
    }

    /// Runs `request` on the newest version of `model`.
    pub async fn infer(&self, model: &str, request: &InferenceRequest) -> Result<InferenceResponse> {
        let body = serde_json::to_vec(request).map_err(Error::InvalidRequest)?;
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

/// Model names travel in the inner path: refuse anything that could change the route (the
/// protocol's rule, shared with the browser client).
pub(crate) fn path_segment(name: &str) -> Result<&str> {
    crate::inference::check::check_model_name(name).map_err(|_| Error::InvalidModelName(name.to_owned()))
}

/// The parts of an outer answer the client core judges.
/// How one sending of a request ended.
enum Attempt {
    /// An answer came back from the gateway (or the gateway's refusal).
    Finished(Finished),
    /// No answer, and retries are left: send the request again, sealed afresh (see
    /// `send_timed`). Without retries left the failure is returned as an error instead.
    Undelivered,
}

/// A transport failure after which no answer can still come: connecting failed, or the
/// connection broke while sending the request or reading the answer. Not a timeout (that
/// request may still be running).
fn undelivered(e: &reqwest::Error) -> bool {
    !e.is_timeout() && (e.is_connect() || e.is_request() || e.is_body())
}

/// An outer 502 or 504 that is not an encapsulated response: a relay or load balancer in
/// front of the gateway could not reach it or got no answer from it. The gateway itself
/// never sends either status.
fn relay_could_not_reach_gateway(answer: &OuterResponse<'_>) -> bool {
    matches!(answer.status, 502 | 504)
        && !sealgate_client_core::essence(answer.content_type).eq_ignore_ascii_case(media_type::OHTTP_RESPONSE)
}

pub(crate) fn outer<'a>(status: u16, headers: &'a HeaderMap, body: &'a [u8]) -> OuterResponse<'a> {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    OuterResponse::new(status, header(CONTENT_TYPE).unwrap_or(""), body)
        .retry_after(header(RETRY_AFTER))
        .cache_control(header(CACHE_CONTROL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_bad_configuration() {
        assert!(matches!(Client::builder("http://127.0.0.1:1").build(), Err(Error::InvalidUrl { .. })));
        assert!(matches!(Client::builder("not a url").build(), Err(Error::InvalidUrl { .. })));
        assert!(matches!(Client::builder("https://127.0.0.1:1").build(), Err(Error::InvalidCaCertificate { .. })));
        let empty_pem = Client::builder("https://127.0.0.1:1").ca_certificate_pem(b"").build();
        assert!(matches!(empty_pem, Err(Error::InvalidCaCertificate { .. })));
        let missing = Client::builder("https://127.0.0.1:1").ca_certificate_file("/nonexistent/ca.pem");
        assert!(matches!(missing, Err(Error::InvalidCaCertificate { .. })));
    }

    #[test]
    fn model_names_cannot_change_the_route() {
        assert!(path_segment("credit-risk").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}

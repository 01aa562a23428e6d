//! One gateway's key configuration, chosen once, and the exchanges sealed to it.
//!
//! A [`Session`] is made from the gateway's `application/ohttp-keys` answer (RFC 9540
//! discovery) and the caller's [`Preferences`]; it chooses a configuration and checks the pin
//! exactly once, before anything is encrypted. [`Session::prepare`] builds the inner request
//! and seals it (RFC 9458 section 4.3), giving the `message/ohttp-req` body and a single-use
//! [`Pending`]; [`Pending::finish`] classifies whatever came back, in this one place, as an
//! answer, as "refetch the keys and retry once" ([`Finished::RefetchKeys`]) or as an
//! [`Error`].
//!
//! A session remembers the key list's `Cache-Control: max-age`. The core has no clock: the
//! caller says how old its configuration is ([`Pending::finish_at`]), and an outer
//! decryption failure once that age has passed max-age is also "refetch and retry once",
//! since the gateway may have rotated its keys and a relay may have rewritten the
//! `ohttp-key` problem into a plain 400.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use rand_core::CryptoRng;
use sealgate_protocol::{
    Aead, ClientRequest, ClientResponse, GATEWAY_PATH, Kdf, Kem, KeyConfig, PrecomputedRequest, SymmetricSuite, bhttp,
    media_type,
};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::json;

/// What the caller wants from a gateway: where it is, the bearer token, and which key
/// configuration to accept and prefer.
#[derive(Debug, Clone)]
pub struct Preferences {
    authority: String,
    token: Option<Zeroizing<String>>,
    pin: Option<[u8; 32]>,
    kem: Kem,
    aead: Aead,
}

impl Preferences {
    /// Preferences for the gateway at `authority` (`host[:port]`, the inner requests'
    /// `:authority`): X25519 and AES-128-GCM preferred, no pin, no token.
    pub fn new(authority: impl Into<String>) -> Self {
        Self { authority: authority.into(), token: None, pin: None, kem: Kem::X25519HkdfSha256, aead: Aead::Aes128Gcm }
    }

    /// Sends `authorization: Bearer TOKEN` inside every request; it never leaves the
    /// encryption.
    pub fn token(mut self, token: Option<Zeroizing<String>>) -> Self {
        self.token = token;
        self
    }

    /// Accepts only the key configuration whose SHA-256 is `sha256`.
    pub fn pin(mut self, sha256: Option<[u8; 32]>) -> Self {
        self.pin = sha256;
        self
    }

    /// The KEM to prefer when the gateway offers it.
    pub fn kem(mut self, kem: Kem) -> Self {
        self.kem = kem;
        self
    }

    /// The AEAD to prefer when the gateway offers it.
    pub fn aead(mut self, aead: Aead) -> Self {
        self.aead = aead;
        self
    }

    /// `host[:port]` of the gateway.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The gateway resource (RFC 9540): `https://{authority}/.well-known/ohttp-gateway`. Key
    /// configurations are fetched from it with `GET`, requests posted to it.
    pub fn gateway_url(&self) -> String {
        alloc::format!("https://{}{GATEWAY_PATH}", self.authority)
    }

    /// The inner request of a call: `method path` to the gateway's authority, accepting JSON,
    /// with a JSON content type when there is a body and the bearer token when there is one.
    /// All of it travels only inside the encryption.
    pub fn inner_request(&self, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
        let mut request = bhttp::Request::new(method, "https", &self.authority, path);
        request.headers.push(bhttp::Field::new("accept", "application/json"));
        if !body.is_empty() {
            request.headers.push(bhttp::Field::new("content-type", "application/json"));
        }
        if let Some(token) = &self.token {
            request.headers.push(bhttp::Field::new("authorization", alloc::format!("Bearer {}", token.as_str())));
        }
        request.body = body;
        request
    }

    /// Reads the answer to `GET` of the gateway resource: checks the status and media type,
    /// then makes a session from the key configurations in it (see [`Preferences::session`]).
    pub fn discover(&self, answer: &OuterResponse<'_>) -> Result<Session> {
        check_outer(answer, media_type::OHTTP_KEYS, &self.gateway_url())?;
        let mut session = self.session(answer.body)?;
        session.max_age = answer.cache_control.map(max_age);
        Ok(session)
    }

    /// Makes a session from an `application/ohttp-keys` list: decodes it, chooses a
    /// configuration ([`choose`]) and checks the pin before anything is encrypted to it.
    pub fn session(&self, key_configs: &[u8]) -> Result<Session> {
        let configs = KeyConfig::decode_list(key_configs).map_err(|e| Error::NoUsableKeyConfig { cause: Some(e) })?;
        self.adopt(choose(&configs, self.pin, self.kem, self.aead)?.clone())
    }

    /// Makes a session with `config` (one already chosen, say by a test): checks the pin and
    /// picks the AEAD.
    pub fn adopt(&self, config: KeyConfig) -> Result<Session> {
        if let Some(pin) = self.pin {
            let got = config.sha256();
            if got != pin {
                return Err(Error::KeyConfigPinMismatch { got: crate::to_hex(&got) });
            }
        }
        let suite = config
            .suite_for(self.aead)
            .or_else(|| config.suites().first().copied())
            .unwrap_or(SymmetricSuite::new(Kdf::HkdfSha256, self.aead));
        Ok(Session { preferences: self.clone(), gateway_url: self.gateway_url(), config, suite, max_age: None })
    }
}

/// Chooses among a gateway's key configurations: the pinned one when present, then one with
/// the preferred KEM and AEAD, then the preferred KEM with any AEAD, then the preferred AEAD
/// with any KEM, then the gateway's first. The pin itself is checked by the caller, so that a
/// list without the pinned configuration fails with the fingerprint actually received.
pub fn choose(configs: &[KeyConfig], pin: Option<[u8; 32]>, kem: Kem, aead: Aead) -> Result<&KeyConfig> {
    if let Some(c) = pin.and_then(|pin| configs.iter().find(|c| c.sha256() == pin)) {
        return Ok(c);
    }
    let preferences: [&dyn Fn(&KeyConfig) -> bool; 3] =
        [&|c| c.kem() == kem && c.suite_for(aead).is_some(), &|c| c.kem() == kem, &|c| c.suite_for(aead).is_some()];
    preferences
        .iter()
        .find_map(|matches| configs.iter().find(|c| matches(c)))
        .or_else(|| configs.first())
        .ok_or(Error::NoUsableKeyConfig { cause: None })
}

/// A gateway's key configuration, chosen and pin-checked, with the preferences it was chosen
/// by. Cheap to share; every request sealed to it is independent.
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) preferences: Preferences,
    pub(crate) gateway_url: String,
    pub(crate) config: KeyConfig,
    pub(crate) suite: SymmetricSuite,
    pub(crate) max_age: Option<Duration>,
}

impl Session {
    /// How long the key list may be cached (its `Cache-Control: max-age`; zero for
    /// `no-store` or `no-cache`), when the session came from [`Preferences::discover`] and the
    /// answer said.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The key configuration requests are sealed to.
    pub fn key_config(&self) -> &KeyConfig {
        &self.config
    }

    /// The KDF and AEAD used: the preferred AEAD when the configuration offers it, else the
    /// gateway's first choice.
    pub fn suite(&self) -> SymmetricSuite {
        self.suite
    }

    /// The preferences the session was made with (to make the next one after a refetch).
    pub fn preferences(&self) -> &Preferences {
        &self.preferences
    }

    /// Builds the inner request ([`Preferences::inner_request`] plus `headers`), dated `now`
    /// (UNIX seconds, [`set_date`](crate::set_date)), encodes it as Binary HTTP and seals it.
    pub fn prepare(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Prepared> {
        let mut request = self.preferences.inner_request(method, path, body);
        request.headers.extend(headers.iter().map(|(name, value)| bhttp::Field::new(name, *value)));
        crate::date::set_date(&mut request, now);
        self.seal_with(request.encoded_len(), |out| request.encode_into(out), None, rng)
    }

    /// Seals `request` dated `now` (UNIX seconds; any `Date` it had is replaced): what a
    /// client sends for each attempt of a request it built once.
    pub fn seal_request(&self, request: &bhttp::Request, now: u64, rng: &mut impl CryptoRng) -> Result<Prepared> {
        self.seal_request_with(request, now, None, rng)
    }

    /// Seals an encoded Binary HTTP request (RFC 9458 section 4.3).
    pub fn seal(&self, encoded: &[u8], rng: &mut impl CryptoRng) -> Result<Prepared> {
        self.seal_with(encoded.len(), |out| out.extend_from_slice(encoded), None, rng)
    }

    /// The HPKE setup of a future request to this configuration, done now ([`ClientRequest::precompute`]):
    /// handed to [`Session::seal_request_with`] later, it leaves only the AEAD to do then.
    pub fn precompute(&self, rng: &mut impl CryptoRng) -> Result<PrecomputedRequest> {
        Ok(ClientRequest::new(&self.config, self.suite)?.precompute(rng)?)
    }

    /// [`Session::seal_request`] with a context from [`Session::precompute`], when one is
    /// given and was made for this configuration (otherwise sealed afresh with `rng`).
    pub fn seal_request_with(
        &self,
        request: &bhttp::Request,
        now: u64,
        precomputed: Option<PrecomputedRequest>,
        rng: &mut impl CryptoRng,
    ) -> Result<Prepared> {
        // Encoded with the dated fields in place of its own, straight into the buffer it is
        // sealed in: the body (which may be large) is neither cloned nor copied twice.
        let headers = crate::date::dated_fields(&request.headers, now);
        let len = request.encoded_len() + crate::date::DATE_FIELD_LEN;
        self.seal_with(len, |out| request.encode_with_fields_into(&headers, out), precomputed, rng)
    }

    /// Seals the Binary HTTP request that `write` appends to the buffer it is given
    /// ([`PrecomputedRequest::encapsulate_with`]), `len` bytes long or about.
    fn seal_with(
        &self,
        len: usize,
        write: impl FnOnce(&mut Vec<u8>),
        precomputed: Option<PrecomputedRequest>,
        rng: &mut impl CryptoRng,
    ) -> Result<Prepared> {
        let precomputed = match precomputed.filter(|p| p.key_id() == self.config.key_id()) {
            Some(precomputed) => precomputed,
            None => self.precompute(rng)?,
        };
        let (encapsulated, response) = precomputed.encapsulate_with(len, write)?;
        let pending = Pending { response, gateway_url: self.gateway_url.clone(), max_age: self.max_age };
        Ok(Prepared { encapsulated, pending })
    }
}

/// A sealed request: the body to `POST` as `message/ohttp-req`, and what opens its answer.
pub struct Prepared {
    /// The encapsulated request.
    pub encapsulated: Vec<u8>,
    /// Opens the answer to exactly this request; single use.
    pub pending: Pending,
}

/// The state that opens the answer to one request (RFC 9458 section 4.4). Consumed by
/// [`Pending::finish`], so a response key is never used twice.
pub struct Pending {
    response: ClientResponse,
    gateway_url: String,
    max_age: Option<Duration>,
}

impl Pending {
    /// Classifies the gateway's answer to the request: the decrypted inner response, the
    /// `ohttp-key` problem (refetch the key configuration and send the request once more,
    /// freshly sealed), or an error. The inner status is not judged here: a raw caller may
    /// want a 404 as it is; [`check_status`] turns error statuses into [`Error::Inference`].
    ///
    /// The configuration is taken as fresh; [`Pending::finish_at`] also applies the
    /// max-age rule.
    pub fn finish(self, answer: &OuterResponse<'_>) -> Result<Finished> {
        self.finish_at(answer, Duration::ZERO)
    }

    /// [`Pending::finish`] for a key configuration fetched `config_age` before the answer
    /// came: once that is at least the key list's max-age, an outer decryption failure (a
    /// 400, or a 422 a relay stripped of its problem type) also means [`Finished::RefetchKeys`]
    /// — the gateway may have rotated the key away.
    pub fn finish_at(self, answer: &OuterResponse<'_>, config_age: Duration) -> Result<Finished> {
        if let Some(e) =
            classify_outer(answer, media_type::OHTTP_RESPONSE, &self.gateway_url, self.max_age, config_age)?
        {
            return Ok(Finished::RefetchKeys(e));
        }
        // Opened in one copy of the body, and the content decoded where it lies: a large
        // answer is copied once, not three times.
        let mut buffer = Zeroizing::new(answer.body.to_vec());
        let message = self.response.decapsulate_in_place(&mut buffer)?;
        Ok(Finished::Answer(bhttp::Response::decode_in(core::mem::take(&mut *buffer), message)?))
    }
}

/// How an exchange ended, when it did not fail.
#[derive(Debug)]
pub enum Finished {
    /// The decrypted inner response (zeroized on drop).
    Answer(bhttp::Response),
    /// The gateway no longer accepts the key configuration (RFC 9458 section 5.3): fetch it
    /// again, make a new session and send the request once more. If the second attempt ends
    /// here too, give up with the error carried.
    RefetchKeys(Error),
}

/// The parts of an outer HTTP answer a client must look at.
#[derive(Debug, Clone, Copy)]
pub struct OuterResponse<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The `content-type` header as received (parameters and case are ignored).
    pub content_type: &'a str,
    /// The `retry-after` header as received, if any.
    pub retry_after: Option<&'a str>,
    /// The `cache-control` header as received, if any (read from the key list's answer).
    pub cache_control: Option<&'a str>,
    /// The body, read to the end.
    pub body: &'a [u8],
}

impl<'a> OuterResponse<'a> {
    /// An answer without `retry-after`.
    pub fn new(status: u16, content_type: &'a str, body: &'a [u8]) -> Self {
        Self { status, content_type, retry_after: None, cache_control: None, body }
    }

    /// Adds the `retry-after` header.
    pub fn retry_after(mut self, value: Option<&'a str>) -> Self {
        self.retry_after = value;
        self
    }

    /// Adds the `cache-control` header.
    pub fn cache_control(mut self, value: Option<&'a str>) -> Self {
        self.cache_control = value;
        self
    }
}

/// [`check_outer`] with the refetch rules of [`Pending::finish_at`], for one-shot and
/// streamed exchanges alike: `Ok(None)` to go on reading the answer, `Ok(Some(e))` to refetch
/// the key configuration (the `ohttp-key` problem, or a 400/422 once the configuration is
/// `config_age` old and past `max_age`), or the error.
pub(crate) fn classify_outer(
    answer: &OuterResponse<'_>,
    expected: &'static str,
    url: &str,
    max_age: Option<Duration>,
    config_age: Duration,
) -> Result<Option<Error>> {
    let expired = max_age.is_some_and(|max_age| config_age >= max_age);
    match check_outer(answer, expected, url) {
        Err(e) if e.is_key_config_mismatch() => Ok(Some(e)),
        Err(e) if expired && matches!(answer.status, 400 | 422) => Ok(Some(e)),
        Err(e) => Err(e),
        Ok(()) => Ok(None),
    }
}

/// The one judgement of an outer answer: overloaded, refused with problem details, not a
/// gateway at all, or a success of the `expected` media type.
fn check_outer(answer: &OuterResponse<'_>, expected: &'static str, url: &str) -> Result<()> {
    let content_type = essence(answer.content_type);
    if answer.status == 503 {
        return Err(Error::Overloaded { retry_after: answer.retry_after.and_then(retry_after) });
    }
    let problem = || {
        let [problem_type, title, detail] = json::string_members(answer.body, ["type", "title", "detail"])?;
        Some(Error::Problem {
            status: answer.status,
            problem_type: problem_type.unwrap_or_else(|| "about:blank".into()),
            title: title.unwrap_or_default(),
            detail,
        })
    };
    let unexpected = || Error::UnexpectedResponse {
        url: url.into(),
        status: answer.status,
        content_type: content_type.into(),
        expected,
    };
    if !(200..300).contains(&answer.status) {
        let is_problem = content_type.eq_ignore_ascii_case(media_type::PROBLEM_JSON);
        return Err(is_problem.then(problem).flatten().unwrap_or_else(unexpected));
    }
    if !content_type.eq_ignore_ascii_case(expected) {
        return Err(unexpected());
    }
    Ok(())
}

/// A media type without parameters or surrounding space (`Application/OHTTP-keys; x=1` →
/// `Application/OHTTP-keys`); compare it ignoring ASCII case.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// `Retry-After` in seconds (RFC 9110 section 10.2.3). The gateway sends only this form; an
/// HTTP-date is ignored.
fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse().ok().map(Duration::from_secs)
}

/// The freshness lifetime a `Cache-Control` header gives (RFC 9111 section 5.2.2.1):
/// `max-age=N`, zero for `no-store` or `no-cache` (or a malformed max-age, erring toward a
/// refetch), and zero when neither is there (the key list has no heuristic freshness).
fn max_age(cache_control: &str) -> Duration {
    let mut max_age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Duration::ZERO;
        }
        if name.eq_ignore_ascii_case("max-age") {
            max_age = Some(value.trim().trim_matches('"').parse().map_or(Duration::ZERO, Duration::from_secs));
        }
    }
    max_age.unwrap_or(Duration::ZERO)
}

/// Passes a 2xx inner response through and turns any other into [`Error::Inference`] with
/// the KServe `{"error": ...}` message.
pub fn check_status(response: bhttp::Response) -> Result<bhttp::Response> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let [message] = json::string_members(&response.body, ["error"]).unwrap_or_default();
    let message =
        message.unwrap_or_else(|| alloc::format!("HTTP status {} without a KServe error body", response.status));
    Err(Error::Inference { status: response.status, message })
}

//! `Sealgate`, the class a page uses: `connect`, then `infer`, `inferStream`, `models`,
//! `modelMetadata`.
//!
//! The policy is the client core's (`sealgate-client-core`, shared with the Rust SDK): it
//! chooses and pin-checks the key configuration once (RFC 9540 discovery), builds and seals
//! each inner request (RFC 9458), and classifies each answer. This module is the shell around
//! it: check the page's input, `fetch`, and turn the inner answer into plain JS objects.
//!
//! The key configuration is refreshed by the same rules as in the Rust SDK, which are the
//! core's (`KeyCache`): fetched again before sealing once the key list's `Cache-Control:
//! max-age` has run out; fetched again and the request re-encrypted and sent once more when
//! the gateway answers `ohttp-key`, or a decryption failure after max-age (a relay may have
//! rewritten the 422), never more than once per request; a pinned configuration the gateway
//! no longer offers is an error. Refetching is single-flight: while one key-list `GET` is in
//! flight, every other call that needs one waits for it (a waiter list, woken when it ends)
//! and uses its result, and a call that was refused with an older configuration than the one
//! now cached uses the cached one without fetching.
//!
//! State lives behind an `Rc` so that methods can return promises that outlive the borrow of
//! `this`; nothing is borrowed across an `await`, so concurrent calls from the page are safe.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use js_sys::{Object, Promise, Reflect};
use sealgate_client_core::{Finished, KeyCache, Preferences, Session, check_status, to_hex};
use sealgate_protocol::{GATEWAY_PATH, bhttp, media_type};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};
use crate::exchange::{ExchangeInfo, SuiteNames};
use crate::fetch::Transport;
use crate::json::{self, Answer};
use crate::options::ConnectOptions;
use crate::tensor::{check_model_name, request_body_from_js};

/// A connection to one Sealgate gateway: its key configuration and how to reach it.
///
/// Create it with `await Sealgate.connect(url, options)`.
#[wasm_bindgen]
pub struct Sealgate {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    /// `https://host[:port]/.well-known/ohttp-gateway`.
    pub(crate) gateway_url: String,
    preferences: Preferences,
    pub(crate) transport: Transport,
    /// The key configuration in use, its generation and when it was fetched.
    keys: RefCell<KeyCache<Rc<Session>>>,
    /// Whether a key-list `GET` is in flight, and the calls waiting for it to end.
    fetching: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
    last: RefCell<Option<ExchangeInfo>>,
}

/// A fetched key configuration, its generation and when it was fetched.
pub(crate) type Cached = sealgate_client_core::Cached<Rc<Session>>;

#[wasm_bindgen]
impl Sealgate {
    /// Fetches and checks the gateway's key configuration. Rejects with a `SealgateError`
    /// when the URL is wrong, the gateway is unreachable, or the pin does not match.
    pub async fn connect(
        url: String,
        #[wasm_bindgen(unchecked_optional_param_type = "ConnectOptions")] options: JsValue,
    ) -> core::result::Result<Sealgate, JsValue> {
        let options = ConnectOptions::from_js(&options)?;
        let (gateway_url, authority) = gateway_url(&url)?;
        let transport = Transport { fetch: options.fetch, timeout_ms: options.timeout_ms };
        let preferences =
            Preferences::new(authority).token(options.token).pin(options.pin).kem(options.kem).aead(options.aead);
        let inner = Inner {
            gateway_url,
            preferences,
            transport,
            keys: RefCell::new(KeyCache::new()),
            fetching: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            last: RefCell::new(None),
        };
        inner.refetch(0).await?;
        Ok(Sealgate { inner: Rc::new(inner) })
    }

    /// Runs `request` (KServe V2: `{ inputs: [{ name, shape, datatype, data }] }`) on the
    /// newest version of `model`, end-to-end encrypted. The request is checked before anything
    /// is sent; the result is the KServe V2 response as plain objects.
    #[wasm_bindgen(unchecked_return_type = "Promise<InferenceResponse>")]
    pub fn infer(
        &self,
        model: String,
        #[wasm_bindgen(unchecked_param_type = "InferenceRequest")] request: JsValue,
    ) -> Promise {
        let started = now();
        // Checked and serialized now, synchronously, so that the page changing its arrays
        // after the call cannot change what is sent.
        let body = check_model_name(&model).and_then(|_| request_body_from_js(&request));
        let path = format!("/v2/models/{model}/infer");
        spawn(self.inner.clone(), Answer::Inference, "POST", Ok(path), body, started)
    }

    /// Runs every request of `source` (an iterable or async iterable of KServe V2 requests)
    /// on `model`, in batches of `options.batchLines` (default 256), each one chunked OHTTP
    /// exchange, at most `options.inFlight` (default 2) held at once. Returns an async
    /// iterator of one result per request, in input order, each yielded as soon as it has
    /// decrypted (see the `stream` module). Throws at once for a bad model name, options or
    /// source.
    #[wasm_bindgen(js_name = inferStream, unchecked_return_type = "InferStream")]
    pub fn infer_stream(
        &self,
        model: String,
        #[wasm_bindgen(unchecked_param_type = "AsyncIterable<InferenceRequest> | Iterable<InferenceRequest>")]
        source: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "StreamOptions")] options: JsValue,
    ) -> core::result::Result<JsValue, JsValue> {
        check_model_name(&model)?;
        crate::stream::start(self.inner.clone(), format!("/v2/models/{model}/infer"), &source, &options)
    }

    /// Lists the models the gateway serves (`{ models: [{ name, versions }] }`).
    #[wasm_bindgen(unchecked_return_type = "Promise<ModelList>")]
    pub fn models(&self) -> Promise {
        spawn(self.inner.clone(), Answer::ModelList, "GET", Ok("/v2/models".into()), Ok(Vec::new()), now())
    }

    /// The inputs and outputs of `model` (KServe V2 model metadata).
    #[wasm_bindgen(js_name = modelMetadata, unchecked_return_type = "Promise<ModelMetadata>")]
    pub fn model_metadata(&self, model: String) -> Promise {
        let path = check_model_name(&model).map(|m| format!("/v2/models/{m}"));
        spawn(self.inner.clone(), Answer::ModelMetadata, "GET", path, Ok(Vec::new()), now())
    }

    /// The key identifier of the key configuration in use.
    #[wasm_bindgen(getter, js_name = keyId)]
    pub fn key_id(&self) -> u8 {
        self.inner.with_session(|s| s.key_config().key_id()).unwrap_or_default()
    }

    /// SHA-256 of the key configuration in use, lowercase hex: compare it with the value
    /// `sealgate serve` prints, or pass it as `keyConfigSha256` to pin it.
    #[wasm_bindgen(getter, js_name = keyConfigSha256)]
    pub fn key_config_sha256(&self) -> String {
        self.inner.with_session(|s| to_hex(&s.key_config().sha256())).unwrap_or_default()
    }

    /// The algorithms requests are encrypted with: `{ kem, kdf, aead }`.
    #[wasm_bindgen(getter, unchecked_return_type = "Suite")]
    pub fn suite(&self) -> JsValue {
        let names = self.inner.with_session(|s| SuiteNames::new(s.key_config().kem(), s.suite()));
        names.map_or(JsValue::UNDEFINED, |names| suite_object(names).into())
    }

    /// What the most recent completed exchange looked like on the wire (sizes, key id,
    /// algorithms, time spent in this module), or `undefined` before the first one.
    #[wasm_bindgen(getter, js_name = lastExchange, unchecked_return_type = "ExchangeInfo | undefined")]
    pub fn last_exchange(&self) -> JsValue {
        self.inner.last.borrow().as_ref().map_or(JsValue::UNDEFINED, |info| exchange_object(info).into())
    }
}

impl Inner {
    /// One API call: encrypt, send, decrypt, check the inner status and the answer's shape,
    /// and return the JSON as plain JS objects. The key configuration is fetched first when
    /// its max-age has run out, and again (once) when the core says the keys changed.
    async fn call(&self, kind: Answer, method: &str, path: &str, body: Vec<u8>, started: f64) -> Result<JsValue> {
        // Zeroizes its body and token when the call ends.
        let request = self.preferences.inner_request(method, path, body);
        let mut started = started;
        // Bound first: a borrow in the `match` below would be held across the fetch.
        let fresh = self.keys.borrow().fresh(instant(started)).cloned();
        let mut cached = match fresh {
            Some(cached) => cached,
            None => {
                let seen = self.keys.borrow().generation();
                let cached = self.refetch(seen).await?;
                started = now();
                cached
            }
        };
        let mut refetched = false;
        // The gateway's time from a date refusal: this request's retry is dated by it, and it
        // is used for nothing else (RFC 9458 section 6.5.2).
        let mut gateway_date = None;
        let (answer, received) = loop {
            let date = gateway_date.unwrap_or_else(page_secs);
            match self.exchange(&cached, &request, date, started).await? {
                (Finished::Answer(answer), received) => match sealgate_client_core::clock_correction(&answer) {
                    // Refused before anything ran: once more, freshly sealed, dated by the
                    // gateway's time; never more than once.
                    Some(gateway_time) if gateway_date.is_none() => {
                        gateway_date = Some(gateway_time);
                        started = now();
                    }
                    _ => break (answer, received),
                },
                // Never more than one retry per request.
                (Finished::RefetchKeys(_), _) if !refetched => {
                    refetched = true;
                    cached = self.refetch(cached.generation()).await?;
                    started = now();
                }
                (Finished::RefetchKeys(e), _) => return Err(e.into()),
            }
        };
        let answer = check_status(answer)?;
        let value = json::answer(&answer.body, kind)?;
        if let Some(info) = self.last.borrow_mut().as_mut() {
            info.decrypt_ms = now() - received;
        }
        Ok(value)
    }

    /// Dates `request`, seals it, posts it, lets the core judge the answer. Returns what the
    /// core made of it and the time the answer arrived. Records the exchange for
    /// `lastExchange` once it decrypted.
    async fn exchange(
        &self,
        cached: &Cached,
        request: &bhttp::Request,
        date: u64,
        started: f64,
    ) -> Result<(Finished, f64)> {
        let session = cached.session();
        let mut dated = request.clone();
        sealgate_client_core::set_date(&mut dated, date);
        let encoded = Zeroizing::new(dated.encode());
        drop(dated);
        let encoded = encoded.as_slice();
        let sealing = now();
        let sealed = session.seal(encoded, &mut rand_core::UnwrapErr(getrandom::SysRng))?;
        let sealed_at = now();
        let mut info = ExchangeInfo {
            key_id: session.key_config().key_id(),
            suite: SuiteNames::new(session.key_config().kem(), session.suite()),
            plaintext_bytes: encoded.len(),
            request_bytes: sealed.encapsulated.len(),
            response_bytes: 0,
            encrypt_ms: sealed_at - started,
            decrypt_ms: 0.0,
            seal_ms: sealed_at - sealing,
            open_ms: 0.0,
        };
        let response = self
            .transport
            .post(&self.gateway_url, media_type::OHTTP_REQUEST, media_type::OHTTP_RESPONSE, &sealed.encapsulated)
            .await?;
        let received = now();
        let finished = sealed.pending.finish_at(&response.outer(), cached.age(instant(received)))?;
        if let Finished::Answer(_) = finished {
            info.response_bytes = response.body.len();
            info.open_ms = now() - received;
            info.decrypt_ms = info.open_ms;
            *self.last.borrow_mut() = Some(info);
        }
        Ok((finished, received))
    }

    /// The configuration to seal with now: the cached one within its max-age, else a fresh
    /// one (shared with any fetch already in flight).
    pub(crate) async fn fresh_keys(&self) -> Result<Cached> {
        let fresh = self.keys.borrow().fresh(instant(now())).cloned();
        match fresh {
            Some(cached) => Ok(cached),
            None => {
                let seen = self.keys.borrow().generation();
                self.refetch(seen).await
            }
        }
    }

    /// `f` of the configuration in use (there is one from `connect` on).
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> T) -> Option<T> {
        self.keys.borrow().current().map(|cached| f(cached.session()))
    }

    /// A configuration newer than generation `seen` (0: none): the one cached when another
    /// call has already replaced `seen`, else a fresh fetch. Single-flight: while a fetch is
    /// in flight, callers wait for it to end and look again, so concurrent calls make one
    /// `GET`; a failed fetch leaves the next caller to try its own.
    pub(crate) async fn refetch(&self, seen: u64) -> Result<Cached> {
        loop {
            if let Some(cached) = self.keys.borrow().newer_than(seen) {
                return Ok(cached.clone());
            }
            if !self.fetching.get() {
                break;
            }
            std::future::poll_fn(|cx| {
                if self.fetching.get() {
                    self.waiting.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
        }
        self.fetching.set(true);
        let fetched_at = instant(now());
        let fetched = discover(&self.transport, &self.gateway_url, &self.preferences).await;
        self.fetching.set(false);
        for waiter in self.waiting.take() {
            waiter.wake();
        }
        Ok(self.keys.borrow_mut().install(seen, Rc::new(fetched?), fetched_at).clone())
    }
}

/// Runs one call as a promise. One function for every kind of call, so the module holds one
/// copy of the future's code instead of one per method.
fn spawn(
    inner: Rc<Inner>,
    kind: Answer,
    method: &'static str,
    path: Result<String>,
    body: Result<Vec<u8>>,
    started: f64,
) -> Promise {
    future_to_promise(async move {
        let (path, body) = (path?, body?);
        Ok(inner.call(kind, method, &path, body, started).await?)
    })
}

/// Checks the URL and derives the gateway resource and the inner authority from it.
fn gateway_url(url: &str) -> Result<(String, String)> {
    let base = web_sys::Url::new(url).map_err(|_| {
        ClientError::InvalidOptions(format!("'{url}' is not a valid URL (expected https://host[:port])"))
    })?;
    if base.protocol() != "https:" {
        return Err(ClientError::InvalidOptions(format!(
            "the gateway URL must start with https:// (got '{url}'); requests never travel over plain HTTP"
        )));
    }
    let endpoint = web_sys::Url::new_with_base(GATEWAY_PATH, &base.href())
        .map_err(|_| ClientError::InvalidOptions(format!("'{url}' is not a valid URL")))?;
    Ok((endpoint.href(), base.host()))
}

/// `GET` the key configurations; the client core checks the answer, chooses one and checks
/// the pin.
async fn discover(transport: &Transport, url: &str, preferences: &Preferences) -> Result<Session> {
    let response = transport.get(url, media_type::OHTTP_KEYS).await?;
    Ok(preferences.discover(&response.outer())?)
}

/// A [`now`] reading as the key cache's instant.
pub(crate) fn instant(ms: f64) -> Duration {
    // `as` saturates: a negative or NaN reading is zero, never a panic.
    Duration::from_micros((ms * 1000.0) as u64)
}

/// `performance.now()` where there is one (browsers, workers, Node), else `Date.now()`.
/// The page's clock (`Date.now()`), UNIX seconds: what requests are dated with.
pub(crate) fn page_secs() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

pub(crate) fn now() -> f64 {
    let performance =
        Reflect::get(&js_sys::global(), &JsValue::from_str("performance")).ok().filter(JsValue::is_object);
    match performance {
        Some(p) => p.unchecked_into::<web_sys::Performance>().now(),
        None => js_sys::Date::now(),
    }
}

pub(crate) fn set(object: &Object, key: &str, value: JsValue) {
    // Defining a property on a fresh plain object cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(key), &value);
}

fn suite_object(names: SuiteNames) -> Object {
    let o = Object::new();
    set(&o, "kem", names.kem.into());
    set(&o, "kdf", names.kdf.into());
    set(&o, "aead", names.aead.into());
    o
}

fn exchange_object(info: &ExchangeInfo) -> Object {
    let o = Object::new();
    set(&o, "keyId", info.key_id.into());
    set(&o, "suite", suite_object(info.suite).into());
    set(&o, "plaintextBytes", (info.plaintext_bytes as f64).into());
    set(&o, "requestBytes", (info.request_bytes as f64).into());
    set(&o, "responseBytes", (info.response_bytes as f64).into());
    set(&o, "encryptMs", info.encrypt_ms.into());
    set(&o, "decryptMs", info.decrypt_ms.into());
    set(&o, "sealMs", info.seal_ms.into());
    set(&o, "openMs", info.open_ms.into());
    o
}

/// The whole flow against an in-memory gateway: a JS `fetch` function backed by the
/// protocol crate's gateway side, passed through the `fetch` option. Runs in Node and in
/// Chromium (wasm-bindgen-test).
#[cfg(all(test, target_arch = "wasm32"))]
pub(crate) mod tests {
    use std::cell::Cell;

    use js_sys::{Array, Function, Uint8Array};
    use sealgate_protocol::{GatewayKey, GatewayKeys, Kem, SymmetricSuite, bhttp, problem_type};
    use wasm_bindgen_futures::JsFuture;
    use wasm_bindgen_test::wasm_bindgen_test;
    use web_sys::{Headers, ResponseInit};

    use super::*;

    pub(crate) const URL: &str = "https://gateway.test:8443";

    pub(crate) fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    pub(crate) fn keys(key_id: u8) -> GatewayKeys {
        let key =
            GatewayKey::generate(key_id, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        GatewayKeys::new(vec![key]).unwrap()
    }

    /// What the fake gateway does with a decrypted request.
    type Handler = dyn Fn(&bhttp::Request) -> bhttp::Response;

    /// An in-memory gateway. `served` holds the keys it accepts; `published` the ones it
    /// advertises (they differ to simulate a stale configuration or a substituted key).
    /// With `hold_gets` or `hold_posts` set, answers of that kind are decided when the
    /// request comes but delivered only by `release`, so a test orders them.
    pub(crate) struct Fake {
        pub(crate) served: RefCell<GatewayKeys>,
        pub(crate) published: RefCell<Vec<u8>>,
        pub(crate) cache_control: RefCell<Option<&'static str>>,
        pub(crate) gets: Cell<u32>,
        pub(crate) posts: Cell<u32>,
        pub(crate) bodies: RefCell<Vec<Vec<u8>>>,
        pub(crate) tamper: Cell<bool>,
        /// Answers an unknown key with a bare 400, as a relay that rewrites the 422 does.
        pub(crate) relay_400: Cell<bool>,
        pub(crate) hold_gets: Cell<bool>,
        pub(crate) hold_posts: Cell<bool>,
        pub(crate) held_gets: RefCell<Vec<(Function, JsValue)>>,
        pub(crate) held_posts: RefCell<Vec<(Function, JsValue)>>,
        pub(crate) handler: Box<Handler>,
        /// Chunked (stream) posts answer without their final chunk: a truncated response.
        pub(crate) truncate: Cell<bool>,
    }

    pub(crate) fn response(status: u16, content_type: &str, body: Vec<u8>) -> JsValue {
        response_with(status, content_type, None, body)
    }

    pub(crate) fn response_with(
        status: u16,
        content_type: &str,
        cache_control: Option<&str>,
        mut body: Vec<u8>,
    ) -> JsValue {
        let headers = Headers::new().unwrap();
        headers.set("content-type", content_type).unwrap();
        if let Some(value) = cache_control {
            headers.set("cache-control", value).unwrap();
        }
        let init = ResponseInit::new();
        init.set_status(status);
        init.set_headers(&headers);
        let body = if status == 204 { None } else { Some(&mut body[..]) };
        web_sys::Response::new_with_opt_u8_array_and_init(body, &init).unwrap().into()
    }

    impl Fake {
        pub(crate) fn new(handler: impl Fn(&bhttp::Request) -> bhttp::Response + 'static) -> Rc<Self> {
            let served = keys(1);
            let published = served.encoded_configs();
            Rc::new(Fake {
                served: RefCell::new(served),
                published: RefCell::new(published),
                cache_control: RefCell::new(None),
                gets: Cell::new(0),
                posts: Cell::new(0),
                bodies: RefCell::new(Vec::new()),
                tamper: Cell::new(false),
                relay_400: Cell::new(false),
                hold_gets: Cell::new(false),
                hold_posts: Cell::new(false),
                held_gets: RefCell::new(Vec::new()),
                held_posts: RefCell::new(Vec::new()),
                handler: Box::new(handler),
                truncate: Cell::new(false),
            })
        }

        /// The gateway rotates to a new key and retires the old one at once.
        pub(crate) fn rotate(&self, key_id: u8) {
            let rotated = keys(key_id);
            *self.published.borrow_mut() = rotated.encoded_configs();
            *self.served.borrow_mut() = rotated;
        }

        /// Delivers the held answers of one kind, in the order the requests came.
        pub(crate) fn release(held: &RefCell<Vec<(Function, JsValue)>>) {
            for (resolve, answer) in held.take() {
                resolve.call1(&JsValue::NULL, &answer).unwrap();
            }
        }

        pub(crate) fn sha256(&self) -> String {
            to_hex(&self.served.borrow().configs()[0].sha256())
        }

        fn handle(&self, url: String, init: JsValue) -> JsValue {
            assert_eq!(url, format!("{URL}{GATEWAY_PATH}"));
            let method = Reflect::get(&init, &"method".into()).unwrap().as_string().unwrap();
            if method == "GET" {
                self.gets.set(self.gets.get() + 1);
                let cache_control = *self.cache_control.borrow();
                return response_with(200, media_type::OHTTP_KEYS, cache_control, self.published.borrow().clone());
            }
            self.posts.set(self.posts.get() + 1);
            let headers = Reflect::get(&init, &"headers".into()).unwrap();
            let content_type = Reflect::get(&headers, &"content-type".into()).unwrap();
            let chunked = content_type.as_string().as_deref() == Some(media_type::OHTTP_CHUNKED_REQUEST);
            assert!(chunked || content_type.as_string().as_deref() == Some(media_type::OHTTP_REQUEST));
            for forbidden in ["credentials", "cache", "redirect", "referrerPolicy"] {
                assert!(Reflect::get(&init, &forbidden.into()).unwrap().is_string(), "{forbidden} is set");
            }
            assert_eq!(Reflect::get(&init, &"credentials".into()).unwrap(), "omit");
            let body = Uint8Array::new(&Reflect::get(&init, &"body".into()).unwrap()).to_vec();
            self.bodies.borrow_mut().push(body.clone());
            if chunked {
                return self.stream(&body);
            }
            let (inner, responder) = match self.served.borrow().decapsulate(&body) {
                Ok(opened) => opened,
                Err(_) if self.relay_400.get() => return response(400, "text/plain", b"Bad Request".to_vec()),
                Err(_) => {
                    let problem = format!(
                        r#"{{"type":"{}","title":"key configuration mismatch","status":422}}"#,
                        problem_type::OHTTP_KEY
                    );
                    return response(422, media_type::PROBLEM_JSON, problem.into_bytes());
                }
            };
            let answer = (self.handler)(&bhttp::Request::decode(&inner).unwrap());
            let mut encrypted = responder.encapsulate(&answer.encode(), &mut rng()).unwrap();
            if self.tamper.get() {
                let last = encrypted.len() - 1;
                encrypted[last] ^= 0x80;
            }
            response(200, media_type::OHTTP_RESPONSE, encrypted)
        }

        fn key_problem() -> JsValue {
            let problem = format!(
                r#"{{"type":"{}","title":"key configuration mismatch","status":422}}"#,
                problem_type::OHTTP_KEY
            );
            response(422, media_type::PROBLEM_JSON, problem.into_bytes())
        }

        /// Answers a chunked request like the gateway's NDJSON scoring: each line
        /// `{"inputs":[{"data":[x, ...]}]}` gets `{"outputs":[{"name":"echo","data":[x]}]}`, or
        /// an error line when `x` is negative; a model other than breast-cancer is a 404.
        fn stream(&self, body: &[u8]) -> JsValue {
            use sealgate_protocol::bhttp::stream as bstream;
            use sealgate_protocol::chunked::RequestHeaderReader;
            let mut header = RequestHeaderReader::new();
            let used = header.push(body).unwrap();
            let Ok((mut opener, answer)) = self.served.borrow().decapsulate_chunked(header) else {
                return Self::key_problem();
            };
            let mut plaintext = Vec::new();
            for chunk in opener.push(&body[used..]).unwrap() {
                plaintext.extend_from_slice(&chunk);
            }
            plaintext.extend_from_slice(&opener.finish().unwrap());
            let mut decoder = bstream::Decoder::request();
            let mut parts = decoder.push(&plaintext).unwrap();
            parts.extend(decoder.finish().unwrap());
            let mut path = String::new();
            let mut lines = Vec::new();
            for part in parts {
                match part {
                    bstream::Part::Request(head) => path = head.path.clone(),
                    bstream::Part::Body(piece) => lines.extend_from_slice(&piece),
                    _ => {}
                }
            }
            let (mut out, mut sealer) = answer.start(&mut rng()).unwrap();
            if path != "/v2/models/breast-cancer/infer" {
                let (head, encoder) = bstream::Encoder::response(&bhttp::Response::new(
                    404,
                    vec![],
                    br#"{"error":"model not found"}"#.to_vec(),
                ));
                out.extend(sealer.seal(&head).unwrap());
                out.extend(sealer.finish(&encoder.finish(&[])).unwrap());
                return response(200, media_type::OHTTP_CHUNKED_RESPONSE, out);
            }
            let (head, mut encoder) = bstream::Encoder::response(&bhttp::Response::new(200, vec![], vec![]));
            out.extend(sealer.seal(&head).unwrap());
            for (number, line) in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
                let request: serde_json::Value = serde_json::from_slice(line).unwrap();
                let x = request["inputs"][0]["data"][0].as_f64().unwrap();
                let answer = if x < 0.0 {
                    format!(r#"{{"error":"row refused","status":400,"line":{}}}"#, number + 1)
                } else {
                    format!(
                        r#"{{"model_name":"breast-cancer","outputs":[{{"name":"echo","shape":[1],"datatype":"FP64","data":[{x}]}}]}}"#
                    )
                };
                out.extend(sealer.seal(&encoder.body(format!("{answer}\n").as_bytes())).unwrap());
            }
            if !self.truncate.get() {
                out.extend(sealer.finish(&encoder.finish(&[])).unwrap());
            }
            response(200, media_type::OHTTP_CHUNKED_RESPONSE, out)
        }

        pub(crate) fn fetch(self: &Rc<Self>) -> Function {
            let fake = self.clone();
            let closure = Closure::<dyn Fn(String, JsValue) -> Promise>::new(move |url, init: JsValue| {
                let get = Reflect::get(&init, &"method".into()).unwrap() == "GET";
                let answer = fake.handle(url, init);
                let (hold, held) =
                    if get { (&fake.hold_gets, &fake.held_gets) } else { (&fake.hold_posts, &fake.held_posts) };
                if !hold.get() {
                    return Promise::resolve(&answer);
                }
                Promise::new(&mut |resolve, _| held.borrow_mut().push((resolve, answer.clone())))
            });
            closure.into_js_value().unchecked_into()
        }
    }

    /// Answers `infer` like the gateway's inner router: label 1 for one row, 404 otherwise.
    pub(crate) fn kserve(request: &bhttp::Request) -> bhttp::Response {
        let json = |status, body: &str| bhttp::Response::new(status, vec![], body.as_bytes().to_vec());
        match request.path.as_str() {
            "/v2/models/breast-cancer/infer" => json(
                200,
                r#"{"model_name":"breast-cancer","model_version":"1","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[1]},{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[0.25,0.75]}]}"#,
            ),
            "/v2/models" => json(200, r#"{"models":[{"name":"breast-cancer","versions":["1"]}]}"#),
            "/v2/models/forbidden/infer" => json(403, r#"{"error":"this token may not use model 'forbidden'"}"#),
            "/v2/models/garbage/infer" => json(200, r#"{"not":"kserve"}"#),
            _ => json(404, r#"{"error":"model not found"}"#),
        }
    }

    pub(crate) fn options(fake: &Rc<Fake>, extra: &[(&str, JsValue)]) -> JsValue {
        let o = Object::new();
        set(&o, "fetch", fake.fetch().into());
        for (k, v) in extra {
            set(&o, k, v.clone());
        }
        o.into()
    }

    const ONE_ROW: &str = r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[17.99,20.66,117.8]}]}"#;

    pub(crate) fn one_row() -> JsValue {
        js_sys::JSON::parse(ONE_ROW).unwrap()
    }

    pub(crate) async fn rejected(promise: Promise) -> JsValue {
        match JsFuture::from(promise).await {
            Ok(v) => panic!("expected a rejection, got {v:?}"),
            Err(e) => e,
        }
    }

    pub(crate) fn code(error: &JsValue) -> String {
        assert!(error.is_instance_of::<js_sys::Error>(), "{error:?} is a JS Error");
        assert_eq!(Reflect::get(error, &"name".into()).unwrap(), "SealgateError");
        Reflect::get(error, &"code".into()).unwrap().as_string().unwrap()
    }

    pub(crate) fn message(error: &JsValue) -> String {
        Reflect::get(error, &"message".into()).unwrap().as_string().unwrap()
    }

    pub(crate) async fn connect(fake: &Rc<Fake>, extra: &[(&str, JsValue)]) -> core::result::Result<Sealgate, JsValue> {
        Sealgate::connect(URL.into(), options(fake, extra)).await
    }

    /// Lets every call run until it waits on the network, and `ms` milliseconds pass.
    pub(crate) async fn settle(ms: i32) {
        let timer = Promise::new(&mut |resolve, _| {
            let set_timeout: Function = Reflect::get(&js_sys::global(), &"setTimeout".into()).unwrap().unchecked_into();
            set_timeout.call2(&JsValue::NULL, &resolve, &ms.into()).unwrap();
        });
        JsFuture::from(timer).await.unwrap();
    }

    /// Waits until `done` holds (at most about 5 s). How many turns of the event loop a fetch
    /// answer takes differs between runtimes (Chromium reads a body in tasks, Node in
    /// microtasks), so tests wait for the state they need rather than for a fixed time.
    pub(crate) async fn settle_until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            settle(10).await;
        }
        panic!("still waiting for {what}");
    }

    fn infer_one(gw: &Sealgate) -> Promise {
        gw.infer("breast-cancer".into(), one_row())
    }

    #[wasm_bindgen_test]
    async fn infer_round_trips_and_returns_plain_objects() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[("token", "t0k3n".into()), ("keyConfigSha256", fake.sha256().into())]).await.unwrap();
        assert_eq!(gw.key_id(), 1);
        assert_eq!(gw.key_config_sha256(), fake.sha256());
        let result = JsFuture::from(gw.infer("breast-cancer".into(), one_row())).await.unwrap();
        let outputs: Array = Reflect::get(&result, &"outputs".into()).unwrap().unchecked_into();
        let label = Reflect::get(&outputs.get(0), &"data".into()).unwrap();
        assert_eq!(js_sys::JSON::stringify(&label).unwrap(), "[1]");
        assert_eq!(Reflect::get(&result, &"model_name".into()).unwrap(), "breast-cancer");

        let info = gw.last_exchange();
        assert_eq!(Reflect::get(&info, &"keyId".into()).unwrap(), 1);
        let suite = Reflect::get(&info, &"suite".into()).unwrap();
        assert_eq!(Reflect::get(&suite, &"aead".into()).unwrap(), "AES-128-GCM");
        let sent = fake.bodies.borrow()[0].len() as f64;
        assert_eq!(Reflect::get(&info, &"requestBytes".into()).unwrap().as_f64(), Some(sent));
        // The token and the feature values went out only inside the ciphertext.
        for needle in [&b"t0k3n"[..], b"17.99", b"117.8"] {
            assert!(!fake.bodies.borrow()[0].windows(needle.len()).any(|w| w == needle));
        }
        let models = JsFuture::from(gw.models()).await.unwrap();
        assert!(Reflect::get(&models, &"models".into()).unwrap().is_object());
    }

    #[wasm_bindgen_test]
    async fn the_kem_preference_is_honoured() {
        let fake = Fake::new(kserve);
        let key = |id, kem| GatewayKey::generate(id, kem, SymmetricSuite::ALL.to_vec(), &mut rng()).unwrap();
        let both = GatewayKeys::new(vec![key(1, Kem::X25519HkdfSha256), key(2, Kem::XWing)]).unwrap();
        *fake.published.borrow_mut() = both.encoded_configs();
        *fake.served.borrow_mut() = both;
        let default = connect(&fake, &[]).await.unwrap();
        assert_eq!(default.key_id(), 1, "X25519 by default");
        let xwing = connect(&fake, &[("kem", "X-Wing".into())]).await.unwrap();
        assert_eq!(xwing.key_id(), 2);
        assert_eq!(Reflect::get(&xwing.suite(), &"kem".into()).unwrap(), "X-Wing");
        JsFuture::from(xwing.infer("breast-cancer".into(), one_row())).await.unwrap();
        assert_eq!(Reflect::get(&xwing.last_exchange(), &"keyId".into()).unwrap(), 2, "sealed to the X-Wing key");
        let e = connect(&fake, &[("kem", "kyber".into())]).await.err().unwrap();
        assert_eq!(code(&e), "invalid-options");
    }

    #[wasm_bindgen_test]
    async fn a_pin_mismatch_stops_before_any_request_is_encrypted() {
        let fake = Fake::new(kserve);
        let wrong = "00".repeat(32);
        let e = connect(&fake, &[("keyConfigSha256", wrong.into())]).await.err().unwrap();
        assert_eq!(code(&e), "key-config-pin-mismatch");
        assert!(message(&e).contains(&fake.sha256()), "{}", message(&e));
        assert_eq!((fake.gets.get(), fake.posts.get()), (1, 0));
    }

    #[wasm_bindgen_test]
    async fn a_rotated_key_is_refetched_once() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        // The gateway rotates: the client's cached configuration is now stale.
        let rotated = keys(2);
        *fake.published.borrow_mut() = rotated.encoded_configs();
        *fake.served.borrow_mut() = rotated;
        JsFuture::from(gw.infer("breast-cancer".into(), one_row())).await.unwrap();
        assert_eq!((fake.gets.get(), fake.posts.get()), (2, 2), "one refetch, one retry");
        assert_eq!(gw.key_id(), 2);

        // A gateway that keeps refusing is not retried forever.
        *fake.served.borrow_mut() = keys(3);
        let e = rejected(gw.infer("breast-cancer".into(), one_row())).await;
        assert_eq!(code(&e), "problem");
        assert_eq!(Reflect::get(&e, &"status".into()).unwrap(), 422);
        assert_eq!(Reflect::get(&e, &"problemType".into()).unwrap(), problem_type::OHTTP_KEY);
        assert_eq!((fake.gets.get(), fake.posts.get()), (3, 4));
    }

    #[wasm_bindgen_test]
    async fn concurrent_calls_after_a_rotation_share_one_key_fetch() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        fake.rotate(2);
        let calls: Array = (0..5).map(|_| JsValue::from(infer_one(&gw))).collect();
        JsFuture::from(Promise::all(&calls)).await.unwrap();
        assert_eq!((fake.gets.get(), fake.posts.get()), (2, 10), "five refused calls, one key fetch");
        assert_eq!(gw.key_id(), 2);
    }

    #[wasm_bindgen_test]
    async fn a_slow_key_fetch_is_shared_and_a_late_refusal_fetches_nothing() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        fake.rotate(2);
        // Sealed to key 1 now; its refusal arrives only after the configuration was refetched.
        fake.hold_posts.set(true);
        let late = infer_one(&gw);
        settle_until("the first post to be held", || fake.held_posts.borrow().len() == 1).await;
        fake.hold_posts.set(false);
        // Two calls refused together while the key list answers slowly: one GET between them.
        fake.hold_gets.set(true);
        let (a, b) = (infer_one(&gw), infer_one(&gw));
        settle_until("both refusals and a held key fetch", || {
            fake.posts.get() == 3 && !fake.held_gets.borrow().is_empty()
        })
        .await;
        // Time for a second fetch to start, were the refetch not shared.
        settle(50).await;
        assert_eq!((fake.gets.get(), fake.held_gets.borrow().len()), (2, 1), "one fetch in flight for both");
        fake.hold_gets.set(false);
        Fake::release(&fake.held_gets);
        JsFuture::from(a).await.unwrap();
        JsFuture::from(b).await.unwrap();
        // The refusal of key 1 comes now: generation 2 is already cached, so it is used as it is.
        Fake::release(&fake.held_posts);
        JsFuture::from(late).await.unwrap();
        assert_eq!((fake.gets.get(), fake.posts.get()), (2, 6), "no fetch over the newer configuration");
        assert_eq!(gw.key_id(), 2);
    }

    #[wasm_bindgen_test]
    async fn the_configuration_is_fetched_again_before_sealing_once_its_max_age_ran_out() {
        let fake = Fake::new(kserve);
        *fake.cache_control.borrow_mut() = Some("max-age=600");
        let gw = connect(&fake, &[]).await.unwrap();
        JsFuture::from(infer_one(&gw)).await.unwrap();
        JsFuture::from(infer_one(&gw)).await.unwrap();
        assert_eq!((fake.gets.get(), fake.posts.get()), (1, 2), "within max-age the configuration is reused");
        // `no-store`: stale at once, so fetched again before each request is sealed.
        *fake.cache_control.borrow_mut() = Some("no-store");
        let gw = connect(&fake, &[]).await.unwrap();
        fake.rotate(2);
        JsFuture::from(infer_one(&gw)).await.unwrap();
        JsFuture::from(infer_one(&gw)).await.unwrap();
        assert_eq!((fake.gets.get(), fake.posts.get()), (4, 4), "one fetch per call, none refused");
        assert_eq!(gw.key_id(), 2);
    }

    #[wasm_bindgen_test]
    async fn a_bad_request_after_max_age_refetches_once_and_succeeds() {
        let fake = Fake::new(kserve);
        fake.relay_400.set(true);
        *fake.cache_control.borrow_mut() = Some("max-age=1");
        let gw = connect(&fake, &[]).await.unwrap();
        fake.rotate(2);
        // Sealed while the configuration was fresh; answered once it is older than max-age.
        fake.hold_posts.set(true);
        let call = infer_one(&gw);
        settle(1100).await;
        fake.hold_posts.set(false);
        Fake::release(&fake.held_posts);
        JsFuture::from(call).await.unwrap();
        assert_eq!((fake.gets.get(), fake.posts.get()), (2, 2), "one refetch, one retry");
        assert_eq!(gw.key_id(), 2);
    }

    #[wasm_bindgen_test]
    async fn a_bad_request_within_max_age_is_an_error_and_fetches_nothing() {
        let fake = Fake::new(kserve);
        fake.relay_400.set(true);
        *fake.cache_control.borrow_mut() = Some("max-age=600");
        let gw = connect(&fake, &[]).await.unwrap();
        fake.rotate(2);
        let e = rejected(infer_one(&gw)).await;
        assert_eq!(code(&e), "unexpected-response");
        assert_eq!((fake.gets.get(), fake.posts.get()), (1, 1));
    }

    #[wasm_bindgen_test]
    async fn a_request_is_never_retried_twice() {
        let fake = Fake::new(kserve);
        fake.relay_400.set(true);
        // Always stale: fetched before sealing, and every 400 means "refetch and retry".
        *fake.cache_control.borrow_mut() = Some("no-store");
        let gw = connect(&fake, &[]).await.unwrap();
        // The gateway accepts a key it does not publish: every attempt is refused.
        *fake.served.borrow_mut() = keys(3);
        let e = rejected(infer_one(&gw)).await;
        assert_eq!(code(&e), "unexpected-response");
        assert_eq!((fake.gets.get(), fake.posts.get()), (3, 2), "a fetch before sealing, one refetch, one retry");
    }

    #[wasm_bindgen_test]
    async fn a_refetched_key_must_match_the_pin_too() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[("keyConfigSha256", fake.sha256().into())]).await.unwrap();
        let substituted = keys(1);
        *fake.published.borrow_mut() = substituted.encoded_configs();
        *fake.served.borrow_mut() = substituted;
        let e = rejected(gw.infer("breast-cancer".into(), one_row())).await;
        assert_eq!(code(&e), "key-config-pin-mismatch");
        assert_eq!(fake.posts.get(), 1, "nothing was encrypted to the substituted key");
    }

    #[wasm_bindgen_test]
    async fn inner_errors_carry_status_and_message() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let e = rejected(gw.infer("forbidden".into(), one_row())).await;
        assert_eq!(code(&e), "inference");
        assert_eq!(Reflect::get(&e, &"status".into()).unwrap(), 403);
        assert_eq!(message(&e), "inference failed (403): this token may not use model 'forbidden'");
        let e = rejected(gw.infer("unknown".into(), one_row())).await;
        assert_eq!(message(&e), "inference failed (404): model not found");
        let e = rejected(gw.infer("garbage".into(), one_row())).await;
        assert_eq!(code(&e), "invalid-response");
    }

    #[wasm_bindgen_test]
    async fn a_tampered_response_does_not_decrypt() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        fake.tamper.set(true);
        let e = rejected(gw.infer("breast-cancer".into(), one_row())).await;
        assert_eq!(code(&e), "decrypt");
        assert!(message(&e).starts_with("the gateway's response could not be decrypted"));
        assert!(gw.last_exchange().is_undefined(), "no exchange is reported for an answer that did not decrypt");
    }

    #[wasm_bindgen_test]
    async fn bad_input_is_refused_before_anything_is_sent() {
        let fake = Fake::new(kserve);
        let gw = connect(&fake, &[]).await.unwrap();
        let short: JsValue =
            js_sys::JSON::parse(r#"{"inputs":[{"name":"input","shape":[1,30],"datatype":"FP32","data":[1,2]}]}"#)
                .unwrap();
        let e = rejected(gw.infer("breast-cancer".into(), short)).await;
        assert_eq!(code(&e), "invalid-input");
        assert_eq!(
            message(&e),
            "invalid inference request: inputs[0] has 2 values but shape [1, 30] needs 30 (nothing was sent)"
        );
        let e = rejected(gw.infer("../admin".into(), one_row())).await;
        assert_eq!(code(&e), "invalid-input");
        assert_eq!(fake.posts.get(), 0);
    }

    #[wasm_bindgen_test]
    async fn wrong_urls_and_dead_gateways_are_clear() {
        let fake = Fake::new(kserve);
        let e = Sealgate::connect("http://gateway.test".into(), options(&fake, &[])).await.err().unwrap();
        assert_eq!(code(&e), "invalid-options");
        assert!(message(&e).contains("must start with https://"));
        let e = Sealgate::connect("not a url".into(), options(&fake, &[])).await.err().unwrap();
        assert_eq!(code(&e), "invalid-options");

        let refuse = Closure::<dyn Fn(String, JsValue) -> Promise>::new(|_, _| {
            Promise::reject(&js_sys::TypeError::new("Failed to fetch").into())
        });
        let o = Object::new();
        set(&o, "fetch", refuse.into_js_value());
        let e = Sealgate::connect(URL.into(), o.into()).await.err().unwrap();
        assert_eq!(code(&e), "network");
        assert!(message(&e).starts_with(
            "cannot reach the gateway at https://gateway.test:8443/.well-known/ohttp-gateway: Failed to fetch"
        ));

        let html = Closure::<dyn Fn(String, JsValue) -> Promise>::new(|_, _| {
            Promise::resolve(&response(404, "text/html", b"<h1>Not Found</h1>".to_vec()))
        });
        let o = Object::new();
        set(&o, "fetch", html.into_js_value());
        let e = Sealgate::connect(URL.into(), o.into()).await.err().unwrap();
        assert_eq!(code(&e), "unexpected-response");
        assert!(message(&e).contains("answered HTTP 404 (text/html); is this the URL of a Sealgate gateway?"));
    }

    #[wasm_bindgen_test]
    async fn the_global_fetch_times_out_on_a_silent_server() {
        // A fetch that never settles, installed as the option: the timeout must fire.
        let never = Closure::<dyn Fn(String, JsValue) -> Promise>::new(|_, init: JsValue| {
            let signal: web_sys::AbortSignal = Reflect::get(&init, &"signal".into()).unwrap().unchecked_into();
            Promise::new(&mut |_resolve, reject| {
                let reject = reject.clone();
                let signal2 = signal.clone();
                let on_abort = Closure::<dyn Fn()>::new(move || {
                    let _ = reject.call1(&JsValue::NULL, &signal2.reason());
                });
                signal.set_onabort(Some(on_abort.as_ref().unchecked_ref()));
                on_abort.forget();
            })
        });
        let o = Object::new();
        set(&o, "fetch", never.into_js_value());
        set(&o, "timeoutMs", 50.into());
        // Node does not wait for AbortSignal.timeout's timer (it is unref'd): without a
        // timer of its own the process would exit mid-test, reporting nothing.
        let set_timeout: Function = Reflect::get(&js_sys::global(), &"setTimeout".into()).unwrap().unchecked_into();
        let keep_alive = set_timeout.call2(&JsValue::NULL, &Function::new_no_args(""), &1000.into()).unwrap();
        let e = Sealgate::connect(URL.into(), o.into()).await.err().unwrap();
        let clear: Function = Reflect::get(&js_sys::global(), &"clearTimeout".into()).unwrap().unchecked_into();
        clear.call1(&JsValue::NULL, &keep_alive).unwrap();
        assert_eq!(code(&e), "timeout");
        assert_eq!(message(&e), "the gateway did not answer within 50 ms");
    }
}

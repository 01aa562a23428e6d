//! The only I/O of the browser client: three kinds of `fetch` to the gateway resource (RFC
//! 9540 discovery `GET` and `POST` of `message/ohttp-req`, read to the end; `POST` of one
//! batch of a stream as `message/ohttp-chunked-req`, whose answer is read as it arrives).
//!
//! Requests are made so that nothing but the ciphertext can identify the user: no cookies or
//! HTTP authentication (`credentials: "omit"`), no referrer, no cache, no redirects (a
//! gateway never redirects; following one would send the ciphertext somewhere unexpected).
//! A timeout aborts the request with `AbortSignal.timeout`. Browsers hide why a fetch failed
//! (connection refused, TLS, CORS all read "Failed to fetch"), so the error says which causes
//! to check.
//!
//! `fetch` is the global one unless the page passed its own in the options (for a service
//! worker setup, a test double, or instrumentation).

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, ReferrerPolicy, RequestCache, RequestCredentials, RequestInit, RequestRedirect};

use crate::error::{ClientError, Result};

/// A fully read HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `content-type` header as received; empty when absent.
    pub content_type: String,
    /// The `retry-after` header, if any.
    pub retry_after: Option<String>,
    /// The `cache-control` header, if any (the key list's max-age). It is CORS-safelisted,
    /// so the browser shows it to the page for a cross-origin gateway too.
    pub cache_control: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The answer as the client core reads it.
    pub fn outer(&self) -> sealgate_client_core::OuterResponse<'_> {
        sealgate_client_core::OuterResponse::new(self.status, &self.content_type, &self.body)
            .retry_after(self.retry_after.as_deref())
            .cache_control(self.cache_control.as_deref())
    }
}

/// How requests reach the gateway.
#[derive(Debug, Clone)]
pub struct Transport {
    /// A fetch-compatible function; `None` means `globalThis.fetch`.
    pub fetch: Option<Function>,
    /// Per-request timeout, including reading the body.
    pub timeout_ms: u32,
}

impl Transport {
    /// `GET url`, accepting `accept`.
    pub async fn get(&self, url: &str, accept: &str) -> Result<HttpResponse> {
        self.send(url, self.init("GET", accept, None)).await
    }

    /// `POST url` with `body` of type `content_type`.
    pub async fn post(&self, url: &str, content_type: &str, accept: &str, body: &[u8]) -> Result<HttpResponse> {
        let init = self.init("POST", accept, Some(content_type));
        init.set_body(&Uint8Array::from(body));
        self.send(url, init).await
    }

    /// `POST url` with `body` of type `content_type`, cancelled when `abort` fires or the
    /// timeout runs out (both where the runtime has `AbortSignal.any`, else `abort` alone): the answer's status and
    /// headers, its body left unread in [`OpenResponse`].
    ///
    /// The body is a `Uint8Array`, not a `ReadableStream` with `duplex: "half"`: a batch is
    /// sealed whole before it is sent (it is held for a resend anyway), so a stream would send
    /// the same bytes no sooner, and browsers send a streamed body only over HTTP/2.
    pub async fn post_open(
        &self,
        url: &str,
        content_type: &str,
        accept: &str,
        body: &[u8],
        abort: Option<AbortSignal>,
    ) -> Result<OpenResponse> {
        let init = self.init("POST", accept, Some(content_type));
        init.set_body(&Uint8Array::from(body));
        let timeout = AbortSignal::timeout_with_u32(self.timeout_ms);
        init.set_signal(Some(&abort.map_or_else(|| timeout.clone(), |abort| either(&abort, &timeout))));
        let response = self.start(url, init).await?;
        let mut head = head(&response);
        if head.status != 200 {
            // A refusal is small and read whole, for the client core to judge.
            head.body = self.read_all(url, &response).await?;
        }
        Ok(OpenResponse { head, response, url: url.to_owned(), reader: None, whole_read: false })
    }

    /// Reads the next bytes of an open answer as they arrive (`response.body.getReader()`);
    /// `None` at its end. A response object without a `body` stream (a wrapped `fetch`) is
    /// read whole, as one piece.
    pub async fn read(&self, open: &mut OpenResponse) -> Result<Option<Vec<u8>>> {
        let url = open.url.clone();
        let failure = |e: JsValue| self.failure(&url, &e);
        if open.reader.is_none() {
            let body = Reflect::get(&open.response, &JsValue::from_str("body")).unwrap_or(JsValue::UNDEFINED);
            if !body.is_object() {
                if open.whole_read {
                    return Ok(None);
                }
                open.whole_read = true;
                return self.read_all(&url, &open.response).await.map(Some);
            }
            open.reader = Some(call(&body, "getReader").map_err(failure)?);
        }
        let Some(reader) = &open.reader else { return Ok(None) };
        let next = call(reader, "read").map_err(failure)?;
        let next = JsFuture::from(Promise::resolve(&next)).await.map_err(failure)?;
        if Reflect::get(&next, &JsValue::from_str("done")).is_ok_and(|d| d.is_truthy()) {
            return Ok(None);
        }
        let value = Reflect::get(&next, &JsValue::from_str("value")).unwrap_or(JsValue::UNDEFINED);
        Ok(Some(value.dyn_into::<Uint8Array>().map(|v| v.to_vec()).unwrap_or_default()))
    }

    fn init(&self, method: &str, accept: &str, content_type: Option<&str>) -> RequestInit {
        let init = RequestInit::new();
        init.set_method(method);
        // A plain object: every fetch implementation accepts it as `headers`.
        let headers = Object::new();
        let _ = Reflect::set(&headers, &JsValue::from_str("accept"), &JsValue::from_str(accept));
        if let Some(content_type) = content_type {
            let _ = Reflect::set(&headers, &JsValue::from_str("content-type"), &JsValue::from_str(content_type));
        }
        init.set_headers(&headers);
        init.set_credentials(RequestCredentials::Omit);
        init.set_cache(RequestCache::NoStore);
        init.set_redirect(RequestRedirect::Error);
        init.set_referrer_policy(ReferrerPolicy::NoReferrer);
        init.set_signal(Some(&AbortSignal::timeout_with_u32(self.timeout_ms)));
        init
    }

    async fn send(&self, url: &str, init: RequestInit) -> Result<HttpResponse> {
        let response = self.start(url, init).await?;
        let mut head = head(&response);
        head.body = self.read_all(url, &response).await?;
        Ok(head)
    }

    /// Calls `fetch` and waits for the answer's head.
    async fn start(&self, url: &str, init: RequestInit) -> Result<web_sys::Response> {
        let global = js_sys::global();
        let fetch = match &self.fetch {
            Some(f) => f.clone(),
            None => Reflect::get(&global, &JsValue::from_str("fetch"))
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok())
                .ok_or_else(|| network(url, &JsValue::from_str("this environment has no fetch()")))?,
        };
        let started = fetch.call2(&global, &JsValue::from_str(url), &init).map_err(|e| self.failure(url, &e))?;
        let response = JsFuture::from(Promise::resolve(&started)).await.map_err(|e| self.failure(url, &e))?;
        if !response.is_object() {
            return Err(ClientError::NotAResponse { url: url.to_owned() });
        }
        // Structural: any object with `status`, `headers` and `arrayBuffer()` works, so a
        // polyfilled or wrapped fetch does too.
        Ok(response.unchecked_into())
    }

    async fn read_all(&self, url: &str, response: &web_sys::Response) -> Result<Vec<u8>> {
        let body = response.array_buffer().map_err(|e| self.failure(url, &e))?;
        let body = JsFuture::from(body).await.map_err(|e| self.failure(url, &e))?;
        Ok(Uint8Array::new(&body).to_vec())
    }

    /// A rejected fetch: a timeout when our signal fired, a network failure otherwise.
    fn failure(&self, url: &str, error: &JsValue) -> ClientError {
        let name = Reflect::get(error, &JsValue::from_str("name")).ok().and_then(|n| n.as_string());
        if matches!(name.as_deref(), Some("TimeoutError")) {
            return ClientError::Timeout { millis: self.timeout_ms };
        }
        network(url, error)
    }
}

/// An answer whose head has arrived and whose body is read piece by piece with
/// [`Transport::read`].
#[derive(Debug)]
pub struct OpenResponse {
    /// Status and headers; the body only when the status is not 200.
    pub head: HttpResponse,
    response: web_sys::Response,
    url: String,
    reader: Option<JsValue>,
    whole_read: bool,
}

/// The status and headers of `response`, with an empty body.
fn head(response: &web_sys::Response) -> HttpResponse {
    let headers = response.headers();
    let get = |name: &str| headers.get(name).ok().flatten();
    HttpResponse {
        status: response.status(),
        content_type: get("content-type").unwrap_or_default(),
        retry_after: get("retry-after"),
        cache_control: get("cache-control"),
        body: Vec::new(),
    }
}

/// `object.method()`.
fn call(object: &JsValue, method: &str) -> core::result::Result<JsValue, JsValue> {
    let function: Function = Reflect::get(object, &JsValue::from_str(method))?.dyn_into()?;
    function.call0(object)
}

/// A signal that fires when either does: `AbortSignal.any` where the runtime has it (every
/// current browser and Node 20), else `a` alone.
fn either(a: &AbortSignal, b: &AbortSignal) -> AbortSignal {
    let signals: js_sys::Array = [a, b].into_iter().collect();
    let class = Reflect::get(&js_sys::global(), &JsValue::from_str("AbortSignal")).unwrap_or(JsValue::UNDEFINED);
    Reflect::get(&class, &JsValue::from_str("any"))
        .ok()
        .and_then(|any| any.dyn_into::<Function>().ok())
        .and_then(|any| any.call1(&class, &signals).ok())
        .and_then(|signal| signal.dyn_into::<AbortSignal>().ok())
        .unwrap_or_else(|| a.clone())
}

/// A network failure with the browser's message.
fn network(url: &str, error: &JsValue) -> ClientError {
    let cause = Reflect::get(error, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "fetch failed".to_owned());
    ClientError::Network { url: url.to_owned(), cause }
}

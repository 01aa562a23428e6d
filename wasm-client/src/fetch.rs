//! The only I/O of the browser client: two kinds of `fetch` to the gateway resource (RFC 9540
//! discovery `GET`, and `POST` of `message/ohttp-req`), read to the end.
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
        let response: web_sys::Response = response.unchecked_into();
        let status = response.status();
        let headers = response.headers();
        let content_type = headers.get("content-type").ok().flatten().unwrap_or_default();
        let retry_after = headers.get("retry-after").ok().flatten();
        let cache_control = headers.get("cache-control").ok().flatten();
        let body = response.array_buffer().map_err(|e| self.failure(url, &e))?;
        let body = JsFuture::from(body).await.map_err(|e| self.failure(url, &e))?;
        Ok(HttpResponse { status, content_type, retry_after, cache_control, body: Uint8Array::new(&body).to_vec() })
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

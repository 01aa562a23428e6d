//! The web app `--static` serves (the demo's patient and loan forms), with the headers that
//! keep a browser from running anything but the app's own files.
//!
//! The page handles feature values a patient or a borrower types in before the module
//! encrypts them, so a script injected into it (a compromised dependency, a reflected
//! string) would see them in plaintext. [`CONTENT_SECURITY_POLICY`] allows scripts and
//! WebAssembly from the gateway's own origin only (`'wasm-unsafe-eval'` lets the page
//! compile its module; no `'unsafe-inline'`, no `'unsafe-eval'`), requests to that origin
//! only, and no framing. The other headers pin HTTPS for the host (HSTS), stop content
//! sniffing, send no referrer (the page's URL can carry the key configuration pin) and put
//! the page in a browsing context group of its own (COOP), so a window it opens or that
//! opened it cannot reach into it.

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content-Security-Policy of every static file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Two years, with subdomains: what the HSTS preload list asks for. The gateway serves
/// only HTTPS, so there is no plain-HTTP page this could lock out.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=63072000; includeSubDomains";

/// The security headers of a static response, in the order they are sent.
pub const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
];

/// A router whose fallback serves the files of `dir`, each response (404s included) with
/// [`SECURITY_HEADERS`], which replace any of the same name.
pub fn router(dir: PathBuf) -> Router {
    let header = |(name, value): &(HeaderName, &'static str)| {
        SetResponseHeaderLayer::overriding(name.clone(), HeaderValue::from_static(value))
    };
    let [csp, hsts, nosniff, referrer, coop] = &SECURITY_HEADERS;
    Router::new()
        .fallback_service(ServeDir::new(dir))
        .layer(header(csp))
        .layer(header(hsts))
        .layer(header(nosniff))
        .layer(header(referrer))
        .layer(header(coop))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str) -> axum::http::Response<axum::body::Body> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html><title>t</title>").unwrap();
        let request = Request::get(path).body(Body::empty()).unwrap();
        router(dir.path().to_path_buf()).oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn pages_and_missing_files_carry_every_security_header() {
        for (path, status) in
            [("/", StatusCode::OK), ("/index.html", StatusCode::OK), ("/nope.js", StatusCode::NOT_FOUND)]
        {
            let response = get(path).await;
            assert_eq!(response.status(), status, "{path}");
            for (name, value) in &SECURITY_HEADERS {
                assert_eq!(response.headers().get(name).map(|v| v.to_str().unwrap()), Some(*value), "{path}: {name}");
            }
        }
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_eval() {
        let script_src =
            CONTENT_SECURITY_POLICY.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap();
        assert_eq!(script_src, "script-src 'self' 'wasm-unsafe-eval'");
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    }
}

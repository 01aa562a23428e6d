//! What both examples share: where the gateway is, which CA to trust, which token to send.

use sealgate_client::Client;

/// A client for the gateway named by `SEALGATE_URL` (default `https://127.0.0.1:8443`),
/// trusting `SEALGATE_CA` (default `.sealgate/tls/ca.pem`) and sending the bearer token of
/// `SEALGATE_TOKEN_FILE` (default `.sealgate/dev.token`; `sealgate serve` creates both on
/// first start).
pub fn client() -> Result<Client, sealgate_client::Error> {
    let url = std::env::var("SEALGATE_URL").unwrap_or_else(|_| "https://127.0.0.1:8443".into());
    let ca = std::env::var("SEALGATE_CA").unwrap_or_else(|_| ".sealgate/tls/ca.pem".into());
    let token = std::env::var("SEALGATE_TOKEN_FILE").unwrap_or_else(|_| ".sealgate/dev.token".into());
    Client::builder(url).ca_certificate_file(ca)?.bearer_token_file(token)?.build()
}

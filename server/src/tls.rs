//! TLS 1.3 for the outer connection: the server configuration, from the profile the SDK
//! uses too (`sealgate_protocol::tls`: TLS 1.3 only, AEAD suites, X25519MLKEM768 then
//! X25519, ALPN h2 then http/1.1). A TLS 1.2 client fails in the handshake.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::server::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use sealgate_protocol::tls::provider;

/// Builds the server configuration from PEM files.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading certificate chain {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate chain {}", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading private key {}", key_path.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 configuration")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and private key do not match")?;
    config.alpn_protocols = sealgate_protocol::tls::alpn_protocols();
    Ok(Arc::new(config))
}

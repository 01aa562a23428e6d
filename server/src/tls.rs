//! TLS 1.3 for the outer connection: the server configuration, from the profile the SDK
//! uses too (`sealgate_protocol::tls`: TLS 1.3 only, AEAD suites, X25519MLKEM768 then
//! X25519, ALPN h2 then http/1.1). A TLS 1.2 client fails in the handshake.
//!
//! The certificate is not fixed at start: [`Certificates`] is the configuration's
//! certificate resolver and holds the current chain and key behind a lock, so
//! [`Certificates::reload`] (on SIGHUP or when the files change, see `serve/listen.rs`) makes
//! the next handshake present the new certificate while open connections keep theirs. A
//! reload that fails (unreadable files, a key that does not match the certificate) keeps the
//! certificate in force. With `--client-ca` every client must present a certificate issued
//! by that CA (mTLS for the relay-to-gateway hop); the CA is read once at start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, Result};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use sealgate_protocol::tls::provider;

/// Where the gateway's TLS material comes from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that client certificates must chain to; `None` for no client
    /// authentication.
    pub client_ca: Option<PathBuf>,
}

/// The server certificate in force, swapped by [`Certificates::reload`].
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads the certificate and key files now.
    fn load(cert: &Path, key: &Path) -> Result<Self> {
        let current = RwLock::new(Arc::new(certified_key(cert, key)?));
        Ok(Self { cert: cert.to_owned(), key: key.to_owned(), current })
    }

    /// Reads the files again and, when they hold a valid chain and a matching key, serves
    /// them from the next handshake on. On error the previous certificate stays in force.
    pub fn reload(&self) -> Result<()> {
        let fresh = Arc::new(certified_key(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The files a change of which calls for [`Certificates::reload`].
    pub fn files(&self) -> [&Path; 2] {
        [&self.cert, &self.key]
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The server configuration and its reloadable certificate.
pub struct ServerTls {
    /// What the listener accepts with.
    pub config: Arc<ServerConfig>,
    /// The certificate in force.
    pub certificates: Arc<Certificates>,
}

/// Builds the server configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<ServerTls> {
    let certificates = Arc::new(Certificates::load(&files.cert, &files.key)?);
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 configuration")?;
    let builder = match &files.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certificates.clone());
    config.alpn_protocols = sealgate_protocol::tls::alpn_protocols();
    Ok(ServerTls { config: Arc::new(config), certificates })
}

fn certificate_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificate chain {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate chain {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate found in {}", path.display());
    Ok(certs)
}

fn certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey> {
    let certs = certificate_chain(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading private key {}", key_path.display()))?;
    CertifiedKey::from_der(certs, key, &provider()).with_context(|| {
        format!("the certificate {} and the private key {} do not match", cert_path.display(), key_path.display())
    })
}

/// Client certificates must chain to a CA in `path` (client authentication is then required:
/// a client without a certificate fails the handshake).
fn client_verifier(path: &Path) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificate_chain(path).with_context(|| format!("--client-ca {}", path.display()))? {
        roots.add(cert).with_context(|| format!("--client-ca {}: not a usable CA certificate", path.display()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()))
        .build()
        .with_context(|| format!("--client-ca {}", path.display()))
}

//! TLS on the outer hop, through the real binary: client certificates with `--client-ca`
//! (accepted from the right CA, refused without one or from another CA) and the server
//! certificate reloaded without a restart (the next handshake gets the new one, an open
//! connection keeps working, a broken new file changes nothing).
//!
//! Certificates are made here with rcgen: a test CA that signs the server's certificate for
//! 127.0.0.1, and client CAs; the client side is tokio-rustls with HTTP/1.1 written by hand,
//! so each handshake and the certificate it presented can be inspected.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sealgate_test_support::{Gateway, GatewayOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::SEALGATE;

/// A CA that can sign leaf certificates.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { pem: cert.pem(), der: cert.der().clone(), issuer: Issuer::new(params, key) }
    }

    /// A leaf for `name` (a DNS name or an IP address): its PEM chain and PEM key.
    fn leaf(&self, name: &str) -> (String, String, CertificateDer<'static>, KeyPair) {
        let params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone(), key)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A TLS 1.3 client trusting `ca`, presenting `client` when given.
fn connector(ca: &CertificateDer<'static>, client: Option<(CertificateDer<'static>, &KeyPair)>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(sealgate_protocol::tls::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn handshake(gateway: &Gateway, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", gateway.port())).await?;
    connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await
}

/// `GET /healthz` on an open connection (HTTP/1.1, kept alive); the status code.
async fn healthz(tls: &mut TlsStream<TcpStream>) -> std::io::Result<u16> {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    // The body is a few bytes and arrives with the head or right after; the next request on
    // this connection only needs the head to have been read.
    Ok(status.unwrap_or(0))
}

/// The certificate the gateway presented in `tls`'s handshake.
fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().expect("a server certificate")[0].clone().into_owned()
}

/// Runs the gateway on the embedded default with the given certificate files and extra args.
fn gateway_with(dir: &Path, cert: &Path, key: &Path, extra: &[String]) -> Gateway {
    let mut args =
        vec!["--tls-cert".to_owned(), cert.display().to_string(), "--tls-key".to_owned(), key.display().to_string()];
    args.extend_from_slice(extra);
    Gateway::start(GatewayOptions::new(SEALGATE).data_dir(dir.join("data")).args(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_with_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server CA");
    let (cert, key, _, _) = server_ca.leaf("127.0.0.1");
    let (cert_path, key_path, client_ca_path) =
        (dir.path().join("s.pem"), dir.path().join("s.key"), dir.path().join("c.pem"));
    write(&cert_path, &cert);
    write(&key_path, &key);
    let relays = TestCa::new("relay CA");
    write(&client_ca_path, &relays.pem);
    let gateway =
        gateway_with(dir.path(), &cert_path, &key_path, &["--client-ca".into(), client_ca_path.display().to_string()]);

    let (_, _, relay_cert, relay_key) = relays.leaf("relay.example");
    let mut tls = handshake(&gateway, &connector(&server_ca.der, Some((relay_cert, &relay_key))))
        .await
        .expect("a relay with a certificate from --client-ca is accepted");
    assert_eq!(healthz(&mut tls).await.unwrap(), 200);

    // TLS 1.3 client authentication completes after the client's Finished, so the refusal
    // shows on the first read or write, not always in `connect` itself.
    let refused = |result: std::io::Result<u16>| {
        assert!(result.is_err(), "a client without an accepted certificate got {result:?}")
    };
    if let Ok(mut tls) = handshake(&gateway, &connector(&server_ca.der, None)).await {
        refused(healthz(&mut tls).await);
    }
    let strangers = TestCa::new("someone else's CA");
    let (_, _, stranger_cert, stranger_key) = strangers.leaf("relay.example");
    if let Ok(mut tls) = handshake(&gateway, &connector(&server_ca.der, Some((stranger_cert, &stranger_key)))).await {
        refused(healthz(&mut tls).await);
    }
    // And the gateway still serves the relay afterwards.
    let (_, _, relay_cert, relay_key) = relays.leaf("relay.example");
    let mut tls = handshake(&gateway, &connector(&server_ca.der, Some((relay_cert, &relay_key)))).await.unwrap();
    assert_eq!(healthz(&mut tls).await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_ca_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-ca.pem");
    write(&bad, "this is not PEM\n");
    let failed = Gateway::start_expecting_failure(
        GatewayOptions::new(SEALGATE).data_dir(dir.path().join("data")).args(["--client-ca", bad.to_str().unwrap()]),
    );
    failed.assert_stderr_contains("--client-ca");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_is_served_to_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("server CA");
    let (cert_path, key_path) = (dir.path().join("s.pem"), dir.path().join("s.key"));
    let (first_pem, first_key, first_der, _) = ca.leaf("127.0.0.1");
    write(&cert_path, &first_pem);
    write(&key_path, &first_key);
    let gateway = gateway_with(dir.path(), &cert_path, &key_path, &[]);
    let client = connector(&ca.der, None);
    let mut open = handshake(&gateway, &client).await.unwrap();
    assert_eq!(presented(&open), first_der);
    assert_eq!(healthz(&mut open).await.unwrap(), 200);

    // Replace both files (key first: a moment with a mismatched pair must not be served),
    // then tell the gateway at once with SIGHUP rather than waiting for the file poll.
    let (second_pem, second_key, second_der, _) = ca.leaf("127.0.0.1");
    write(&key_path, &second_key);
    write(&cert_path, &second_pem);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(gateway.pid() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tls = handshake(&gateway, &client).await.unwrap();
        if presented(&tls) == second_der {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was not served within 10 s:\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened before the reload still works, with the certificate it had.
    assert_eq!(healthz(&mut open).await.unwrap(), 200, "the open connection survives the reload");
    assert_eq!(presented(&open), first_der);

    // A broken certificate file is refused; the one in force stays.
    write(&cert_path, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.logs().contains("could not be reloaded") {
        assert!(Instant::now() < deadline, "the broken file was not noticed:\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tls = handshake(&gateway, &client).await.unwrap();
    assert_eq!(presented(&tls), second_der);
    assert_eq!(healthz(&mut tls).await.unwrap(), 200);
}

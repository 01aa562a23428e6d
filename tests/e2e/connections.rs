//! Connection-level limits through the real `sealgate` binary: stalled request heads closed
//! by `--header-read-timeout`, silent and idle connections (HTTP/1 and HTTP/2) closed by
//! `--idle-timeout`, `--max-connections` refusing what is over the cap, the HTTP/2 settings
//! and the header size limit. Every case ends with a real inference, and every wait has a
//! timeout, so a gateway that keeps connections open fails the test instead of hanging it.
//!
//! Closing is observed from the client: a read that returns 0 bytes or an error. The only
//! time bound asserted is "within the configured timeout plus a generous margin".

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sealgate_test_support::{Gateway, GatewayOptions, assert_still_serving};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::SEALGATE;

/// Added to every configured timeout before a test gives up: a loaded 2-core CI machine
/// may be slow, but a connection that is never closed is still caught.
const MARGIN: Duration = Duration::from_secs(8);

/// Longest any single step (a handshake, a request) may take.
const STEP: Duration = Duration::from_secs(20);

/// Half a request head: the line that would finish it never comes.
const HALF_HEAD: &[u8] = b"POST /.well-known/ohttp-gateway HTTP/1.1\r\nHost: x\r\nContent-Ty";

/// Raises this test process's soft open-file limit to the hard one, so hundreds of client
/// sockets fit next to the test harness's own files.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
        && soft < hard
    {
        setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) })
            .expect("raising the open-file limit");
    }
}

/// A TLS 1.3 client that trusts the gateway's CA and offers `alpn`.
fn tls_connector(gateway: &Gateway, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&gateway.ca_pem()) {
        roots.add(cert.expect("the CA file holds PEM certificates")).expect("a valid CA certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the provider supports TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Options with these command-line arguments.
fn with_args(args: &[&str]) -> GatewayOptions {
    args.iter().fold(GatewayOptions::new(SEALGATE), |options, arg| options.arg(*arg))
}

fn address(gateway: &Gateway) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, gateway.port()))
}

/// TCP connect and TLS handshake, each bounded by [`STEP`].
async fn connect(address: SocketAddr, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = timeout(STEP, TcpStream::connect(address)).await.expect("TCP connect timed out")?;
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    timeout(STEP, connector.connect(name, tcp)).await.expect("TLS handshake timed out")
}

/// Reads until the server closes the stream (0 bytes or an error) and returns what it sent.
/// Panics when it is still open after `limit`.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    timeout(limit, read_all).await.unwrap_or_else(|_| panic!("the gateway kept the connection open for {limit:?}"));
    received
}

/// [`assert_still_serving`], bounded so a wedged gateway fails the test instead of hanging it.
async fn still_serving(gateway: &Gateway) {
    timeout(Duration::from_secs(60), assert_still_serving(gateway)).await.expect("the gateway did not answer in 60 s");
}

/// Opens an HTTP/2 connection to `gateway` and has `/readyz` answered 200 on it; returns the
/// client handle (holding it keeps the connection open from this side) and the connection's
/// task, which ends when the connection does.
async fn h2_readyz(
    gateway: &Gateway,
) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tls = connect(address(gateway), &tls_connector(gateway, &[b"h2"])).await.expect("TLS connection");
    let (h2, connection) = timeout(STEP, h2::client::handshake(tls)).await.expect("h2 handshake in time").expect("h2");
    let connection = tokio::spawn(connection);
    let mut h2 = timeout(STEP, h2.ready()).await.expect("h2 ready in time").expect("h2 ready");
    let request = http::Request::get(format!("https://localhost:{}/readyz", gateway.port())).body(()).expect("request");
    let (response, _) = h2.send_request(request, true).expect("sending an h2 request");
    let response = timeout(STEP, response).await.expect("an h2 answer in time").expect("an h2 answer");
    assert_eq!(response.status(), 200);
    (h2, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_heads_are_closed_after_the_header_read_timeout() {
    const CONNECTIONS: usize = 500;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    raise_open_file_limit();
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE)
            .arg("--header-read-timeout")
            .arg("2s")
            // Connection errors are logged at debug: switched on to check they are throttled.
            .env("SEALGATE_LOG", "info,sealgate::listener=debug"),
    );
    let connector = tls_connector(&gateway, &[b"http/1.1"]);
    let address = address(&gateway);

    let mut opening = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let connector = connector.clone();
        opening.spawn(async move {
            let mut stream = connect(address, &connector).await.expect("TLS connection");
            stream.write_all(HALF_HEAD).await.expect("sending half a request head");
            stream.flush().await.expect("flushing");
            (stream, Instant::now())
        });
    }
    let mut stalled = Vec::with_capacity(CONNECTIONS);
    while let Some(opened) = opening.join_next().await {
        stalled.push(opened.expect("opening a stalled connection"));
    }

    let closed = Arc::new(AtomicUsize::new(0));
    let mut closing = JoinSet::new();
    for (mut stream, stalled_at) in stalled {
        let closed = closed.clone();
        closing.spawn(async move {
            read_until_closed(&mut stream, HEADER_TIMEOUT + MARGIN).await;
            closed.fetch_add(1, Ordering::SeqCst);
            stalled_at.elapsed()
        });
    }
    // A real client is served while the stalled connections are open.
    still_serving(&gateway).await;
    let open_after_request = CONNECTIONS - closed.load(Ordering::SeqCst);

    let mut closed_after = Vec::with_capacity(CONNECTIONS);
    while let Some(closed) = closing.join_next().await {
        closed_after.push(closed.expect("a stalled connection stayed open"));
    }
    assert_eq!(closed_after.len(), CONNECTIONS, "every stalled connection is closed");
    let slowest = closed_after.iter().max().copied().unwrap_or_default();
    let fastest = closed_after.iter().min().copied().unwrap_or_default();
    println!(
        "{CONNECTIONS} stalled connections closed {fastest:?}..{slowest:?} after their half head \
         (--header-read-timeout {HEADER_TIMEOUT:?}); {open_after_request} were still open when the real request \
         had been served"
    );

    // 500 connection errors within a few seconds make a few throttled lines, not 500.
    let logs = gateway.logs();
    let lines = logs.lines().filter(|l| l.contains("connection ended with an error")).count();
    assert!((1..=30).contains(&lines), "{lines} 'connection ended' lines for {CONNECTIONS} connections:\n{logs}");
    still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_by_the_idle_timeout() {
    const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
    // The header timeout is far longer, so only the idle timeout can close these in time.
    let gateway = Gateway::start(with_args(&["--idle-timeout", "2s", "--header-read-timeout", "120s"]));
    let address = address(&gateway);

    // Silent after the handshake, whatever protocol was negotiated.
    let mut silent = JoinSet::new();
    for alpn in [vec![b"h2".as_slice()], vec![b"http/1.1".as_slice()], vec![]] {
        let connector = tls_connector(&gateway, &alpn);
        for _ in 0..5 {
            let connector = connector.clone();
            silent.spawn(async move {
                let mut stream = connect(address, &connector).await.expect("TLS connection");
                let opened = Instant::now();
                read_until_closed(&mut stream, IDLE_TIMEOUT + MARGIN).await;
                opened.elapsed()
            });
        }
    }

    // HTTP/1.1 keep-alive: one request answered, then nothing.
    let mut http1 = connect(address, &tls_connector(&gateway, &[b"http/1.1"])).await.expect("TLS connection");
    http1.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("sending a request");
    let mut first = [0u8; 12];
    timeout(STEP, http1.read_exact(&mut first)).await.expect("an answer in time").expect("reading the answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    let answered = Instant::now();
    read_until_closed(&mut http1, IDLE_TIMEOUT + MARGIN).await;
    let http1_idle = answered.elapsed();

    // HTTP/2: one request answered, then nothing; the gateway ends the connection (GOAWAY).
    let (h2, connection) = h2_readyz(&gateway).await;
    let answered = Instant::now();
    // `h2` is still held, so only the gateway can end the connection. Whether the TLS layer
    // ends with close_notify or not, the connection ending in time is what counts.
    let ended = timeout(IDLE_TIMEOUT + MARGIN, connection)
        .await
        .expect("the gateway kept an idle HTTP/2 connection open")
        .expect("the h2 connection task");
    let http2_idle = answered.elapsed();
    drop(h2);

    let mut silent_closed = Vec::new();
    while let Some(closed) = silent.join_next().await {
        silent_closed.push(closed.expect("a silent connection stayed open"));
    }
    println!(
        "--idle-timeout {IDLE_TIMEOUT:?}: silent connections closed after {:?}..{:?}, HTTP/1.1 keep-alive after \
         {http1_idle:?}, HTTP/2 after {http2_idle:?} ({ended:?})",
        silent_closed.iter().min().copied().unwrap_or_default(),
        silent_closed.iter().max().copied().unwrap_or_default(),
    );
    still_serving(&gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_at_once() {
    const CAP: usize = 50;
    const ATTEMPTS: usize = 100;
    raise_open_file_limit();
    // Long timeouts keep the accepted connections open for the whole test.
    let gateway = Gateway::start(with_args(&[
        "--max-connections",
        "50",
        "--idle-timeout",
        "60s",
        "--header-read-timeout",
        "60s",
    ]));
    let address = address(&gateway);
    let connector = tls_connector(&gateway, &[b"http/1.1"]);

    let mut attempts = JoinSet::new();
    for _ in 0..ATTEMPTS {
        let connector = connector.clone();
        attempts.spawn(async move { connect(address, &connector).await.ok() });
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    while let Some(attempt) = attempts.join_next().await {
        match attempt.expect("a connection attempt") {
            Some(stream) => accepted.push(stream),
            None => refused += 1,
        }
    }
    assert_eq!(accepted.len(), CAP, "connections accepted with --max-connections {CAP} ({refused} refused)");
    assert_eq!(refused, ATTEMPTS - CAP);

    // An accepted connection is left open: a read does not end before the idle timeout.
    let mut byte = [0u8; 1];
    let waited = timeout(Duration::from_millis(300), accepted[0].read(&mut byte)).await;
    assert!(waited.is_err(), "an accepted idle connection was closed: {waited:?}");

    // At the cap a new client is refused too.
    let refused_request = timeout(STEP, gateway.raw_http().get(gateway.endpoint("/readyz")).send())
        .await
        .expect("a refused request ends in time");
    assert!(refused_request.is_err(), "a request was served above --max-connections: {refused_request:?}");

    // Once the idle connections are gone, clients are served again.
    drop(accepted);
    let started = Instant::now();
    loop {
        let ready = timeout(STEP, gateway.raw_http().get(gateway.endpoint("/readyz")).send()).await;
        if matches!(&ready, Ok(Ok(response)) if response.status() == 200) {
            break;
        }
        assert!(started.elapsed() < STEP, "the gateway did not free its connections: {ready:?}\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    still_serving(&gateway).await;

    let logs = gateway.logs();
    let lines = logs.lines().filter(|l| l.contains("connection refused: at --max-connections")).count();
    assert!(
        (1..=10).contains(&lines),
        "{lines} refusal lines for {} refusals: they must be logged, and throttled:\n{logs}",
        ATTEMPTS - CAP + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_settings_and_header_size_follow_the_flags() {
    let gateway = Gateway::start(with_args(&["--http2-max-concurrent-streams", "7", "--max-header-bytes", "8192"]));
    let address = address(&gateway);

    // HTTP/2 advertises SETTINGS_MAX_CONCURRENT_STREAMS; after one answer the settings are in.
    let (h2, connection) = h2_readyz(&gateway).await;
    assert_eq!(h2.current_max_send_streams(), 7, "SETTINGS_MAX_CONCURRENT_STREAMS");
    drop(h2);
    connection.abort();

    // An HTTP/1.1 head larger than --max-header-bytes is refused with 431.
    let mut http1 = connect(address, &tls_connector(&gateway, &[b"http/1.1"])).await.expect("TLS connection");
    let head = format!("GET /readyz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n", "a".repeat(10_000));
    // The gateway may stop reading (and close) before the whole head is written.
    let _ = timeout(STEP, http1.write_all(head.as_bytes())).await.expect("writing the head in time");
    let answer = read_until_closed(&mut http1, STEP).await;
    assert!(answer.starts_with(b"HTTP/1.1 431"), "answer: {}", String::from_utf8_lossy(&answer));

    // A head within the limit is served on a fresh connection.
    let mut http1 = connect(address, &tls_connector(&gateway, &[b"http/1.1"])).await.expect("TLS connection");
    let head = format!("GET /readyz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n", "a".repeat(4_000));
    http1.write_all(head.as_bytes()).await.expect("sending a request");
    let mut first = [0u8; 12];
    timeout(STEP, http1.read_exact(&mut first)).await.expect("an answer in time").expect("reading the answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    still_serving(&gateway).await;
}

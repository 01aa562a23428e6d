//! Accepting TLS connections and serving a router over HTTP/1.1 and HTTP/2, within limits.
//!
//! axum's `serve` has no TLS, so this is the small accept loop that puts tokio-rustls in
//! front of hyper-util's connection builder. It is also where one client is kept from taking
//! the gateway down at the connection level: every connection holds a permit of a semaphore
//! sized by `--max-connections` (no permit: the connection is closed at once), the TLS
//! handshake has 10 s, an HTTP/1 request head has `--header-read-timeout`, a connection with
//! no request in flight is closed after `--idle-timeout`, HTTP/2 connections are pinged and
//! limited in streams, and header blocks are limited in size ([`ConnectionLimits`]). At
//! start the soft open-file limit is raised to the hard limit and the connection cap lowered
//! if the descriptors would not suffice. Log lines that a client can trigger are throttled
//! ([`LogThrottle`]).
//!
//! Shutting down drains instead of cutting off: when the shutdown future completes the
//! listener is dropped at once (new connections are refused by the kernel), every open
//! connection is told to shut down gracefully (HTTP/1 finishes its current request and
//! closes, HTTP/2 sends GOAWAY and finishes its open streams; a connection that never carried
//! a request is closed), and [`serve_tls`] waits for them for at most `--drain-timeout`. What
//! is still open then is cut off, with a warning; a second signal (the `force` future) cuts
//! it off at once. The connection tasks live in one `JoinSet`, so returning from
//! [`serve_tls`] ends every one of them.
//!
//! The protocol is chosen by ALPN (RFC 9113 §3.2: HTTP/2 over TLS is negotiated that way), not
//! by sniffing the first bytes: hyper-util's sniffing state has no timer, so a connection that
//! never sent a byte would wait there forever, and knowing the protocol up front makes hyper's
//! HTTP/1 header timer run from the first moment.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt as _;

use crate::log_throttle::{self, LogThrottle};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an HTTP/2 keep-alive ping may stay unanswered before the connection is closed.
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an idle connection that has served requests gets to close after it was asked to
/// (an HTTP/2 GOAWAY round trip); then it is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// File descriptors kept free of connections: the listener, model and key files, the audit
/// log, KMS clients and the runtime's own.
const RESERVED_FILES: u64 = 64;

/// The smallest HTTP/1 read buffer hyper accepts (`max_buf_size` panics below it).
const HYPER_MIN_BUF_SIZE: usize = 8192;

static AT_CAPACITY: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);
static HANDSHAKE_FAILED: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);
static HANDSHAKE_TIMED_OUT: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);
static CONNECTION_ERROR: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);
static IDLE_CLOSED: LogThrottle = LogThrottle::new(log_throttle::INTERVAL);

/// The connection-level limits of `sealgate serve`. Durations are written like `10s`,
/// `500ms` or `2m`; `0s` turns a timeout off.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionLimits {
    /// Time a client has to send a complete HTTP/1 request head, counted from the end of the
    /// TLS handshake or of the previous response; then the connection is closed without an
    /// answer. So this is also how long an HTTP/1 keep-alive connection waits for its next
    /// request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,
    /// A connection (HTTP/1 or HTTP/2) on which no request has been in flight for this long is
    /// closed; this also ends connections that never send a request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection that has been quiet is pinged; a ping unanswered for 20 s
    /// closes it.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub http2_keep_alive_interval: Duration,
    /// Most connections open at once (TLS handshakes included); further connections are
    /// closed as soon as they are accepted. Lowered at start when the open-file limit is
    /// too low for it.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Most concurrent requests (streams) per HTTP/2 connection, sent to clients in
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,
    /// Largest request head in bytes: the HTTP/1 read buffer, which must hold the whole head
    /// (larger heads get 431), and HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE. At least 8192
    /// (hyper's smallest HTTP/1 buffer).
    #[arg(long, default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(8192..))]
    pub max_header_bytes: u32,
    /// On SIGTERM or SIGINT, how long requests in flight get to finish (new connections are
    /// refused from the signal on); what is still open then is cut off. `0s` waits for every
    /// request however long it takes (a second signal still exits at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,
}

/// How serving ended, for what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// What is left of `--drain-timeout` for the caller's own remaining work (the blocking
    /// threads of inferences whose requests have ended): zero when connections were cut off,
    /// `None` when the drain has no bound.
    pub time_left: Option<Duration>,
}

/// Binds `addr`; returns the listener so the caller can print the real port before serving.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

/// Serves `app` over TLS within `limits` until `shutdown` completes, then drains the open
/// connections for at most `--drain-timeout`, or until `force` completes (polled only once
/// the drain has begun, so it can be "the second signal").
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Result<Drained> {
    let max_connections = connection_cap(limits.max_connections, raise_open_file_limit());
    if max_connections < limits.max_connections {
        tracing::warn!(
            requested = limits.max_connections,
            max_connections,
            "the open-file limit is too low for --max-connections; serving at most {max_connections} connections"
        );
    }
    // `u32` always fits in `usize` on the 32- and 64-bit targets the gateway runs on.
    let permits = Arc::new(Semaphore::new(usize::try_from(max_connections).unwrap_or(usize::MAX)));
    let protocols = Arc::new(Protocols::new(&limits));
    let acceptor = TlsAcceptor::from(tls);
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors must not end the gateway; back off.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Finished connections leave their (empty) results in the set until collected.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Dropping the stream closes it before any TLS work is spent on it.
            drop(tcp);
            if let Some(suppressed) = AT_CAPACITY.allow() {
                tracing::warn!(%peer, max_connections, suppressed, "connection refused: at --max-connections");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection { peer, _permit: permit, draining: draining.clone() };
        connections.spawn(serve_connection(tcp, connection, acceptor.clone(), app.clone(), protocols.clone()));
    }

    // Closing the listening socket first makes the kernel refuse new connections at once,
    // instead of queueing them in the backlog for a gateway that will never accept them.
    drop(listener);
    while connections.try_join_next().is_some() {}
    tracing::info!("draining: stopped accepting, {} connections open", connections.len());
    // Every connection task holds a receiver until it ends, so this cannot fail while one
    // is open; with none open there is nobody to tell.
    let _ = drain.send(true);
    let drain_timeout = enabled(limits.drain_timeout);
    let deadline = drain_timeout.map(|timeout| Instant::now() + timeout);
    let all_ended = async { while connections.join_next().await.is_some() {} };
    let deadline_passed = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = all_ended => {
            tracing::info!("drained");
            let time_left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            return Ok(Drained { time_left });
        }
        () = deadline_passed => {
            tracing::warn!(
                ?drain_timeout,
                "--drain-timeout passed with {} connections still open; cutting them off",
                connections.len()
            );
        }
        () = force => {
            tracing::warn!("drain interrupted with {} connections still open; cutting them off", connections.len());
        }
    }
    // Aborting the tasks drops the connections (and their requests) now, not when the
    // runtime goes away.
    connections.shutdown().await;
    Ok(Drained { time_left: Some(Duration::ZERO) })
}

/// What a connection task owns besides its socket.
struct Connection {
    peer: SocketAddr,
    /// One of `--max-connections`, held for exactly as long as the connection is open.
    _permit: OwnedSemaphorePermit,
    /// Becomes `true` when the gateway starts draining.
    draining: watch::Receiver<bool>,
}

/// Completes once the gateway drains. A closed channel means the accept loop is gone and
/// is aborting its connections itself, so that never completes.
async fn drain_started(draining: &mut watch::Receiver<bool>) {
    if draining.wait_for(|&draining| draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs one connection from the TLS handshake to its end.
async fn serve_connection(
    tcp: TcpStream,
    mut connection: Connection,
    acceptor: TlsAcceptor,
    app: Router,
    protocols: Arc<Protocols>,
) {
    let peer = connection.peer;
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => handshake,
        // A handshake carries no request yet, so a draining gateway owes it nothing.
        () = drain_started(&mut connection.draining) => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            if let Some(suppressed) = HANDSHAKE_FAILED.allow() {
                tracing::debug!(%peer, error = %e, suppressed, "TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            if let Some(suppressed) = HANDSHAKE_TIMED_OUT.allow() {
                tracing::debug!(%peer, suppressed, "TLS handshake timed out");
            }
            return;
        }
    };
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let builder = if http2 { &protocols.http2 } else { &protocols.http1 };
    let activity = Arc::new(Activity::new());
    let service = TrackedService { app, activity: activity.clone() };
    let http = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let result = drive(http, &activity, protocols.idle_timeout, http2, &mut connection).await;
    if let Err(e) = result
        && let Some(suppressed) = CONNECTION_ERROR.allow()
    {
        tracing::debug!(%peer, error = %e, suppressed, "connection ended with an error");
    }
}

/// One HTTP connection as hyper-util serves it.
type HttpConnection<'a> = auto::Connection<'a, TokioIo<TlsStream<TcpStream>>, TrackedService, TokioExecutor>;

/// What an HTTP connection ends with.
type ConnectionResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Drives `http` until it ends, has had no request in flight for `idle_timeout`, or has
/// finished its requests after the gateway began draining.
///
/// Idleness is measured in requests, not bytes: HTTP/2 keep-alive pings move bytes on an
/// otherwise unused connection, and a client trickling a request head would otherwise keep
/// it open (the head has its own `--header-read-timeout`). The idle timeout keeps running
/// while draining, so a peer that ignores GOAWAY is still closed when `--drain-timeout` is off.
async fn drive(
    mut http: Pin<&mut HttpConnection<'_>>,
    activity: &Activity,
    idle_timeout: Option<Duration>,
    http2: bool,
    connection: &mut Connection,
) -> ConnectionResult {
    let mut draining = false;
    loop {
        // While a request is in flight there is no deadline; look again one period later.
        let deadline = idle_timeout
            .map(|idle_timeout| activity.idle_deadline(idle_timeout).unwrap_or_else(|| Instant::now() + idle_timeout));
        let idle_deadline = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = http.as_mut() => return result,
            () = idle_deadline => {}
            () = drain_started(&mut connection.draining), if !draining => {
                draining = true;
                // An HTTP/1 connection that has not carried a request owes nothing and
                // hyper's graceful shutdown would wait for its first one; HTTP/2 gets its
                // GOAWAY even then, which tells the client that no stream was processed.
                if !http2 && !activity.was_used() {
                    return Ok(());
                }
                http.as_mut().graceful_shutdown();
                continue;
            }
        }
        let Some(idle_timeout) = idle_timeout else { continue };
        if activity.idle_deadline(idle_timeout).is_none_or(|deadline| deadline > Instant::now()) {
            continue;
        }
        if let Some(suppressed) = IDLE_CLOSED.allow() {
            tracing::debug!(peer = %connection.peer, ?idle_timeout, suppressed, "closing idle connection");
        }
        if !activity.was_used() {
            // Nothing was asked, so nothing is owed: close at once. (hyper's HTTP/1 graceful
            // shutdown would keep waiting for the first request.)
            return Ok(());
        }
        if !draining {
            http.as_mut().graceful_shutdown();
        }
        return tokio::time::timeout(SHUTDOWN_GRACE, http).await.unwrap_or(Ok(()));
    }
}

/// The HTTP/1.1 and HTTP/2 connection builders, configured once from the limits.
struct Protocols {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    idle_timeout: Option<Duration>,
}

impl Protocols {
    fn new(limits: &ConnectionLimits) -> Self {
        let max_header_bytes = usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(enabled(limits.header_read_timeout))
            .max_buf_size(max_header_bytes.max(HYPER_MIN_BUF_SIZE))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(enabled(limits.http2_keep_alive_interval))
            .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(limits.max_header_bytes);
        Self {
            http1: builder.clone().http1_only(),
            http2: builder.http2_only(),
            idle_timeout: enabled(limits.idle_timeout),
        }
    }
}

/// `None` for a zero duration: `0s` on the command line turns a timeout off.
fn enabled(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// Raises the soft open-file limit to the hard limit (a connection is a descriptor) and
/// returns the soft limit now in force, `None` when there is none.
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        // An unlimited hard limit cannot be set as the soft one on Linux (it is bounded by
        // fs.nr_open), so an unlimited soft or hard limit is left as it is.
        return limit.current;
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
        Ok(()) => {
            tracing::debug!(from = soft, to = hard, "raised the open-file limit");
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

/// The connection cap that fits in `open_file_limit` with [`RESERVED_FILES`] to spare: the
/// requested one when it fits, else what is left (at least one).
fn connection_cap(requested: u32, open_file_limit: Option<u64>) -> u32 {
    match open_file_limit {
        Some(limit) if u64::from(requested) + RESERVED_FILES > limit => {
            u32::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(u32::MAX).clamp(1, requested)
        }
        _ => requested,
    }
}

/// What the idle timeout of one connection looks at: requests in flight and when the last
/// one started or ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    used: AtomicBool,
    /// Milliseconds after `opened` of the last request start or end.
    last_change_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            used: AtomicBool::new(false),
            last_change_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_change_ms.store(elapsed, Ordering::SeqCst);
    }

    /// Counts a request as in flight until the returned guard is dropped.
    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.used.store(true, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }

    /// When the connection counts as idle if nothing happens before; `None` while a request
    /// is in flight.
    fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_change_ms.load(Ordering::SeqCst));
        Some(self.opened + last + idle_timeout)
    }

    fn was_used(&self) -> bool {
        self.used.load(Ordering::SeqCst)
    }
}

/// One request in flight on a connection; dropped when hyper drops the response body, that
/// is once the answer has been sent (or the request abandoned).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time is recorded before the count drops, so a watcher that sees no request in
        // flight also sees this end.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The router as a hyper service that counts its requests in flight on [`Activity`].
#[derive(Clone)]
struct TrackedService {
    app: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin_request();
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await?;
            Ok(response.map(|body| TrackedBody { body, _in_flight: in_flight }))
        })
    }
}

/// A response body that keeps its request counted as in flight until it has been sent.
struct TrackedBody {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: ConnectionLimits,
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let limits = Cli::try_parse_from(["serve"]).unwrap().limits;
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.http2_keep_alive_interval, Duration::from_secs(20));
        assert_eq!(limits.max_connections, 4096);
        assert_eq!(limits.http2_max_concurrent_streams, 64);
        assert_eq!(limits.max_header_bytes, 16384);
        assert_eq!(limits.drain_timeout, Duration::from_secs(30));
    }

    #[test]
    fn durations_are_human_and_zero_turns_a_timeout_off() {
        let limits =
            Cli::try_parse_from(["serve", "--header-read-timeout", "500ms", "--idle-timeout", "0s"]).unwrap().limits;
        assert_eq!(enabled(limits.header_read_timeout), Some(Duration::from_millis(500)));
        assert_eq!(enabled(limits.idle_timeout), None);
        assert!(Cli::try_parse_from(["serve", "--idle-timeout", "10"]).is_err(), "a unit is required");
    }

    #[test]
    fn limits_hyper_would_panic_on_are_refused() {
        assert!(Cli::try_parse_from(["serve", "--max-header-bytes", "8191"]).is_err());
        assert!(Cli::try_parse_from(["serve", "--max-header-bytes", "8192"]).is_ok());
        assert!(Cli::try_parse_from(["serve", "--max-connections", "0"]).is_err());
        assert!(Cli::try_parse_from(["serve", "--http2-max-concurrent-streams", "0"]).is_err());
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(connection_cap(4096, None), 4096, "no limit");
        assert_eq!(connection_cap(4096, Some(1 << 20)), 4096, "plenty");
        assert_eq!(connection_cap(4096, Some(4096 + RESERVED_FILES)), 4096, "exactly enough");
        assert_eq!(connection_cap(4096, Some(1024)), 1024 - RESERVED_FILES as u32);
        assert_eq!(connection_cap(4096, Some(10)), 1, "never zero");
    }

    #[test]
    fn a_connection_is_idle_only_without_requests_in_flight() {
        let activity = Arc::new(Activity::new());
        let idle = Duration::from_secs(60);
        let first = activity.idle_deadline(idle).unwrap();
        assert!(first >= activity.opened + idle);
        assert!(!activity.was_used());

        let request = activity.begin_request();
        let second = activity.begin_request();
        assert_eq!(activity.idle_deadline(idle), None);
        drop(request);
        assert_eq!(activity.idle_deadline(idle), None, "one request is still in flight");
        drop(second);
        assert!(activity.idle_deadline(idle).unwrap() >= first, "the clock restarts when the last one ends");
        assert!(activity.was_used());
    }
}

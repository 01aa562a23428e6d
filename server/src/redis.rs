//! The few Redis commands the shared replay window needs (`SET key value NX PX ms`, `AUTH`,
//! `SELECT`, `PING`), spoken in RESP2 over plain TCP to one Redis server.
//!
//! A full client crate would bring connection managers, cluster support and dozens of
//! commands for the three the gateway uses; the protocol for these is a few lines
//! (<https://redis.io/docs/latest/develop/reference/protocol-spec/>). Connections are pooled;
//! a connection that fails or times out is dropped, never reused mid-reply. Every command
//! has a deadline, so an unreachable or stalled Redis costs a request at most that long.
//!
//! The address is written `redis://HOST:PORT[/DB]`; a password is given apart from it
//! ([`RedisUrl::with_password`], read by `serve` from `--replay-store-password-file`), so it is
//! never in a command line, a configuration file or `sealgate config check`. It never
//! appears in `Display`, `Debug` or error messages either.

use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// How long one command (including connecting) may take before it counts as a failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Idle connections kept for reuse.
const POOL_SIZE: usize = 32;

/// Longest reply line read (a status, an error or a length): Redis's own are far shorter.
const MAX_LINE: usize = 4096;

/// Where a Redis server is and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    host: String,
    port: u16,
    db: u32,
    password: Option<Zeroizing<String>>,
}

impl RedisUrl {
    /// Parses `redis://HOST:PORT[/DB]`. A password in the URL is refused (it would show in
    /// the process list and in `sealgate config check`), without repeating it. TLS
    /// (`rediss://`) is not supported: keep Redis on the replicas' private network.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("redis://").ok_or_else(|| {
            if text.starts_with("rediss://") {
                "rediss:// (Redis over TLS) is not supported; use redis:// on a private network".to_owned()
            } else {
                "a replay store must be written redis://HOST:PORT".to_owned()
            }
        })?;
        if rest.contains('@') {
            return Err(
                "a password does not go in the replay store's URL; give it in --replay-store-password-file".into()
            );
        }
        let (authority, db) = match rest.split_once('/') {
            Some((authority, "")) => (authority, 0),
            Some((authority, db)) => (authority, db.parse().map_err(|_| "the database after / must be a number")?),
            None => (rest, 0),
        };
        let (host, port) = authority.rsplit_once(':').ok_or("a replay store must name its port: redis://HOST:PORT")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("a replay store must name its host: redis://HOST:PORT".into());
        }
        let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or("the port must be a number from 1 to 65535")?;
        Ok(Self { host: host.to_owned(), port, db, password: None })
    }

    /// The same address, logging in with `password` (`AUTH`).
    pub fn with_password(mut self, password: Zeroizing<String>) -> Self {
        self.password = Some(password);
        self
    }
}

impl fmt::Display for RedisUrl {
    /// The address without its password (safe to log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "redis://{host}:{}/{}", self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A pooled client of one Redis server.
#[derive(Debug)]
pub struct Redis {
    url: RedisUrl,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

/// One open connection, logged in and on its database.
#[derive(Debug)]
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Redis {
    /// A client of `url`; it connects on first use.
    pub fn new(url: RedisUrl, timeout: Duration) -> Self {
        Self { url, timeout, idle: Mutex::new(Vec::new()) }
    }

    /// The server's address (without its password).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// `SET key value NX PX ttl`: true when the key was set (it did not exist), false when it
    /// existed already.
    pub async fn set_nx_px(&self, key: &[u8], value: &[u8], ttl: Duration) -> io::Result<bool> {
        let millis = ttl.as_millis().max(1).to_string();
        let reply = self.command(&[b"SET", key, value, b"NX", b"PX", millis.as_bytes()]).await?;
        set_reply(reply)
    }

    /// [`Redis::set_nx_px`] and `GET other` pipelined in one round trip: whether the key was
    /// set, and `other`'s value (`None` when it does not exist).
    pub async fn set_nx_px_then_get(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Duration,
        other: &[u8],
    ) -> io::Result<(bool, Option<Vec<u8>>)> {
        let millis = ttl.as_millis().max(1).to_string();
        let mut replies = self
            .commands(&[&[b"SET", key, value, b"NX", b"PX", millis.as_bytes()], &[b"GET", other]])
            .await?
            .into_iter();
        let (Some(set), Some(get)) = (replies.next(), replies.next()) else {
            return Err(protocol_error("fewer replies than commands"));
        };
        let value = match get {
            Reply::Bulk(value) => Some(value),
            Reply::Nil => None,
            other => return Err(unexpected("GET", &other)),
        };
        Ok((set_reply(set)?, value))
    }

    /// `SET key value NX GET` (Redis 7): `None` when the key was set to `value`, else the value
    /// it already had, which is kept.
    pub async fn set_nx_get(&self, key: &[u8], value: &[u8]) -> io::Result<Option<Vec<u8>>> {
        match self.command(&[b"SET", key, value, b"NX", b"GET"]).await? {
            Reply::Nil => Ok(None),
            Reply::Bulk(existing) => Ok(Some(existing)),
            other => Err(unexpected("SET NX GET", &other)),
        }
    }

    /// `PING`: whether the server answers.
    pub async fn ping(&self) -> io::Result<()> {
        match self.command(&[b"PING"]).await? {
            Reply::Status(status) if status == "PONG" => Ok(()),
            other => Err(unexpected("PING", &other)),
        }
    }

    /// Sends one command on a pooled (or new) connection within the deadline and reads its
    /// reply. The connection goes back to the pool only after a complete reply.
    async fn command(&self, args: &[&[u8]]) -> io::Result<Reply> {
        let reply = self.commands(&[args]).await?.pop();
        reply.ok_or_else(|| protocol_error("no reply"))
    }

    /// Sends `commands` pipelined (one write) on a pooled (or new) connection within the
    /// deadline and reads one reply for each. The connection goes back to the pool only after
    /// every reply was read. A Redis error reply to any of them is an error.
    async fn commands(&self, commands: &[&[&[u8]]]) -> io::Result<Vec<Reply>> {
        let pooled = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let exchange = async {
            let mut connection = match pooled {
                Some(connection) => connection,
                None => self.connect().await?,
            };
            let replies = connection.call_all(commands).await?;
            Ok::<_, io::Error>((connection, replies))
        };
        let (connection, replies) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{} did not answer in time", self.url)))??;
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < POOL_SIZE {
            idle.push(connection);
        }
        drop(idle);
        if let Some(Reply::Error(message)) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
            return Err(io::Error::other(format!("{} refused the command: {message}", self.url)));
        }
        Ok(replies)
    }

    async fn connect(&self) -> io::Result<Connection> {
        let stream = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {}: {e}", self.url)))?;
        stream.set_nodelay(true)?;
        let mut connection = Connection { stream: BufReader::new(stream) };
        if let Some(password) = &self.url.password {
            match connection.call(&[b"AUTH", password.as_bytes()]).await? {
                Reply::Status(_) => {}
                // The server's text names the failure (`WRONGPASS ...`), never the password.
                Reply::Error(message) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("{} refused the password: {message}", self.url),
                    ));
                }
                other => return Err(unexpected("AUTH", &other)),
            }
        }
        if self.url.db != 0 {
            let db = self.url.db.to_string();
            match connection.call(&[b"SELECT", db.as_bytes()]).await? {
                Reply::Status(_) => {}
                other => return Err(unexpected("SELECT", &other)),
            }
        }
        Ok(connection)
    }
}

impl Connection {
    /// Writes one command as a RESP array of bulk strings and reads one reply.
    async fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let reply = self.call_all(&[args]).await?.pop();
        reply.ok_or_else(|| protocol_error("no reply"))
    }

    /// Writes `commands` in one write, each a RESP array of bulk strings, and reads one reply
    /// for each, in order.
    async fn call_all(&mut self, commands: &[&[&[u8]]]) -> io::Result<Vec<Reply>> {
        let mut out =
            Vec::with_capacity(commands.iter().flat_map(|c| c.iter()).map(|a| a.len() + 16).sum::<usize>() + 16);
        for args in commands {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for arg in *args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
        }
        let written = self.stream.get_mut().write_all(&out).await;
        // The command may hold a password (AUTH): wipe the copy.
        zeroize::Zeroize::zeroize(&mut out);
        written?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            replies.push(read_reply(&mut self.stream).await?);
        }
        Ok(replies)
    }
}

/// What `SET ... NX` answers: `OK` when it set the key, nil when the key existed.
fn set_reply(reply: Reply) -> io::Result<bool> {
    match reply {
        Reply::Status(status) if status == "OK" => Ok(true),
        Reply::Nil => Ok(false),
        other => Err(unexpected("SET", &other)),
    }
}

/// The reply types these commands can get.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
}

/// Reads one RESP2 reply (RESP3's null `_` too). Arrays are not expected and are refused.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Reply> {
    let line = read_line(reader).await?;
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| protocol_error("an empty reply line"))?;
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest.parse().map(Reply::Integer).map_err(|_| protocol_error("a bad integer reply")),
        "_" => Ok(Reply::Nil),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| protocol_error("a bad bulk length"))?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|n| *n <= MAX_LINE)
                .ok_or_else(|| protocol_error("a bulk reply too long"))?;
            let mut bulk = vec![0; len + 2];
            reader.read_exact(&mut bulk).await?;
            if !bulk.ends_with(b"\r\n") {
                return Err(protocol_error("a bulk reply without its CRLF"));
            }
            bulk.truncate(len);
            Ok(Reply::Bulk(bulk))
        }
        _ => Err(protocol_error("a reply of a type these commands never get")),
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    let read = (&mut *reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "Redis closed the connection"));
    }
    let line = line.strip_suffix(b"\r\n").ok_or_else(|| protocol_error("a reply line without CRLF"))?;
    String::from_utf8(line.to_vec()).map_err(|_| protocol_error("a reply line that is not UTF-8"))
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("Redis sent {what}"))
}

fn unexpected(command: &str, reply: &Reply) -> io::Error {
    let kind = match reply {
        Reply::Status(_) => "a status",
        Reply::Error(_) => "an error",
        Reply::Integer(_) => "an integer",
        Reply::Bulk(_) => "a bulk string",
        Reply::Nil => "nil",
    };
    protocol_error(&format!("{kind} in answer to {command}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_their_password() {
        let url = RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(url.to_string(), "redis://127.0.0.1:6379/0");
        let url = RedisUrl::parse("redis://redis.internal:6380/2")
            .unwrap()
            .with_password(Zeroizing::new("s3cret-canary".to_owned()));
        assert_eq!(url.db, 2);
        assert_eq!(url.password.as_deref().map(String::as_str), Some("s3cret-canary"));
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("s3cret-canary"), "{shown}");
            assert_eq!(shown, "redis://redis.internal:6380/2");
        }
        assert_eq!(RedisUrl::parse("redis://[::1]:6379/").unwrap().to_string(), "redis://[::1]:6379/0");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (bad, says) in [
            ("127.0.0.1:6379", "redis://HOST:PORT"),
            ("rediss://h:6379", "not supported"),
            ("redis://h", "port"),
            ("redis://:6379", "host"),
            ("redis://h:0", "port"),
            ("redis://h:99999", "port"),
            ("redis://h:6379/x", "database"),
            ("redis://:pw-canary@h:6379", "--replay-store-password-file"),
            ("redis://pw-canary@h", "--replay-store-password-file"),
        ] {
            let error = RedisUrl::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
            assert!(!error.contains("pw-canary"), "{error}");
        }
    }

    #[tokio::test]
    async fn replies_are_read_by_type() {
        let cases: [(&[u8], Reply); 6] = [
            (b"+OK\r\n", Reply::Status("OK".into())),
            (b"-ERR wrong\r\n", Reply::Error("ERR wrong".into())),
            (b":42\r\n", Reply::Integer(42)),
            (b"$-1\r\n", Reply::Nil),
            (b"_\r\n", Reply::Nil),
            (b"$3\r\nabc\r\n", Reply::Bulk(b"abc".to_vec())),
        ];
        for (wire, expected) in cases {
            let mut reader = BufReader::new(wire);
            assert_eq!(read_reply(&mut reader).await.unwrap(), expected, "{wire:?}");
        }
        for bad in [&b"*1\r\n"[..], b"+OK\n", b"", b"$5\r\nab\r\n", b"$99999\r\n", b":x\r\n"] {
            let mut reader = BufReader::new(bad);
            assert!(read_reply(&mut reader).await.is_err(), "{bad:?}");
        }
    }
}

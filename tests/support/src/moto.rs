//! A throwaway moto server: a local endpoint speaking the AWS KMS API, for the `aws-kms`
//! provider's tests, in `sealgate-models` (the provider in-process) and end to end (the
//! `sealgate` binary, pointed at it with [`Moto::env`]).
//!
//! Each [`Moto`] is its own `python3 -m moto.server` process on a free port of 127.0.0.1,
//! so tests running in parallel (threads under `cargo test`, processes under nextest) never
//! see each other's keys. [`Moto::stop`] (or dropping it) kills the process. Moto comes from `models/tests/requirements.txt` (`cargo xtask setup`
//! installs it).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long moto may take to start listening. It is usually ready in about a second, but
/// on a loaded machine (a full parallel test run) Python's imports alone can take several.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts to start, each on a new port: a port picked free can be taken by someone else
/// before moto binds it, and moto then exits at once.
const START_ATTEMPTS: usize = 3;

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// The endpoint URL, such as `http://127.0.0.1:40123`.
    pub endpoint: String,
}

impl Moto {
    /// Starts a fresh server and waits until it accepts connections. Panics (failing the
    /// test) with moto's own output if it cannot start.
    pub fn start() -> Moto {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match try_start() {
                Ok(moto) => return moto,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("moto did not start ({last_failure}); install it with `cargo xtask setup`");
    }

    /// The environment that points the `aws-kms` provider at this server with test
    /// credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }

    /// Kills the server and waits until it is gone: afterwards its port refuses
    /// connections (a missing KMS).
    pub fn stop(&mut self) {
        // Kill fails only if the process is gone already, which is fine too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address of a bound listener").port()
}

fn try_start() -> Result<Moto, String> {
    let port = free_port();
    // Moto logs every request; into an unread pipe it would block once the pipe is full, so
    // its output goes to an anonymous file, read back only to explain a failed start.
    let mut log = tempfile::tempfile().map_err(|e| format!("creating a log file: {e}"))?;
    let log_for_child = log.try_clone().map_err(|e| format!("cloning the log file: {e}"))?;
    let mut child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_for_child)
        .spawn()
        .map_err(|e| format!("running python3: {e}"))?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(Moto { child, endpoint: format!("http://{address}") });
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto exited with {status}: {}", read_log(&mut log)));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("moto did not listen within {START_TIMEOUT:?}: {}", read_log(&mut log)));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last part of moto's output, for a failure message.
fn read_log(log: &mut File) -> String {
    let mut text = String::new();
    let _ = log.seek(SeekFrom::Start(0)).and_then(|_| log.read_to_string(&mut text));
    let tail: Vec<&str> = text.lines().rev().take(10).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

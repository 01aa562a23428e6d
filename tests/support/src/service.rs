//! A throwaway server process on loopback, for tests: moto (the AWS KMS API), Redis (the
//! shared replay window), nginx (the load balancer). Each is started on a free port of
//! 127.0.0.1, waited for until it accepts connections, and killed on drop, so tests running
//! in parallel never share one.
//!
//! Output goes to an anonymous file (a server logging into an unread pipe would block once
//! the pipe is full), read back only to explain a failed start.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Attempts to start, each on a new port: a port picked free can be taken by someone else
/// before the server binds it, and the server then exits at once.
const START_ATTEMPTS: usize = 3;

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address of a bound listener").port()
}

/// A running server process; killed on drop.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    child: Option<Child>,
    log: Option<File>,
    /// The port it listens on.
    pub port: u16,
}

impl Service {
    /// Starts `command(port)` on a free port and waits up to `timeout` until the port
    /// accepts connections, trying a few ports. Panics with the server's output and `hint`
    /// (how to install it) if it cannot start.
    pub fn start(name: &'static str, hint: &str, timeout: Duration, command: impl Fn(u16) -> Command) -> Service {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match Self::start_on(name, port, timeout, command(port)) {
                Ok(service) => return service,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("{name} did not start ({last_failure}); {hint}");
    }

    /// Starts `command` that listens on `port` (a restart on the port a server had).
    pub fn start_on(name: &'static str, port: u16, timeout: Duration, mut command: Command) -> Result<Service, String> {
        let log = tempfile::tempfile().map_err(|e| format!("creating a log file: {e}"))?;
        let log_for_child = log.try_clone().map_err(|e| format!("cloning the log file: {e}"))?;
        let log_for_stdout = log.try_clone().map_err(|e| format!("cloning the log file: {e}"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log_for_child)
            .spawn()
            .map_err(|e| format!("running {name}: {e}"))?;
        let mut service = Service { name, child: Some(child), log: Some(log), port };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(service);
            }
            if let Some(Ok(Some(status))) = service.child.as_mut().map(Child::try_wait) {
                return Err(format!("{name} exited with {status}: {}", service.log_tail()));
            }
            if Instant::now() > deadline {
                service.stop();
                return Err(format!("{name} did not listen within {timeout:?}: {}", service.log_tail()));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id (to signal it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server and waits until it is gone: afterwards its port refuses
    /// connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Kill fails only if the process is gone already, which is fine too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the server's output, for a failure message.
    pub fn log_tail(&mut self) -> String {
        let Some(log) = self.log.as_mut() else { return String::new() };
        let mut text = String::new();
        let _ = log.seek(SeekFrom::Start(0)).and_then(|_| log.read_to_string(&mut text));
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        format!("{}:\n{}", self.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

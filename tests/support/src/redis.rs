//! A throwaway Redis server (Debian's `redis-server`) on loopback: the replay window that
//! replicas share (`sealgate serve --replay-store`). Nothing is persisted: no RDB, no AOF.

use std::process::Command;
use std::time::Duration;

use crate::service::Service;

const START_TIMEOUT: Duration = Duration::from_secs(10);
const HINT: &str = "install it with `cargo xtask setup` (apt-get install -y redis-server)";

/// A running `redis-server`; killed on drop.
#[derive(Debug)]
pub struct Redis {
    service: Service,
    password: Option<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server without a password.
    pub fn start() -> Redis {
        Self::start_with(None)
    }

    /// Starts a server that requires `password` (`requirepass`), or none.
    pub fn start_with(password: Option<&str>) -> Redis {
        let dir = tempfile::tempdir().expect("a temporary directory for Redis");
        let password = password.map(str::to_owned);
        let service =
            Service::start("redis-server", HINT, START_TIMEOUT, |port| command(port, dir.path(), password.as_deref()));
        Redis { service, password, dir }
    }

    /// `redis://127.0.0.1:PORT`, for `--replay-store`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.service.address())
    }

    /// The password it requires, if any (for `--replay-store-password-file`).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Kills the server (SIGKILL): its port refuses connections until [`Redis::restart`].
    pub fn stop(&mut self) {
        self.service.stop();
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.service.stop();
        let command = command(self.service.port, self.dir.path(), self.password.as_deref());
        self.service = Service::start_on("redis-server", self.service.port, START_TIMEOUT, command)
            .unwrap_or_else(|failure| panic!("redis-server did not restart: {failure}"));
    }
}

fn command(port: u16, dir: &std::path::Path, password: Option<&str>) -> Command {
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    if let Some(password) = password {
        command.args(["--requirepass", password]);
    }
    command
}

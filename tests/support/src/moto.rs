//! A throwaway moto server: a local endpoint speaking the AWS KMS API, for the `aws-kms`
//! provider's tests, in `sealgate-models` (the provider in-process) and end to end (the
//! `sealgate` binary, pointed at it with [`Moto::env`]).
//!
//! Each [`Moto`] is its own `python3 -m moto.server` process on a free port of 127.0.0.1
//! ([`Service`]), so tests running in parallel (threads under `cargo test`, processes under
//! nextest) never see each other's keys. [`Moto::stop`] (or dropping it) kills the process.
//! Moto comes from `models/tests/requirements.txt` (`cargo xtask setup` installs it).

use std::process::Command;
use std::time::Duration;

use crate::service::Service;
pub use crate::service::free_port;

/// How long moto may take to start listening. It is usually ready in about a second, but
/// on a loaded machine (a full parallel test run) Python's imports alone can take several.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    service: Service,
    /// The endpoint URL, such as `http://127.0.0.1:40123`.
    pub endpoint: String,
}

impl Moto {
    /// Starts a fresh server and waits until it accepts connections. Panics (failing the
    /// test) with moto's own output if it cannot start.
    pub fn start() -> Moto {
        let service = Service::start("moto", "install it with `cargo xtask setup`", START_TIMEOUT, |port| {
            let mut command = Command::new("python3");
            command.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        });
        let endpoint = format!("http://{}", service.address());
        Moto { service, endpoint }
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
        self.service.stop();
    }
}

//! Process plumbing shared by the gateway and the CLI runner: a `sealgate` command with
//! the caller's configuration variables cleared, a guard that kills a child when a test
//! panics, and a runner for other programs (Python, Node) with a timeout.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Environment variables of the gateway that the harness clears so the caller's shell
/// cannot change what a test runs; set them again with [`crate::GatewayOptions::env`] (or
/// [`crate::SealgateCommand::env`]).
const CLEARED_ENV: &[&str] = &[
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
];

/// `binary` (the `sealgate` binary) run from `cwd`, without colours, without any `SEALGATE_*`
/// variable (every `serve` option has one) and without the variables in [`CLEARED_ENV`]; the
/// caller adds arguments, environment and stdio.
pub(crate) fn sealgate_process(binary: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(binary);
    // A temporary working directory, so no relative default finds or leaves files elsewhere.
    command.current_dir(cwd).env("NO_COLOR", "1");
    for key in CLEARED_ENV {
        command.env_remove(key);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("SEALGATE_")) {
            command.env_remove(key);
        }
    }
    command
}

/// Kills the child process when dropped, also when `Gateway::start` panics half-way.
#[derive(Debug)]
pub(crate) struct ChildGuard(pub(crate) Child);

impl ChildGuard {
    /// Kills the process unless it has exited already, and waits for it; its exit status.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.0.try_wait() {
            return Some(status);
        }
        let _ = self.0.kill();
        self.0.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command with stdin closed and a timeout; panics with `install_hint` when the
/// program is missing and with the elapsed time when it hangs.
pub async fn run_command(
    command: &mut tokio::process::Command,
    timeout: Duration,
    install_hint: &str,
) -> std::io::Result<Output> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{program} not found: {install_hint}"),
        Err(e) => return Err(e),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output,
        Err(_) => panic!("{program} did not finish within {timeout:?}"),
    }
}

/// Stdout and stderr of a finished command, as text.
pub fn output_text(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

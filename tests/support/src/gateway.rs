//! The gateway process: [`Gateway::start`] runs `sealgate serve` on `127.0.0.1:0` with a
//! fresh temporary data directory (the demo models unless told otherwise: the real models
//! only for [`GatewayOptions::real_models`]), captures its
//! stdout and stderr to files, waits until it prints its address, and kills it when
//! dropped. Every test starts its own gateway, so tests run in parallel.
//!
//! The binary comes from the caller ([`GatewayOptions::new`]): the end-to-end suite passes
//! `env!("CARGO_BIN_EXE_sealgate")`, other packages [`crate::gateway_binary`]. The SDK
//! client ([`Gateway::client`]) lives here; raw HTTP and hand-made OHTTP exchanges are in
//! `exchange.rs`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sealgate_client::{Client, ClientBuilder};

use crate::process::{ChildGuard, sealgate_process};
use crate::{ort_library, sealgate_command};

/// How long the gateway may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// File (inside [`Gateway::root`]) that receives the gateway's stdout.
pub const STDOUT_FILE: &str = "stdout.log";

/// File (inside [`Gateway::root`]) that receives the gateway's stderr (the log).
pub const STDERR_FILE: &str = "stderr.log";

/// The tenant the harness creates (`sealgate tenants add test --models '*'`) before it
/// starts a gateway on models of its own, which has no `dev` tenant; its token is kept in
/// `DATA_DIR/test.token`.
pub const TEST_TENANT: &str = "test";

/// How to start a [`Gateway`]: the binary, extra command-line arguments and environment
/// variables.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    models: Option<PathBuf>,
    real_models: bool,
    data_dir: Option<PathBuf>,
    no_test_tenant: bool,
}

impl GatewayOptions {
    /// The defaults for the `sealgate` binary at `binary`: the demo models (the embedded
    /// default with `--no-real-models`), log level `info`, the gateway's default limits.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            args: Vec::new(),
            env: Vec::new(),
            models: None,
            real_models: false,
            data_dir: None,
            no_test_tenant: false,
        }
    }

    /// Appends one argument after `serve --data-dir .. --listen ..`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<S: Into<String>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Self::arg)
    }

    /// Sets an environment variable of the gateway process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Serves the models in `dir` instead of the demo models sealed into the data dir.
    pub fn models(mut self, dir: impl Into<PathBuf>) -> Self {
        self.models = Some(dir.into());
        self
    }

    /// The embedded default with the real models too (`seizure-risk`, `text-embedding`, from
    /// `.tools/models`, see [`crate::real_models_installed`]), as `sealgate serve` runs
    /// without flags. Every other gateway passes `--no-real-models`: sealing about 30 MB and
    /// building MiniLM's sessions would add most of a second of CPU to each of the
    /// suite's ~200 gateways.
    pub fn real_models(mut self) -> Self {
        self.real_models = true;
        self
    }

    /// With [`GatewayOptions::models`], do not create the harness tenant (see
    /// [`Gateway::token`]): the gateway starts with no tenants at all.
    pub fn without_test_tenant(mut self) -> Self {
        self.no_test_tenant = true;
        self
    }

    /// Uses `dir` as the data directory (its local keyring, audit log, published versions)
    /// instead of a fresh `data/` inside [`Gateway::root`]. The caller owns and removes it,
    /// so several gateways and `sealgate` CLI commands can share one.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The `sealgate serve ...` command these options describe, run from `root` (a
    /// temporary directory) with output going to `stdout` and `stderr`.
    fn command(&self, root: &Path, data_dir: &Path, stdout: File, stderr: File) -> std::process::Command {
        let mut command = sealgate_process(&self.binary, root);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.args)
            .env("ORT_DYLIB_PATH", ort_library())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Without --models the gateway runs its embedded default: it seals models/demo (and,
        // unless --no-real-models, .tools/models) with its local KMS into the data dir on first
        // start and serves the sealed artifacts.
        match &self.models {
            Some(models) => {
                command.arg("--models").arg(models);
            }
            None if !self.real_models => {
                command.arg("--no-real-models");
            }
            None => {}
        }
        // The metrics listener's default port (9464) would be shared by every gateway the
        // tests start in parallel; each gets a port of its own unless the test picks one.
        if !self.args.iter().any(|a| a.starts_with("--metrics-listen")) {
            command.arg("--metrics-listen").arg("127.0.0.1:0");
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Starts `sealgate serve` in a fresh temporary directory, its output going to
    /// [`STDOUT_FILE`] and [`STDERR_FILE`] there; does not wait for anything.
    fn spawn(&self) -> Spawned {
        let root = tempfile::Builder::new().prefix("sealgate-test-").tempdir().expect("creating a temporary directory");
        let data_dir = self.data_dir.clone().unwrap_or_else(|| root.path().join("data"));
        if self.models.is_some() && !self.no_test_tenant && !data_dir.join("tenants.json").exists() {
            let added = sealgate_command(&self.binary, ["tenants", "add", TEST_TENANT, "--models", "*", "--data-dir"])
                .arg(&data_dir)
                .run();
            added.assert_success();
            fs::write(data_dir.join("test.token"), added.stdout.trim()).expect("writing the test token");
        }
        let stdout = File::create(root.path().join(STDOUT_FILE)).expect("creating the stdout file");
        let stderr = File::create(root.path().join(STDERR_FILE)).expect("creating the stderr file");
        let mut command = self.command(root.path(), &data_dir, stdout, stderr);
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        Spawned { guard: ChildGuard(child), data_dir, root }
    }
}

/// A `sealgate serve` just started by [`GatewayOptions::spawn`].
struct Spawned {
    guard: ChildGuard,
    data_dir: PathBuf,
    // Declared last so it is removed after the process is gone.
    root: tempfile::TempDir,
}

impl Spawned {
    /// What the process has printed on stdout so far.
    fn stdout(&self) -> String {
        fs::read_to_string(self.root.path().join(STDOUT_FILE)).unwrap_or_default()
    }

    /// Stdout and stderr so far, for messages.
    fn logs(&self) -> String {
        read_logs(self.root.path())
    }
}

/// A `sealgate serve` that exited before it listened (see [`Gateway::start_expecting_failure`]).
#[derive(Debug)]
pub struct FailedStart {
    /// Its exit status (never success).
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr: the log and the final `error: ...` line.
    pub stderr: String,
}

impl FailedStart {
    /// Asserts that stderr contains `needle`; returns `self` for chaining.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "expected '{needle}' in the gateway's stderr:\n{}", self.text());
        self
    }

    /// The `error: ...` the gateway ended with (from the last line that starts with it to
    /// the end), without the log lines before it; empty when there is none.
    pub fn error(&self) -> String {
        let at = self
            .stderr
            .match_indices("error: ")
            .map(|(i, _)| i)
            .filter(|&i| i == 0 || self.stderr[..i].ends_with('\n'));
        at.last().map(|i| self.stderr[i..].to_owned()).unwrap_or_default()
    }

    /// Status and output, for messages.
    pub fn text(&self) -> String {
        format!("status: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// What the gateway prints on stdout once it listens.
#[derive(Debug, Clone)]
struct Startup {
    url: String,
    port: u16,
    ca: PathBuf,
    key_id: u8,
    key_config_sha256: String,
    metrics: Option<String>,
}

/// Parses the startup lines; `None` until the last one (`models: ...`) has been printed.
fn parse_startup(stdout: &str) -> Option<Startup> {
    let complete: Vec<&str> = stdout.split_inclusive('\n').filter(|l| l.ends_with('\n')).map(str::trim_end).collect();
    if !complete.iter().any(|l| l.starts_with("models: ")) {
        return None;
    }
    let url = complete
        .iter()
        .find_map(|l| l.strip_prefix("sealgate listening on "))
        .unwrap_or_else(|| panic!("no 'sealgate listening on' line in the gateway's stdout:\n{stdout}"))
        .to_owned();
    let port = url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the gateway URL '{url}'"));
    let ca = complete
        .iter()
        .find_map(|l| l.strip_prefix("CA certificate: "))
        .unwrap_or_else(|| panic!("no 'CA certificate:' line in the gateway's stdout:\n{stdout}"));
    let (key_id, key_config_sha256) = complete
        .iter()
        .find_map(|l| {
            let (id, sha) = l.strip_prefix("key config ")?.split_once(" sha256: ")?;
            Some((id.parse().ok()?, sha.to_owned()))
        })
        .unwrap_or_else(|| panic!("no 'key config <id> sha256: <hex>' line in the gateway's stdout:\n{stdout}"));
    let metrics = complete
        .iter()
        .find_map(|l| l.strip_prefix("metrics listening on http://")?.strip_suffix("/metrics"))
        .map(str::to_owned);
    Some(Startup { url, port, ca: PathBuf::from(ca), key_id, key_config_sha256, metrics })
}

/// A running `sealgate serve` with its own temporary directory; killed on drop.
///
/// The temporary directory ([`Gateway::root`]) holds the data directory (`data/`) and the
/// captured output ([`STDOUT_FILE`], [`STDERR_FILE`]).
#[derive(Debug)]
pub struct Gateway {
    child: Mutex<ChildGuard>,
    startup: Startup,
    data_dir: PathBuf,
    token: Option<String>,
    // Declared last so it is removed after the process is gone.
    root: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway and waits (up to 30 s) until it listens. Panics with the captured
    /// output when it exits or does not become ready.
    ///
    /// The embedded default creates the tenant `dev` and `DATA_DIR/dev.token` itself; with
    /// [`GatewayOptions::models`] the harness first creates the tenant [`TEST_TENANT`]
    /// (every model, no rate limit) unless the data dir has tenants already. Either token is
    /// [`Gateway::token`], which the SDK clients and [`crate::inner_request`] send.
    pub fn start(options: GatewayOptions) -> Self {
        let Spawned { mut guard, data_dir, root } = options.spawn();
        let started = Instant::now();
        let startup = loop {
            let stdout = fs::read_to_string(root.path().join(STDOUT_FILE)).unwrap_or_default();
            if let Some(startup) = parse_startup(&stdout) {
                break startup;
            }
            if let Ok(Some(status)) = guard.0.try_wait() {
                panic!("the gateway exited ({status}) before it was ready:\n{}", read_logs(root.path()));
            }
            if started.elapsed() > START_TIMEOUT {
                guard.stop();
                panic!(
                    "the gateway did not print 'sealgate listening on' within {START_TIMEOUT:?}:\n{}",
                    read_logs(root.path())
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let token = ["dev.token", "test.token"]
            .iter()
            .find_map(|file| fs::read_to_string(data_dir.join(file)).ok())
            .map(|t| t.trim().to_owned());
        Self { child: Mutex::new(guard), startup, data_dir, token, root }
    }

    /// Runs `sealgate serve` with `options` where it must refuse to start: waits (up to 30 s)
    /// for it to exit and returns its status and output. Panics if it prints
    /// `sealgate listening on` (it started, at least partly), exits successfully, or keeps
    /// running.
    pub fn start_expecting_failure(options: GatewayOptions) -> FailedStart {
        let mut spawned = options.spawn();
        let started = Instant::now();
        let status = loop {
            if spawned.stdout().contains("sealgate listening on") {
                spawned.guard.stop();
                panic!("the gateway started although it should have refused:\n{}", spawned.logs());
            }
            if let Ok(Some(status)) = spawned.guard.0.try_wait() {
                break status;
            }
            if started.elapsed() > START_TIMEOUT {
                spawned.guard.stop();
                panic!("the gateway neither started nor exited within {START_TIMEOUT:?}:\n{}", spawned.logs());
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let failed = FailedStart {
            status,
            stdout: spawned.stdout(),
            stderr: fs::read_to_string(spawned.root.path().join(STDERR_FILE)).unwrap_or_default(),
        };
        assert!(!failed.status.success(), "the gateway exited successfully without serving:\n{}", failed.text());
        assert!(!failed.stdout.contains("listening"), "the gateway printed 'listening':\n{}", failed.text());
        failed
    }

    /// The base URL, such as `https://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.startup.url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.startup.port
    }

    /// `url` joined with `path` (which starts with `/`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.startup.url)
    }

    /// The development CA certificate file the gateway printed.
    pub fn ca_path(&self) -> &Path {
        &self.startup.ca
    }

    /// The development CA certificate (PEM).
    pub fn ca_pem(&self) -> Vec<u8> {
        fs::read(&self.startup.ca).unwrap_or_else(|e| panic!("reading {}: {e}", self.startup.ca.display()))
    }

    /// The key identifier of the (single) key configuration, as printed.
    pub fn key_id(&self) -> u8 {
        self.startup.key_id
    }

    /// The SHA-256 of the key configuration as printed (lowercase hex).
    pub fn key_config_sha256(&self) -> &str {
        &self.startup.key_config_sha256
    }

    /// The temporary directory: the data directory and the captured output.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The gateway's data directory: `data/` inside [`Gateway::root`], or the one given
    /// with [`GatewayOptions::data_dir`].
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The bearer token of the gateway's `dev` or [`TEST_TENANT`] tenant (see
    /// [`Gateway::start`]); `None` when it has neither.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// An SDK builder without a token that trusts the gateway's CA.
    pub fn anonymous_client_builder(&self) -> ClientBuilder {
        Client::builder(self.url()).ca_certificate_pem(&self.ca_pem())
    }

    /// An SDK builder that trusts the gateway's CA and sends [`Gateway::token`] (add an
    /// AEAD or other options, then build).
    pub fn client_builder(&self) -> ClientBuilder {
        let builder = self.anonymous_client_builder();
        match self.token() {
            Some(token) => builder.bearer_token(token),
            None => builder,
        }
    }

    /// An SDK client that trusts the gateway's CA.
    pub fn client(&self) -> Client {
        self.client_builder().build().expect("building the SDK client")
    }

    /// The metrics listener's address (`--metrics-listen`), such as `127.0.0.1:40124`.
    pub fn metrics_addr(&self) -> &str {
        self.startup.metrics.as_deref().expect("the gateway printed no 'metrics listening on' line")
    }

    /// `GET path` on the metrics listener (plain HTTP/1.0): the status and the body.
    pub fn metrics_get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics_addr(), path)
    }

    /// The Prometheus scrape of `/metrics`; panics unless it answers 200.
    pub fn scrape(&self) -> String {
        let (status, body) = self.metrics_get("/metrics");
        assert_eq!(status, 200, "GET /metrics:\n{body}");
        body
    }

    /// Everything the gateway wrote so far: stdout, then stderr (the log).
    pub fn logs(&self) -> String {
        read_logs(self.root.path())
    }

    /// The process id (for signals and `/proc`).
    pub fn pid(&self) -> u32 {
        self.lock().0.id()
    }

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().0.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit on its own (after a signal, say) and
    /// returns its exit status; `None` when it still runs then (it is left running, and
    /// killed on drop as always). Afterwards [`Gateway::logs`] holds all it ever wrote.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.lock().0.try_wait() {
                return Some(status);
            }
            if started.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (if it still runs) and waits for it; returns its exit status.
    /// Afterwards [`Gateway::logs`] holds all it ever wrote.
    pub fn stop(&self) -> Option<ExitStatus> {
        self.lock().stop()
    }

    /// The child, also after a test thread panicked while holding it.
    fn lock(&self) -> MutexGuard<'_, ChildGuard> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies a data directory, as a replica joining on one machine would start: the same
/// sealed keys, models, tenants and (for the local KMS) keyring. Run while the source
/// gateway serves, the copy also holds its audit log and TLS files.
pub fn copy_data_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("listing {}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_data_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copying to {}: {e}", target.display()));
        }
    }
}

/// The captured stdout and stderr in `root`, for messages.
fn read_logs(root: &Path) -> String {
    let stdout = fs::read_to_string(root.join(STDOUT_FILE)).unwrap_or_default();
    let stderr = fs::read_to_string(root.join(STDERR_FILE)).unwrap_or_default();
    format!("--- stdout ---\n{stdout}--- stderr ---\n{stderr}")
}

/// `GET path` over plain HTTP/1.0 to `addr` (`host:port`): the status and the body. Small on
/// purpose: the metrics listener and Prometheus's API speak plain HTTP on loopback, and the
/// SDK's client is TLS-only.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("setting a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap_or_else(|e| panic!("reading GET {path}: {e}"));
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("GET {path}: {head}"));
    (status, body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_lines_are_parsed_once_complete() {
        let lines = "sealgate listening on https://127.0.0.1:4321\nmetrics listening on http://127.0.0.1:9464/metrics\n\
                     CA certificate: /d/tls/ca.pem\nkey config 7 sha256: abcd\n";
        assert!(parse_startup(lines).is_none());
        assert!(parse_startup(&format!("{lines}models: a v1")).is_none(), "incomplete last line");
        let startup = parse_startup(&format!("{lines}models: a v1\n")).unwrap();
        assert_eq!(startup.url, "https://127.0.0.1:4321");
        assert_eq!(startup.port, 4321);
        assert_eq!(startup.ca, PathBuf::from("/d/tls/ca.pem"));
        assert_eq!((startup.key_id, startup.key_config_sha256.as_str()), (7, "abcd"));
        assert_eq!(startup.metrics.as_deref(), Some("127.0.0.1:9464"));
    }
}

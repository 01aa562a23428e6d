//! # sealgate-tests
//!
//! End-to-end test harness for Sealgate. [`Gateway::start`] runs the real `sealgate` binary
//! (`sealgate serve` on `127.0.0.1:0`, a fresh temporary data directory, the demo models),
//! captures its stdout and stderr to files, waits until it prints its address, and kills it
//! when dropped. Every test starts its own gateway, so tests run in parallel.
//!
//! The binary is not built by `cargo test -p sealgate-tests` (Cargo cannot depend on another
//! package's binary); build it first with `cargo build -p sealgate-server`, or point
//! `SEALGATE_BIN` at one. The ONNX Runtime library comes from `ORT_DYLIB_PATH`, else from
//! where `cargo xtask setup` installs it.
//!
//! Besides the process itself the harness offers the three ways the tests talk to it: the
//! Rust SDK ([`Gateway::client`]), raw HTTPS ([`Gateway::raw_http`],
//! [`Gateway::post_encapsulated`]) with `sealgate_protocol` for hand-made encapsulated
//! requests ([`encapsulate`]), and the independent Python tooling ([`onnxruntime_reference`]).
//!
//! For the key and artifact commands there is [`sealgate`] (run the binary as a CLI and
//! collect its exit status and output), [`Gateway::start_expecting_failure`] (a `serve` that
//! must refuse to start), [`SealedLayout`] (where the parts of a `*.sealed` file are, for
//! tampering), and throwaway KMS backends: [`moto::Moto`] (AWS KMS API) and
//! [`softhsm::SoftHsm`] (a PKCS#11 token).

pub mod moto;
pub mod softhsm;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::SupportedProtocolVersion;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sealgate_client::inference::{DataType, ErrorBody, InferenceRequest, InferenceResponse, InputTensor, TensorData};
use sealgate_client::{Client, ClientBuilder};
use sealgate_protocol::{Aead, ClientRequest, ClientResponse, Kdf, KeyConfig, SymmetricSuite, bhttp, media_type};

/// The demo models served by every test gateway.
pub const DEMO_MODELS: [&str; 2] = ["breast-cancer", "credit-risk"];

/// The class labels of the rows in each `models/demo/*.example.json`: one row of each class,
/// class 0 first (documented in `models/demo/README.md`).
pub const EXAMPLE_LABELS: [i64; 2] = [0, 1];

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

/// Environment variables of the gateway that the harness clears so the caller's shell
/// cannot change what a test runs; set them again with [`GatewayOptions::env`] (or
/// [`SealgateCommand::env`]).
const CLEARED_ENV: &[&str] = &[
    "SEALGATE_LOG",
    "SEALGATE_DATA_DIR",
    "SEALGATE_LISTEN",
    "SEALGATE_MODELS",
    "SEALGATE_CORS_ORIGINS",
    "SEALGATE_KMS_PASSPHRASE",
    "SEALGATE_PKCS11_TOKEN",
    "SEALGATE_PKCS11_LIBRARY",
    "SEALGATE_PKCS11_PIN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
];

/// The checkout root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives inside the checkout").to_path_buf()
}

/// `models/demo` of the checkout.
pub fn demo_models_dir() -> PathBuf {
    repo_root().join("models/demo")
}

/// The ONNX file of a demo model.
pub fn demo_model_path(model: &str) -> PathBuf {
    demo_models_dir().join(format!("{model}.onnx"))
}

/// A temporary folder holding `tests/models/slow.onnx` (made by
/// `models/make/make_test_models.py`): a model whose run time the request sets, served as a
/// plaintext `.onnx` (start the gateway with `--danger-allow-plaintext-models`).
pub fn slow_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::copy(repo_root().join("tests/models/slow.onnx"), dir.path().join("slow.onnx")).expect("copying slow.onnx");
    dir
}

/// A request to the slow model (inputs `x` FP32 [1, 256] and `repeats` INT64 [2]) that costs
/// about 4 x `repeats` MFLOP: on one core here about 70 ms per 1000 repeats.
pub fn slow_request(repeats: i64) -> InferenceRequest {
    InferenceRequest {
        id: None,
        inputs: vec![
            InputTensor {
                name: "x".into(),
                shape: vec![1, 256],
                datatype: DataType::Fp32,
                data: TensorData::Float(vec![0.01; 256]),
            },
            InputTensor {
                name: "repeats".into(),
                shape: vec![2],
                datatype: DataType::Int64,
                data: TensorData::Int(vec![repeats, 1]),
            },
        ],
        outputs: None,
    }
}

/// The example request body of a demo model (`models/demo/{model}.example.json`).
pub fn example_path(model: &str) -> PathBuf {
    demo_models_dir().join(format!("{model}.example.json"))
}

/// The example request of a demo model, parsed.
pub fn example_request(model: &str) -> InferenceRequest {
    let path = example_path(model);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not an inference request: {e}", path.display()))
}

/// The `sealgate` binary: `$SEALGATE_BIN`, else `sealgate` in the target directory this
/// test executable was built into (tests run from `target/debug/deps/`).
pub fn gateway_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SEALGATE_BIN").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "SEALGATE_BIN={} is not a file", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("the path of the test executable");
    let mut dir = exe.parent().expect("the test executable has a parent directory");
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir = dir.parent().expect("deps/ has a parent directory");
    }
    let binary = dir.join("sealgate");
    assert!(
        binary.is_file(),
        "the gateway binary {} does not exist; build it first: cargo build -p sealgate-server \
         (or set SEALGATE_BIN to a sealgate binary)",
        binary.display()
    );
    warn_if_stale(&binary);
    binary
}

/// Prints a warning when the gateway's sources are newer than the binary: `cargo test -p
/// sealgate-tests` does not rebuild it, so the tests would check old code.
fn warn_if_stale(binary: &Path) {
    let Ok(built) = fs::metadata(binary).and_then(|m| m.modified()) else { return };
    let root = repo_root();
    for crate_dir in ["server", "protocol", "models"] {
        if newest_mtime(&root.join(crate_dir).join("src")).is_some_and(|t| t > built) {
            eprintln!(
                "warning: {} is older than {crate_dir}/src; run `cargo build -p sealgate-server` to test the current code",
                binary.display()
            );
        }
    }
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(time);
    }
    newest
}

/// The ONNX Runtime shared library: `$ORT_DYLIB_PATH`, else
/// where `cargo xtask setup` installs it in the checkout.
pub fn ort_library() -> PathBuf {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| sealgate_models::runtime::installed_library(&repo_root()));
    assert!(
        path.is_file(),
        "the ONNX Runtime library {} does not exist; run `cargo xtask setup` or set ORT_DYLIB_PATH",
        path.display()
    );
    path
}

/// How to start a [`Gateway`]: extra command-line arguments and environment variables.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    args: Vec<String>,
    env: Vec<(String, String)>,
    models: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    no_test_tenant: bool,
}

impl GatewayOptions {
    /// The defaults: the demo models, log level `info`, the gateway's default limits.
    pub fn new() -> Self {
        Self::default()
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
    fn command(&self, binary: &Path, root: &Path, data_dir: &Path, stdout: File, stderr: File) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.args)
            // Run from the temporary directory so no relative default finds files elsewhere.
            .current_dir(root)
            .env("ORT_DYLIB_PATH", ort_library())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Without --models the gateway runs its embedded default: it seals models/demo with
        // its local KMS into the data dir on first start and serves the sealed artifacts.
        if let Some(models) = &self.models {
            command.arg("--models").arg(models);
        }
        for key in CLEARED_ENV {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
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
    Some(Startup { url, port, ca: PathBuf::from(ca), key_id, key_config_sha256 })
}

/// Kills the child process when dropped, also when `Gateway::start` panics half-way.
#[derive(Debug)]
struct ChildGuard(Child);

impl ChildGuard {
    fn stop(&mut self) -> Option<ExitStatus> {
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
    /// [`Gateway::token`], which the SDK clients and [`inner_request`] send.
    pub fn start(options: GatewayOptions) -> Self {
        let binary = gateway_binary();
        let root = tempfile::Builder::new().prefix("sealgate-test-").tempdir().expect("creating a temporary directory");
        let data_dir = options.data_dir.clone().unwrap_or_else(|| root.path().join("data"));
        if options.models.is_some() && !options.no_test_tenant && !data_dir.join("tenants.json").exists() {
            let added =
                sealgate_command(["tenants", "add", TEST_TENANT, "--models", "*", "--data-dir"]).arg(&data_dir).run();
            added.assert_success();
            fs::write(data_dir.join("test.token"), added.stdout.trim()).expect("writing the test token");
        }
        let stdout_path = root.path().join(STDOUT_FILE);
        let stderr_path = root.path().join(STDERR_FILE);
        let stdout = File::create(&stdout_path).expect("creating the stdout file");
        let stderr = File::create(&stderr_path).expect("creating the stderr file");
        let mut command = options.command(&binary, root.path(), &data_dir, stdout, stderr);
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut guard = ChildGuard(child);

        let started = Instant::now();
        let startup = loop {
            let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
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
        let binary = gateway_binary();
        let root = tempfile::Builder::new().prefix("sealgate-test-").tempdir().expect("creating a temporary directory");
        let data_dir = options.data_dir.clone().unwrap_or_else(|| root.path().join("data"));
        let stdout_path = root.path().join(STDOUT_FILE);
        let stderr_path = root.path().join(STDERR_FILE);
        let stdout = File::create(&stdout_path).expect("creating the stdout file");
        let stderr = File::create(&stderr_path).expect("creating the stderr file");
        let mut command = options.command(&binary, root.path(), &data_dir, stdout, stderr);
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut guard = ChildGuard(child);
        let started = Instant::now();
        let status = loop {
            if fs::read_to_string(&stdout_path).unwrap_or_default().contains("sealgate listening on") {
                guard.stop();
                panic!("the gateway started although it should have refused:\n{}", read_logs(root.path()));
            }
            if let Ok(Some(status)) = guard.0.try_wait() {
                break status;
            }
            if started.elapsed() > START_TIMEOUT {
                guard.stop();
                panic!("the gateway neither started nor exited within {START_TIMEOUT:?}:\n{}", read_logs(root.path()));
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let failed = FailedStart {
            status,
            stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
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

    /// A plain HTTPS client that trusts the gateway's CA and speaks only TLS 1.3.
    pub fn raw_http(&self) -> reqwest::Client {
        self.raw_http_with_versions(&[&rustls::version::TLS13])
    }

    /// A plain HTTPS client that trusts the gateway's CA and offers only `versions`.
    pub fn raw_http_with_versions(&self, versions: &[&'static SupportedProtocolVersion]) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem()) {
            roots.add(cert.expect("the CA file holds PEM certificates")).expect("a valid CA certificate");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("the provider supports these TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the HTTPS client")
    }

    /// Everything the gateway wrote so far: stdout, then stderr (the log).
    pub fn logs(&self) -> String {
        read_logs(self.root.path())
    }

    /// The process id (for signals and `/proc`).
    pub fn pid(&self) -> u32 {
        self.lock().0.id()
    }

    /// Sends an encapsulated Binary HTTP request to `config` and opens the answer: the
    /// whole exchange a client makes, with nothing added (the caller sets every inner
    /// header, `authorization` included). Panics unless the outer answer is a 200
    /// `message/ohttp-res` that decrypts.
    pub async fn exchange(&self, config: &KeyConfig, request: &bhttp::Request) -> bhttp::Response {
        let (enc, pending) = encapsulate(config, Aead::Aes128Gcm, &request.encode());
        let outer = self.post_encapsulated(Some(media_type::OHTTP_REQUEST), enc).await;
        assert_eq!(outer.status, 200, "outer status: {}", outer.text());
        assert_eq!(outer.content_type, media_type::OHTTP_RESPONSE);
        let plaintext = pending.decapsulate(&outer.body).expect("the answer decrypts");
        bhttp::Response::decode(&plaintext).expect("the answer is Binary HTTP")
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

    fn lock(&self) -> MutexGuard<'_, ChildGuard> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET` a path of the gateway with [`Gateway::raw_http`].
    pub async fn get(&self, path: &str) -> RawResponse {
        let response = self
            .raw_http()
            .get(self.endpoint(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {}", error_chain(&e)));
        RawResponse::read(response).await
    }

    /// Fetches and decodes the key configuration list; checks its media type. Returns the
    /// first configuration (the gateway has one key).
    pub async fn fetch_key_config(&self) -> KeyConfig {
        let response = self.get(sealgate_protocol::GATEWAY_PATH).await;
        assert_eq!(response.status, 200, "GET {}: {}", sealgate_protocol::GATEWAY_PATH, response.text());
        assert_eq!(response.content_type, media_type::OHTTP_KEYS);
        let configs = KeyConfig::decode_list(&response.body).expect("a valid application/ohttp-keys body");
        configs.into_iter().next().expect("decode_list never returns an empty list")
    }

    /// `POST`s `body` to the gateway resource with the given content type (none when `None`).
    pub async fn post_encapsulated(&self, content_type: Option<&str>, body: Vec<u8>) -> RawResponse {
        let mut request = self.raw_http().post(self.endpoint(sealgate_protocol::GATEWAY_PATH)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("POST to the gateway: {}", error_chain(&e)));
        RawResponse::read(response).await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_logs(root: &Path) -> String {
    let stdout = fs::read_to_string(root.join(STDOUT_FILE)).unwrap_or_default();
    let stderr = fs::read_to_string(root.join(STDERR_FILE)).unwrap_or_default();
    format!("--- stdout ---\n{stdout}--- stderr ---\n{stderr}")
}

/// An error with its causes (reqwest's `Display` leaves out where TLS errors live).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An outer HTTP response, fully read.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The media type of `content-type`, lowercase, without parameters; empty when absent.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Reads a reqwest response to the end.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let body = response.bytes().await.unwrap_or_else(|e| panic!("reading a response body: {}", error_chain(&e)));
        Self { status, content_type, body: body.to_vec() }
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an RFC 9457 problem: `status`, `application/problem+json`, a JSON object
    /// whose `type` is `problem_type` (`about:blank` for plain HTTP errors), whose `status`
    /// repeats the status and that has a title. Returns the parsed body.
    pub fn assert_problem(&self, status: u16, problem_type: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "expected status {status}, got {}: {}", self.status, self.text());
        assert_eq!(self.content_type, media_type::PROBLEM_JSON, "content type of a {status} answer");
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the problem body is not JSON ({e}): {}", self.text()));
        assert_eq!(json["type"], problem_type, "problem type in {json}");
        assert_eq!(json["status"], status, "problem status in {json}");
        assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()), "problem title in {json}");
        json
    }
}

/// Encapsulates `plaintext` (normally a Binary HTTP request) to `config` with HKDF-SHA256
/// and `aead`, using the system RNG.
pub fn encapsulate(config: &KeyConfig, aead: Aead, plaintext: &[u8]) -> (Vec<u8>, ClientResponse) {
    ClientRequest::new(config, SymmetricSuite::new(Kdf::HkdfSha256, aead))
        .expect("the gateway's key configuration offers this AEAD")
        .encapsulate(plaintext, &mut rand_core::UnwrapErr(getrandom::SysRng))
        .expect("encapsulating a request")
}

/// An inner request as the SDK sends it: `method path` to the gateway's authority, with
/// the gateway's [`Gateway::token`] and a JSON content type when there is a body.
pub fn inner_request(gateway: &Gateway, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
    let authority = gateway.url().trim_start_matches("https://");
    let mut request = bhttp::Request::new(method, "https", authority, path);
    request.headers.push(bhttp::Field::new("accept", "application/json"));
    if let Some(token) = gateway.token() {
        request.headers.push(bhttp::Field::new("authorization", format!("Bearer {token}")));
    }
    if !body.is_empty() {
        request.headers.push(bhttp::Field::new("content-type", "application/json"));
    }
    request.body = body;
    request
}

/// The status and KServe `{"error": ...}` message of an inner error response.
pub fn inner_error(response: &bhttp::Response) -> (u16, String) {
    let body: ErrorBody = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "inner status {} without a KServe error body ({e}): {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    });
    (response.status, body.error)
}

/// `n` random bytes from the system RNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the system RNG");
    bytes
}

/// The `label` output as integers (checks datatype INT64 and one label per row).
pub fn labels(response: &InferenceResponse) -> Vec<i64> {
    let label = response.output("label").expect("a 'label' output");
    assert_eq!(label.datatype, DataType::Int64, "label datatype");
    let values = label.data.as_i64().expect("integer labels").to_vec();
    assert_eq!(label.shape, vec![values.len() as u64], "label shape");
    values
}

/// The `probabilities` output as rows of two (checks datatype FP32 and shape `[N, 2]`).
pub fn probabilities(response: &InferenceResponse) -> Vec<Vec<f64>> {
    let probabilities = response.output("probabilities").expect("a 'probabilities' output");
    assert_eq!(probabilities.datatype, DataType::Fp32, "probabilities datatype");
    let values = probabilities.as_f64().expect("numeric probabilities");
    assert_eq!(probabilities.shape, vec![(values.len() / 2) as u64, 2], "probabilities shape");
    values.chunks(2).map(<[f64]>::to_vec).collect()
}

/// Asserts that the gateway still runs and still answers: `/readyz` is 200 and the
/// breast-cancer example classifies as documented, through a fresh SDK client.
pub async fn assert_still_serving(gateway: &Gateway) {
    assert!(gateway.is_running(), "the gateway exited:\n{}", gateway.logs());
    let ready = gateway.get("/readyz").await;
    assert_eq!(ready.status, 200, "/readyz: {}", ready.text());
    let model = DEMO_MODELS[0];
    let response = gateway
        .client()
        .infer(model, &example_request(model))
        .await
        .unwrap_or_else(|e| panic!("a good inference failed after bad input: {e}\n{}", gateway.logs()));
    assert_eq!(labels(&response), EXAMPLE_LABELS, "labels of the {model} example");
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

/// Python onnxruntime's answer for a demo model's example request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Predicted class per row.
    pub labels: Vec<i64>,
    /// Class probabilities per row.
    pub probabilities: Vec<Vec<f64>>,
}

const REFERENCE_SCRIPT: &str = r#"
import json, sys
import numpy as np
import onnxruntime as ort
t = json.load(open(sys.argv[2]))["inputs"][0]
x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
label, proba = s.run(["label", "probabilities"], {t["name"]: x})
print(json.dumps({"labels": [int(v) for v in label], "probabilities": proba.astype(float).tolist()}))
"#;

/// Runs the example request of `model` through Python onnxruntime (`python3`, with the
/// packages of `tests/interop/requirements.txt`).
pub async fn onnxruntime_reference(model: &str) -> Reference {
    let output = run_command(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(REFERENCE_SCRIPT)
            .arg(demo_model_path(model))
            .arg(example_path(model)),
        Duration::from_secs(120),
        "install Python 3 and `pip install -r tests/interop/requirements.txt` (cargo xtask setup does both)",
    )
    .await
    .expect("running python3");
    assert!(output.status.success(), "python3 onnxruntime reference failed:\n{}", output_text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the reference output is not JSON ({e}):\n{}", output_text(&output)));
    let labels = json["labels"].as_array().expect("labels").iter().map(|v| v.as_i64().expect("int label")).collect();
    let probabilities = json["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(|p| p.as_f64().expect("float")).collect())
        .collect();
    Reference { labels, probabilities }
}

/// The gateway's log with what the gateway itself measures blanked out: the timestamp
/// that starts each line and `elapsed_ms` values. Their digits are random, so a search for a
/// short number such as a canary feature value would otherwise fail once in a few thousand
/// runs; neither can carry request data.
pub fn without_timing(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    for line in log.lines() {
        let line = match line.split_once(' ') {
            Some((first, rest)) if first.starts_with(|c: char| c.is_ascii_digit()) && first.ends_with('Z') => rest,
            _ => line,
        };
        let mut rest = line;
        while let Some(at) = rest.find("elapsed_ms=") {
            let (before, after) = rest.split_at(at + "elapsed_ms=".len());
            out.push_str(before);
            out.push('#');
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// Lists every file under `root`, recursively (for messages).
pub fn list_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() { pending.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    files
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// How long a `sealgate` CLI command may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// A `sealgate` command line to run as a CLI (not `serve`): see [`sealgate`] and
/// [`sealgate_command`].
#[derive(Debug, Clone, Default)]
pub struct SealgateCommand {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl SealgateCommand {
    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Self::arg)
    }

    /// Sets an environment variable of the process (after the harness cleared the
    /// `SEALGATE_*` and `AWS_*` variables of the caller's shell).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        for (key, value) in vars {
            self = self.env(key, value);
        }
        self
    }

    /// Feeds `bytes` to the process's stdin (closed otherwise).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs the command to completion (panics after 60 s) from a fresh temporary working
    /// directory, so no relative default (`.sealgate`) finds or leaves files elsewhere.
    pub fn run(self) -> CliOutput {
        let binary = gateway_binary();
        let cwd = tempfile::Builder::new().prefix("sealgate-cli-").tempdir().expect("creating a temporary directory");
        let mut stdout = tempfile::tempfile().expect("creating a temporary file");
        let mut stderr = tempfile::tempfile().expect("creating a temporary file");
        let mut command = Command::new(&binary);
        command
            .args(&self.args)
            .current_dir(cwd.path())
            .env("NO_COLOR", "1")
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(stdout.try_clone().expect("cloning a file handle"))
            .stderr(stderr.try_clone().expect("cloning a file handle"));
        for key in CLEARED_ENV {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut guard = ChildGuard(child);
        if let Some(bytes) = self.stdin.clone() {
            let mut pipe = guard.0.stdin.take().expect("a piped stdin");
            // From a thread, so a command that does not read its input cannot block the test
            // on a full pipe; if it exits without reading, the write fails, which is its answer.
            std::thread::spawn(move || pipe.write_all(&bytes));
        }
        let started = Instant::now();
        let status = loop {
            if let Ok(Some(status)) = guard.0.try_wait() {
                break status;
            }
            if started.elapsed() > CLI_TIMEOUT {
                guard.stop();
                panic!("sealgate {:?} did not finish within {CLI_TIMEOUT:?}", self.args);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let read = |file: &mut File| {
            let mut text = String::new();
            file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut text)).expect("reading the output");
            text
        };
        let args = self.args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
        CliOutput { args, status, stdout: read(&mut stdout), stderr: read(&mut stderr) }
    }
}

/// A `sealgate` command line with these arguments; add environment or stdin, then
/// [`SealgateCommand::run`].
pub fn sealgate_command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> SealgateCommand {
    args.into_iter().fold(SealgateCommand::default(), SealgateCommand::arg)
}

/// Runs `sealgate ARGS...` as a CLI (stdin closed, the caller's `SEALGATE_*` and `AWS_*`
/// variables cleared) and returns its status and output. Pass `--data-dir` yourself.
pub fn sealgate<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> CliOutput {
    sealgate_command(args).run()
}

/// What a finished `sealgate` CLI command returned.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The arguments, for messages.
    pub args: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr (the log and `error: ...`).
    pub stderr: String,
}

impl CliOutput {
    /// True when it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Asserts exit status 0; returns `self` for chaining.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "sealgate {} failed:\n{}", self.args, self.text());
        self
    }

    /// Asserts a non-zero exit status with `needle` in stderr and nothing on stdout;
    /// returns `self` for chaining.
    #[track_caller]
    pub fn assert_failure(&self, needle: &str) -> &Self {
        assert!(!self.success(), "sealgate {} should have failed:\n{}", self.args, self.text());
        assert!(
            self.stderr.contains(needle),
            "sealgate {}: expected '{needle}' in stderr:\n{}",
            self.args,
            self.text()
        );
        assert!(self.stdout.trim().is_empty(), "sealgate {} failed but printed on stdout:\n{}", self.args, self.text());
        self
    }

    /// Asserts that stdout contains `needle`; returns `self` for chaining.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "sealgate {}: expected '{needle}' on stdout:\n{}",
            self.args,
            self.text()
        );
        self
    }

    /// Status and output, for messages.
    pub fn text(&self) -> String {
        format!("status: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// `sealgate audit verify --data-dir DATA_DIR` must pass; returns the number of entries.
#[track_caller]
pub fn assert_audit_intact(data_dir: &Path) -> u64 {
    let output = sealgate([OsStr::new("audit"), OsStr::new("verify"), OsStr::new("--data-dir"), data_dir.as_os_str()]);
    output.assert_success().assert_stdout_contains("ok: audit log intact");
    output
        .stdout
        .split("intact, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in '{}'", output.stdout.trim()))
}

/// The entries of `DATA_DIR/audit.log`, parsed (an empty list when there is none).
pub fn audit_entries(data_dir: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(data_dir.join("audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}")))
        .collect()
}

/// Where the parts of a sealed artifact (format v1, docs/ARTIFACT-FORMAT.md) lie, found
/// with an independent parser so tests can flip bits in a chosen part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedLayout {
    /// Plaintext bytes per frame.
    pub frame_size: usize,
    /// The encryption context, in file order.
    pub context: Vec<(String, String)>,
    /// Where the context value of `model` starts.
    pub model_name_at: usize,
    /// Offset of the key section (the wrapped keys' count byte).
    pub key_section: usize,
    /// Each wrapped key: provider, key id, and the byte range of its ciphertext.
    pub wrapped_keys: Vec<(String, String, std::ops::Range<usize>)>,
    /// Offset of the 32-byte header MAC.
    pub header_mac: usize,
    /// Offset of the body (the header's length).
    pub body: usize,
    /// Byte range of each frame (ciphertext and tag); the last one is the final frame.
    pub frames: Vec<std::ops::Range<usize>>,
}

/// Bytes of an AES-GCM tag after each frame.
const FRAME_TAG_LEN: usize = 16;

impl SealedLayout {
    /// Parses `bytes`; panics (failing the test) when they are not a well-formed artifact.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut r = Reader { bytes, pos: 0 };
        assert_eq!(r.take(8), b"SGSEALED", "magic");
        assert_eq!(r.take(1), [1], "version");
        assert_eq!(r.take(2), [0, 1], "suite");
        r.take(32); // message id
        let frame_size = r.u32() as usize;
        let entries = r.u16();
        let mut context = Vec::new();
        let mut model_name_at = None;
        for _ in 0..entries {
            let key = r.text16();
            if key == "model" {
                model_name_at = Some(r.pos + 2);
            }
            context.push((key, r.text16()));
        }
        r.take(32); // key commitment
        let key_section = r.pos;
        let count = r.take(1)[0];
        let mut wrapped_keys = Vec::new();
        for _ in 0..count {
            let len = usize::from(r.take(1)[0]);
            let provider = String::from_utf8(r.take(len).to_vec()).expect("UTF-8 provider");
            let key_id = r.text16();
            let len = usize::from(r.u16());
            let start = r.pos;
            r.take(len);
            wrapped_keys.push((provider, key_id, start..start + len));
        }
        let header_mac = r.pos;
        r.take(32);
        let body = r.pos;
        let full = frame_size + FRAME_TAG_LEN;
        let mut frames = Vec::new();
        let mut at = body;
        while bytes.len() - at >= full {
            frames.push(at..at + full);
            at += full;
        }
        // The final frame holds 0..frame_size bytes (a plaintext that is a multiple of the
        // frame size ends with an empty final frame).
        assert!(bytes.len() - at >= FRAME_TAG_LEN, "the body does not end with a final frame");
        frames.push(at..bytes.len());
        let model_name_at = model_name_at.expect("a 'model' entry in the encryption context");
        Self { frame_size, context, model_name_at, key_section, wrapped_keys, header_mac, body, frames }
    }

    /// The context value of `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A cursor over artifact bytes for [`SealedLayout::parse`] (big-endian integers).
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let slice = self.bytes.get(self.pos..self.pos + n);
        let slice = slice.unwrap_or_else(|| panic!("the artifact ends at {} (wanted {n} more bytes)", self.pos));
        self.pos += n;
        slice
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().expect("two bytes"))
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().expect("four bytes"))
    }

    fn text16(&mut self) -> String {
        let len = usize::from(self.u16());
        String::from_utf8(self.take(len).to_vec()).expect("a UTF-8 text field")
    }
}

/// Windows of [`find_plaintext`]: a copy of at least twice this many bytes of a model
/// always contains one whole window.
pub const PLAINTEXT_WINDOW: usize = 64;

/// Searches every file under `root` for any [`PLAINTEXT_WINDOW`]-byte window of
/// `plaintext` (windows of one repeated byte are skipped: they say nothing about the
/// model). Returns the files and offsets where one was found.
pub fn find_plaintext(root: &Path, plaintext: &[u8]) -> Vec<(PathBuf, usize)> {
    let windows: HashMap<&[u8], usize> = plaintext
        .windows(PLAINTEXT_WINDOW)
        .enumerate()
        .filter(|(_, w)| w.iter().any(|b| *b != w[0]))
        .map(|(i, w)| (w, i))
        .collect();
    let mut found = Vec::new();
    if !root.exists() {
        return found;
    }
    for path in list_files(root) {
        let Ok(bytes) = fs::read(&path) else { continue };
        if let Some(at) = bytes.windows(PLAINTEXT_WINDOW).position(|w| windows.contains_key(w)) {
            found.push((path, at));
        }
    }
    found
}

/// Asserts that no file under `root` holds a piece of `plaintext` (see [`find_plaintext`]).
#[track_caller]
pub fn assert_no_plaintext(root: &Path, plaintext: &[u8]) {
    let found = find_plaintext(root, plaintext);
    assert!(found.is_empty(), "plaintext model bytes on disk under {}: {found:?}", root.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_lines_are_parsed_once_complete() {
        let lines = "sealgate listening on https://127.0.0.1:4321\nCA certificate: /d/tls/ca.pem\n\
                     key config 7 sha256: abcd\n";
        assert!(parse_startup(lines).is_none());
        assert!(parse_startup(&format!("{lines}models: a v1")).is_none(), "incomplete last line");
        let startup = parse_startup(&format!("{lines}models: a v1\n")).unwrap();
        assert_eq!(startup.url, "https://127.0.0.1:4321");
        assert_eq!(startup.port, 4321);
        assert_eq!(startup.ca, PathBuf::from("/d/tls/ca.pem"));
        assert_eq!((startup.key_id, startup.key_config_sha256.as_str()), (7, "abcd"));
    }

    #[test]
    fn contains_finds_substrings() {
        assert!(contains(b"abc CANARY def", b"CANARY"));
        assert!(!contains(b"abc CANAR def", b"CANARY"));
    }

    #[test]
    fn timing_is_blanked_but_nothing_else() {
        let log = "2026-11-28T07:20:20.987654Z  INFO sealgate: served elapsed_ms=12.987654 model=m\nplain 987654\n";
        assert_eq!(without_timing(log), " INFO sealgate: served elapsed_ms=# model=m\nplain 987654\n");
    }
}

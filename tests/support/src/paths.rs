//! Where things are on disk: the checkout, the ONNX Runtime library, and the `sealgate`
//! binary for callers outside its own package.
//!
//! Tests in `sealgate-server` (the end-to-end suite) take the binary from
//! `env!("CARGO_BIN_EXE_sealgate")`, which cargo builds before it builds them. Tests of
//! other packages cannot: Cargo gives a package no dependency on another package's binary.
//! For them [`gateway_binary`] looks in the target directory and warns when the sources are
//! newer than what it found.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The checkout root (this crate is `tests/support/` in it).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    root.expect("the support crate lives two levels inside the checkout").to_path_buf()
}

/// The `sealgate` binary for tests outside `sealgate-server`: `$SEALGATE_BIN`, else
/// `sealgate` in the target directory this test executable was built into (tests run from
/// `target/debug/deps/`). Build it first (`cargo build -p sealgate-server`); a binary older
/// than the gateway's sources gets a warning. Tests in `sealgate-server` use
/// `env!("CARGO_BIN_EXE_sealgate")` instead.
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

/// Prints a warning when the gateway's sources are newer than the binary: a test of another
/// package does not make cargo rebuild it, so the test would check old code.
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

/// The newest modification time of any file below `dir`.
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

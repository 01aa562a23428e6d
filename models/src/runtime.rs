//! Loading the ONNX Runtime shared library once per process.
//!
//! `ort` is built with `load-dynamic`: nothing is linked at build time and the library is
//! opened at start-up from an explicit path. A missing or wrong library is an error that
//! says how to get the right one, never a panic.
//!
//! ONNX Runtime's own log goes through [`log_without_text`]: the runtime's messages can quote
//! input values (an out-of-range index, say), so the gateway's log records that the runtime
//! logged something, at what level and where in its code, never the text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use ort::environment::Environment;

use crate::error::{ModelError, Result};

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// The ONNX Runtime version the gateway is built for (the `ort` crate's `api-31` feature),
/// from `models/onnxruntime-version`: the one place it is written (`cargo xtask setup`
/// reads the same file to fetch the library).
pub const ORT_VERSION: &str = include_str!("../onnxruntime-version");

/// Where `cargo xtask setup` installs the library, relative to the checkout.
pub const INSTALL_DIR: &str = ".tools/onnxruntime";

/// The library's file name: `libonnxruntime.so.VERSION`.
pub fn library_file() -> String {
    format!("libonnxruntime.so.{ORT_VERSION}")
}

/// The library as `cargo xtask setup` installs it under the checkout `root`.
pub fn installed_library(root: &Path) -> PathBuf {
    root.join(INSTALL_DIR).join(library_file())
}

/// Finds the library: `explicit` (a flag or `ORT_DYLIB_PATH`), else where `cargo xtask
/// setup` puts it relative to the working directory, else relative to the checkout of the
/// running binary (`target/{debug,release}/NAME` is two levels below it).
pub fn find_library(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path;
    }
    let relative = installed_library(Path::new("."));
    if relative.is_file() {
        return relative;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(installed_library))
        .filter(|p| p.is_file())
        .unwrap_or(relative)
}

/// The ONNX Runtime environment of this process, loading the library at `library` the
/// first time. Later calls return the same environment whatever path they pass.
pub fn environment(library: &Path) -> Result<&'static Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    if !library.is_file() {
        return Err(ModelError::RuntimeLibrary { path: library.display().to_string(), reason: "no such file".into() });
    }
    let builder = ort::init_from(library)
        .map_err(|e| ModelError::RuntimeLibrary { path: library.display().to_string(), reason: e.to_string() })?;
    let env = builder.with_name("sealgate").with_telemetry(false).with_logger(Arc::new(log_without_text)).build()?;
    // A concurrent first call may have won the race; either environment is equivalent and
    // ONNX Runtime allows only one, so keep whichever is stored.
    let _ = ENVIRONMENT.set(env);
    ENVIRONMENT.get().ok_or_else(|| ModelError::Runtime("environment initialisation raced".into()))
}

/// The logger given to ONNX Runtime: level, category and code location, without the message
/// (which can quote request values).
fn log_without_text(level: ort::logging::LogLevel, category: &str, _id: &str, code_location: &str, _message: &str) {
    use ort::logging::LogLevel;
    const TEXT: &str = "ONNX Runtime logged a message (its text is not recorded: it can quote request values)";
    match level {
        LogLevel::Verbose | LogLevel::Info => tracing::debug!(category, code_location, "{TEXT}"),
        LogLevel::Warning => tracing::warn!(category, code_location, "{TEXT}"),
        LogLevel::Error | LogLevel::Fatal => tracing::error!(category, code_location, "{TEXT}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_file_holds_just_a_version() {
        assert!(!ORT_VERSION.is_empty() && ORT_VERSION.split('.').all(|p| p.parse::<u32>().is_ok()), "{ORT_VERSION:?}");
        assert_eq!(installed_library(Path::new("/r")), Path::new("/r/.tools/onnxruntime/libonnxruntime.so.1.31.1"));
    }
}

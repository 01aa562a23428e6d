//! Loading the ONNX Runtime shared library once per process.
//!
//! `ort` is built with `load-dynamic`: nothing is linked at build time and the library is
//! opened at start-up from an explicit path. A missing or wrong library is an error that
//! says how to get the right one, never a panic.
//!
//! ONNX Runtime's own log goes through [`log_without_text`]: the runtime's messages can quote
//! input values (an out-of-range index, say), so the gateway's log records that the runtime
//! logged something, at what level and where in its code, never the text.

use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use ort::environment::Environment;

use crate::error::{ModelError, Result};

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

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

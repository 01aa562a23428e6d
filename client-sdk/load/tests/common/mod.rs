//! What the end-to-end tests of `sealgate-load` share: running the tool from a fresh
//! directory with the caller's `SEALGATE_*` variables cleared, the arguments that point it
//! at a test gateway, and the text of a finished run for assertion messages.

#![allow(dead_code, reason = "each test file uses its own subset")]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sealgate_test_support::Gateway;

/// A `sealgate-load ARGS` command run from `cwd`, with the caller's `SEALGATE_*` variables
/// and `RUST_BACKTRACE` cleared and no stdin.
pub fn load_command(args: &[&str], cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sealgate-load"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("SEALGATE_URL")
        .env_remove("SEALGATE_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    command
}

/// Runs `sealgate-load ARGS` from a fresh temporary directory (so the default `--ca` path
/// finds nothing).
pub fn load(args: &[&str]) -> Output {
    let cwd = tempfile::tempdir().expect("a temporary directory");
    load_command(args, cwd.path()).output().expect("running sealgate-load")
}

/// A finished run's status, stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The standard arguments that point the tool at `gateway`, with its tenant's token file:
/// the embedded default's `dev.token`, or the harness's `test.token` for a gateway started
/// with its own models.
pub fn at(gateway: &Gateway) -> Vec<String> {
    let data = gateway.data_dir();
    let file = ["dev.token", "test.token"].iter().map(|f| data.join(f)).find(|p| p.is_file());
    let token = file.unwrap_or_else(|| data.join("dev.token")).display().to_string();
    vec![
        "--url".into(),
        gateway.url().into(),
        "--ca".into(),
        gateway.ca_path().display().to_string(),
        "--token-file".into(),
        token,
    ]
}

/// `base` followed by `extra`, as the tool's arguments.
pub fn args<'a>(base: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().map(String::as_str).chain(extra.iter().copied()).collect()
}

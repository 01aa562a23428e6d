//! Small helpers around `std::process::Command`.
//!
//! Every task here is "run a program, and if it fails say which one and how". Keeping that in
//! one place means each error names the exact command line that failed, so a red CI log or a
//! failed setup tells the reader what to re-run by hand.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The `cargo` to use for nested builds.
///
/// `cargo xtask` sets `CARGO` to the cargo binary that launched us; reusing it keeps nested
/// builds on the same toolchain even when `PATH` points at another one.
pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// The command line as a human would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    // Show `cargo` rather than the toolchain's absolute path: it reads better and is what the
    // reader would type to reproduce the step.
    if cmd.get_program() == env::var_os("CARGO").unwrap_or_default().as_os_str() {
        line = String::from("cargo");
    }
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` with inherited stdio and fails, naming the command, unless it exits with 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let status = cmd.status().with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        match status.code() {
            Some(code) => bail!("`{line}` exited with code {code}"),
            None => bail!("`{line}` was killed by a signal ({status})"),
        }
    }
    Ok(())
}

/// True when `cmd` starts and exits with 0; its output is discarded.
///
/// For "is this already installed?" probes, where a failure is an answer, not an error.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs `cmd` and returns its standard output; fails (with its stderr) unless it exits with 0.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("could not start `{line}`"))?;
    if !out.status.success() {
        bail!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// The first executable called `name` on `PATH`, like `command -v`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

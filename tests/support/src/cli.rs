//! The `sealgate` binary as a command-line tool (keys, seal, verify, tenants, audit): run
//! it to completion with a timeout from a temporary working directory, the caller's
//! `SEALGATE_*` and `AWS_*` variables cleared, and collect its status and output.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::process::{ChildGuard, sealgate_process};

/// How long a `sealgate` CLI command may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// A `sealgate` command line to run as a CLI (not `serve`): see [`sealgate`] and
/// [`sealgate_command`].
#[derive(Debug, Clone)]
pub struct SealgateCommand {
    binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl SealgateCommand {
    /// No arguments yet for the `sealgate` binary at `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self { binary: binary.into(), args: Vec::new(), env: Vec::new(), stdin: None }
    }

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
        let cwd = tempfile::Builder::new().prefix("sealgate-cli-").tempdir().expect("creating a temporary directory");
        let mut stdout = tempfile::tempfile().expect("creating a temporary file");
        let mut stderr = tempfile::tempfile().expect("creating a temporary file");
        let mut command = sealgate_process(&self.binary, cwd.path());
        command
            .args(&self.args)
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(stdout.try_clone().expect("cloning a file handle"))
            .stderr(stderr.try_clone().expect("cloning a file handle"));
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
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

/// A command line of the `sealgate` binary at `binary` with these arguments; add
/// environment or stdin, then [`SealgateCommand::run`].
pub fn sealgate_command<S: AsRef<OsStr>>(
    binary: impl AsRef<Path>,
    args: impl IntoIterator<Item = S>,
) -> SealgateCommand {
    SealgateCommand::new(binary.as_ref()).args(args)
}

/// Runs `sealgate ARGS...` as a CLI (stdin closed, the caller's `SEALGATE_*` and `AWS_*`
/// variables cleared) and returns its status and output. Pass `--data-dir` yourself.
pub fn sealgate<S: AsRef<OsStr>>(binary: impl AsRef<Path>, args: impl IntoIterator<Item = S>) -> CliOutput {
    sealgate_command(binary, args).run()
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

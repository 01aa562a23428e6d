//! Sealgate's task runner, invoked as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! The project needs a few things that Cargo alone does not provide: the ONNX Runtime shared
//! library the gateway loads at run time, Python packages for the interop tests, a wasm
//! target, and a fixed sequence of checks for CI. Writing them in Rust (the "xtask" pattern)
//! instead of shell keeps them portable, reviewable and testable, with errors that say which
//! step failed and why. Tasks:
//!
//! - `setup`: install what is missing (see [`setup`]).
//! - `serve [ARGS...]`: run the gateway in release mode with the runtime library wired in,
//!   after installing the real models it serves beside the demo ones (when missing).
//! - `test`: everything CI checks (see [`test`]).
//! - `ort-path`: print the ONNX Runtime library path, for scripts.
//! - `bench [--quick] [--soak]`: the end-to-end benchmark with `sealgate-load` (see [`bench`]).
//! - `wasm [test [--browser]]`: build the browser package, or run its wasm tests (see [`wasm`]).
//! - `fuzz [--minutes N] [--target NAME] [--parallel K]`: the fuzz campaigns of
//!   docs/FUZZING.md, with their figures (see [`fuzz`]).
//!
//! Linux only, like the gateway (it loads a Linux `.so`).

mod bench;
mod bench_large;
mod fuzz;
mod process;
mod setup;
mod soak;
mod test;
mod wasm;

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::process::{cargo, describe};
use crate::setup::ORT_DYLIB_ENV;

/// Sealgate developer tasks.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the project needs (ONNX Runtime, the real models, Python packages, wasm
    /// target, openssl), each only when missing.
    Setup,
    /// Run the gateway (`sealgate serve`) in release mode with ORT_DYLIB_PATH set, serving
    /// the demo models and the real models (installed first when missing).
    Serve {
        /// Arguments passed to `sealgate serve` unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run every check CI runs: fmt, clippy, wasm build, builds, tests, doctests.
    Test,
    /// Print the ONNX Runtime library path (installing it first if missing).
    OrtPath,
    /// End-to-end benchmark: sealgate-load against a release gateway, encrypted and
    /// plaintext, with server CPU per request; then the protocol's criterion benchmark.
    Bench(bench::BenchArgs),
    /// Build the browser package into wasm-client/pkg/ (and the demo site into
    /// target/wasm-demo/), or run its wasm-bindgen tests.
    Wasm {
        #[command(subcommand)]
        action: Option<WasmAction>,
    },
    /// Fuzz the parsers (nightly, cargo-fuzz): each target of fuzz/ for --minutes, up to
    /// --parallel at a time; prints executions, coverage and crashes per target and writes
    /// them to target/fuzz-report.md. Fails if a target crashed.
    Fuzz(fuzz::FuzzArgs),
}

#[derive(Subcommand)]
enum WasmAction {
    /// Run the wasm-bindgen tests of sealgate-wasm in Node (default) or Chromium.
    Test {
        /// Run them in headless Chromium through chromedriver instead of Node.
        #[arg(long)]
        browser: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line with the whole cause chain ("step `clippy` failed: `cargo clippy ...`
            // exited with code 101"), without the backtrace anyhow would add under
            // RUST_BACKTRACE=1: the failing command is the useful part, not xtask's stack.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = setup::repo_root();
    match cli.task {
        Task::Setup => {
            setup::all(&root)?;
        }
        Task::Serve { args } => {
            // Only the runtime library and the real models matter for serving; skip the
            // test-only installs. The gateway serves the demo models without the real ones,
            // so a failed download is a warning here (`cargo xtask setup` makes it an error).
            let library = setup::onnxruntime(&root)?;
            if let Err(err) = setup::real_models(&root) {
                eprintln!("warning: {err:#}; the gateway will serve the demo models only");
            }
            let mut command = cargo();
            command
                .current_dir(&root)
                .args(["run", "--release", "--bin", "sealgate", "--", "serve"])
                .args(args)
                .env(ORT_DYLIB_ENV, &library);
            // Replace this process instead of spawning a child: Ctrl-C then reaches the
            // gateway alone (cargo run execs it in turn), the gateway drains (requests in
            // flight finish, up to --drain-timeout; a second Ctrl-C stops it at once), and
            // its exit code becomes ours with no signal forwarding needed.
            let line = describe(&command);
            let err = command.exec();
            return Err(err).with_context(|| format!("could not start `{line}`"));
        }
        Task::Test => test::run_all(&root)?,
        Task::Bench(args) => bench::run_all(&root, &args)?,
        Task::Fuzz(args) => fuzz::run_all(&root, &args)?,
        Task::Wasm { action: None } => {
            wasm::build(&root)?;
        }
        Task::Wasm { action: Some(WasmAction::Test { browser }) } => wasm::test(&root, browser)?,
        Task::OrtPath => {
            let library = setup::onnxruntime(&root)?;
            // The only line on stdout, so `$(cargo xtask ort-path)` works in scripts.
            println!("{}", library.display());
        }
    }
    Ok(())
}

//! `cargo xtask test`: every check CI makes, in one place, cheapest first, stopping at the
//! first failure.
//!
//! `.ci/run` only calls this, so a developer reproduces a CI run exactly with one command.
//! Steps run in a fixed order so that a formatting slip fails in a second instead of after a
//! full build, and each step is timed so slow steps are visible before they hit CI's limit.
//! `ORT_DYLIB_PATH` is set for every step, so tests that load ONNX models find the runtime.
//! `CARGO_TERM_COLOR` is deliberately left as the caller set it. Under `CI`, incremental
//! compilation is off.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::process::{cargo, describe, run, succeeds};
use crate::setup::{self, ORT_DYLIB_ENV};

/// One named command of the pipeline.
struct Step {
    name: &'static str,
    command: Command,
}

impl Step {
    fn cargo(name: &'static str, args: &[&str]) -> Self {
        let mut command = cargo();
        command.args(args);
        Self { name, command }
    }

    /// A task of this xtask binary itself (`cargo xtask ARGS`), without rebuilding it.
    fn xtask(name: &'static str, args: &[&str]) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|_| "xtask".into());
        let mut command = Command::new(exe);
        command.args(args);
        Self { name, command }
    }
}

/// How a step ended, for the summary.
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    NotRun,
}

/// Runs setup and then every step; fails naming the first step that failed.
pub fn run_all(root: &Path) -> Result<()> {
    let started = Instant::now();
    let mut results: Vec<(&'static str, Outcome)> = Vec::new();

    eprintln!("==> setup");
    let setup_started = Instant::now();
    let library = match setup::all(root) {
        Ok(library) => library,
        Err(err) => {
            results.push(("setup", Outcome::Failed(setup_started.elapsed())));
            print_summary(&results, started.elapsed());
            return Err(err.context("step `setup` failed"));
        }
    };
    results.push(("setup", Outcome::Passed(setup_started.elapsed())));

    let mut steps = steps(root);
    let total = steps.len();
    let mut failure = None;
    for (index, step) in steps.iter_mut().enumerate() {
        if failure.is_some() {
            results.push((step.name, Outcome::NotRun));
            continue;
        }
        step.command.current_dir(root).env(ORT_DYLIB_ENV, &library);
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
            // A CI run builds everything once from nothing: incremental compilation only
            // adds work there (its caches are written and never read again).
            step.command.env("CARGO_INCREMENTAL", "0");
        }
        eprintln!("==> [{}/{total}] {}: {}", index + 1, step.name, describe(&step.command));
        let step_started = Instant::now();
        let outcome = run(&mut step.command);
        let elapsed = step_started.elapsed();
        match outcome {
            Ok(()) => {
                eprintln!("<== {}: ok in {}", step.name, seconds(elapsed));
                results.push((step.name, Outcome::Passed(elapsed)));
            }
            Err(err) => {
                eprintln!("<== {}: FAILED after {}", step.name, seconds(elapsed));
                results.push((step.name, Outcome::Failed(elapsed)));
                failure = Some(err.context(format!("step `{}` failed", step.name)));
            }
        }
    }

    print_summary(&results, started.elapsed());
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The pipeline after setup, in order.
fn steps(root: &Path) -> Vec<Step> {
    // nextest runs each test in its own process and in parallel, which is faster and isolates
    // tests that start servers; fall back to plain `cargo test` where it is not installed.
    let nextest = succeeds(cargo().args(["nextest", "--version"]));
    let tests = if nextest {
        Step::cargo("tests (nextest)", &["nextest", "run", "--workspace"])
    } else {
        Step::cargo("tests", &["test", "--workspace"])
    };

    let mut self_test = Command::new("python3");
    self_test.arg(root.join("tests").join("interop").join("ohttp_client.py")).arg("--self-test");

    // The Kubernetes manifests and Dockerfile: schemas, Sealgate's policy, and broken
    // copies that must be refused (deploy/kubernetes/README.md).
    let mut manifests = Command::new("python3");
    manifests.arg(root.join("deploy").join("kubernetes").join("validate.py")).arg("--self-test");

    vec![
        Step::cargo("fmt", &["fmt", "--all", "--", "--check"]),
        // The independent Python client checks itself against RFC 9458 Appendix A: seconds,
        // and a broken reference would make every interop test below misleading.
        Step { name: "python client self-test", command: self_test },
        Step { name: "deploy manifests", command: manifests },
        Step::cargo("clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        // Proves the protocol crate stays usable from the browser SDK (no std-only code).
        Step::cargo(
            "protocol for wasm",
            &["build", "-p", "sealgate-protocol", "--target", "wasm32-unknown-unknown", "--no-default-features"],
        ),
        // The browser package: clippy for its real target, then the package itself (the
        // Chromium end-to-end test in the workspace tests below loads it), then its
        // wasm-bindgen unit tests in Node and in Chromium.
        Step::cargo(
            "wasm clippy",
            &[
                "clippy",
                "-p",
                "sealgate-wasm",
                "--target",
                "wasm32-unknown-unknown",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::xtask("wasm package", &["wasm"]),
        Step::xtask("wasm tests (node)", &["wasm", "test"]),
        Step::xtask("wasm tests (chromium)", &["wasm", "test", "--browser"]),
        // No separate build of the binaries: the end-to-end suite is a test of `sealgate-server`
        // and the load tool's of `sealgate-load`, so building the workspace's tests builds both
        // binaries into `target/debug/` before any test runs, where the browser test (another
        // package's) finds `sealgate`.
        tests,
        // nextest does not run doctests, and `cargo test --workspace` above would only
        // repeat them cheaply, so they get their own step either way.
        Step::cargo("doctests", &["test", "--workspace", "--doc"]),
    ]
}

fn print_summary(results: &[(&'static str, Outcome)], total: Duration) {
    eprintln!();
    eprintln!("xtask test summary:");
    for (name, outcome) in results {
        match outcome {
            Outcome::Passed(took) => eprintln!("  ok       {:>8}  {name}", seconds(*took)),
            Outcome::Failed(took) => eprintln!("  FAILED   {:>8}  {name}", seconds(*took)),
            Outcome::NotRun => eprintln!("  not run  {:>8}  {name}", "-"),
        }
    }
    let failed = results.iter().find(|(_, outcome)| matches!(outcome, Outcome::Failed(_)));
    match failed {
        Some((name, _)) => eprintln!("xtask test: FAILED at `{name}` after {}", seconds(total)),
        None => eprintln!("xtask test: all {} steps passed in {}", results.len(), seconds(total)),
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

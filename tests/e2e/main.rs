//! The end-to-end suite: the real `sealgate` binary on `127.0.0.1:0`, each test with its own
//! gateway and temporary data directory, driven through the Rust SDK, raw HTTPS, the
//! `sealgate` CLI and the independent Python tooling (`sealgate-test-support` holds the
//! harness).
//!
//! These files are one integration test of `sealgate-server` (`[[test]] e2e` in its
//! `Cargo.toml`), so cargo builds the binary before the test and names it in
//! [`SEALGATE`]: the tests always run the current gateway. One module per concern, linked
//! into one test binary: one link instead of one per file.

mod admission;
mod bad_input;
mod chunked;
mod config;
mod connections;
mod external_data;
mod faults;
mod happy_path;
mod hardening;
mod key_bundle;
mod kms_providers_cli;
mod metrics;
mod no_plaintext_in_logs;
mod real_models;
mod replay;
mod rotation;
mod s3;
mod sealed_artifacts;
mod shared_replay;
mod shutdown;
mod stream_sdk;
mod streaming;
mod tenants;
mod tls;

/// The `sealgate` binary cargo built for this test.
const SEALGATE: &str = env!("CARGO_BIN_EXE_sealgate");

//! # sealgate-test-support
//!
//! What Sealgate's tests share, once: the gateway process ([`Gateway`], started from a
//! binary the caller names), the `sealgate` CLI runner ([`sealgate`]), throwaway KMS
//! backends ([`moto::Moto`] for the AWS KMS API, [`softhsm::SoftHsm`] for PKCS#11), other
//! throwaway servers on loopback ([`redis::Redis`], any [`service::Service`]), a TCP
//! forwarder a test cuts and restores to make a dependency go away ([`proxy::FaultProxy`]),
//! the load balancer ([`nginx::Nginx`], from the templates in `deploy/nginx/`), the
//! Python ONNX Runtime reference ([`onnxruntime_reference`], [`onnxruntime_outputs`]), the
//! real models and their comparison with it ([`assert_matches_onnxruntime`]),
//! scans for plaintext on disk and in logs ([`find_plaintext`]), the layout of a sealed
//! artifact ([`SealedLayout`]), the audit log checks, and raw OHTTP exchanges
//! ([`encapsulate`], [`inner_request`]).
//!
//! Tests of the package that owns a binary pass `env!("CARGO_BIN_EXE_sealgate")`, so cargo
//! builds the binary first and the tests always run the current code; the end-to-end suite
//! (`tests/e2e/`) is such a test of `sealgate-server`. Callers in other packages (the
//! browser test, the load tool's tests) use [`gateway_binary`], which finds the binary in
//! the target directory and warns when it is older than the sources.
//!
//! Everything but [`moto`], [`nginx`], [`proxy`], [`redis`], [`service`] and [`softhsm`] needs the `gateway`
//! feature. Those depend on
//! no Sealgate crate, so `sealgate-models` uses them in its own tests without the feature
//! and without a dependency cycle back to itself.

pub mod moto;
pub mod nginx;
pub mod proxy;
pub mod redis;
pub mod service;
pub mod softhsm;

#[cfg(feature = "gateway")]
mod audit;
#[cfg(feature = "gateway")]
mod cli;
#[cfg(feature = "gateway")]
mod exchange;
#[cfg(feature = "gateway")]
mod fixtures;
#[cfg(feature = "gateway")]
mod gateway;
#[cfg(feature = "gateway")]
mod paths;
#[cfg(feature = "gateway")]
mod plaintext;
#[cfg(feature = "gateway")]
mod process;
#[cfg(feature = "gateway")]
mod real_models;
#[cfg(feature = "gateway")]
mod reference;
#[cfg(feature = "gateway")]
mod sealed_layout;

#[cfg(feature = "gateway")]
pub use {
    audit::{assert_audit_intact, audit_entries, copy_audit_key},
    cli::{CliOutput, SealgateCommand, sealgate, sealgate_command},
    exchange::{RawResponse, date_now, encapsulate, inner_error, inner_request, unix_now},
    fixtures::{
        DEMO_MODELS, EXAMPLE_LABELS, assert_still_serving, demo_model_path, demo_models_dir, example_path,
        example_request, labels, probabilities, random_bytes, slow_model_dir, slow_request,
    },
    gateway::{FailedStart, Gateway, GatewayOptions, STDERR_FILE, STDOUT_FILE, TEST_TENANT, copy_data_dir, http_get},
    paths::{gateway_binary, ort_library, repo_root},
    plaintext::{PLAINTEXT_WINDOW, assert_no_plaintext, contains, find_plaintext, list_files, without_timing},
    process::{output_text, run_command},
    real_models::{
        ABSOLUTE_TOLERANCE, REAL_MODELS, RELATIVE_TOLERANCE, SPECTROGRAM_BINS, assert_matches_onnxruntime,
        fixture_sentences, real_model_path, real_models_installed, spectrogram_request, token_request,
    },
    reference::{Reference, ReferenceTensor, onnxruntime_outputs, onnxruntime_reference},
    sealed_layout::SealedLayout,
};

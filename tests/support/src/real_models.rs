//! The real models (`seizure-risk`, `text-embedding`; models/README.md) for the tests that
//! need them: where `cargo xtask setup` installs them and whether it has, requests of the
//! shapes their clients send, and the comparison of an answer with Python onnxruntime on the
//! same `.onnx` file, for the SDK's end-to-end test and the browser's alike.
//!
//! Tolerance: |answer - Python| <= 1e-5 + 1e-4 * |Python| for every element. Both sides are
//! ONNX Runtime 1.31.1 on the CPU with one intra-op thread, given the same float32 and int64
//! values, so they run the same kernels in the same order and are expected to agree
//! exactly (the tests print the largest difference they saw). The margin is float32 rounding
//! of a deep network (a BiLSTM over 599 steps; the EEG package documents up to 2e-5 between
//! two runtimes), kept far below anything that would change a probability or a similarity
//! that matters.

use std::path::PathBuf;

use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, OutputTensor, TensorData};

use crate::{ReferenceTensor, onnxruntime_outputs, repo_root};

/// The real models the embedded default serves beside the demo models once `cargo xtask
/// setup` has installed them; a test gateway serves them only with
/// [`crate::GatewayOptions::real_models`].
pub const REAL_MODELS: [&str; 2] = ["seizure-risk", "text-embedding"];

/// Absolute part of the tolerance (see the module documentation).
pub const ABSOLUTE_TOLERANCE: f64 = 1e-5;
/// Relative part of the tolerance.
pub const RELATIVE_TOLERANCE: f64 = 1e-4;

/// The seizure model's spectrogram bins (1 Hz each, 0–99 Hz).
pub const SPECTROGRAM_BINS: u64 = 100;

/// The ONNX file of a real model, where `cargo xtask setup` installs it.
pub fn real_model_path(model: &str) -> PathBuf {
    repo_root().join(".tools/models").join(format!("{model}.onnx"))
}

/// True when both real models are installed. When they are not, a test that needs them
/// returns early after calling this, which says why on stderr; in CI (`CI` set to anything
/// but `false`) they must be there, because `cargo xtask test` installs them first, so it
/// panics instead.
pub fn real_models_installed() -> bool {
    let missing: Vec<PathBuf> = REAL_MODELS.iter().map(|m| real_model_path(m)).filter(|p| !p.is_file()).collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "the real models are missing in CI ({missing:?}); `cargo xtask setup` installs them");
    eprintln!("skipped: the real models are not installed ({missing:?}); run `cargo xtask setup`");
    false
}

/// A `seizure-risk` request: `x` FP32 [batch, 100, time] of spectrogram-like values,
/// z-scores from a fixed generator (`seed`), rounded to 1e-4 as client-sdk/examples/eeg.rs
/// sends them (so that a 5-minute window, 599 columns, fits the default body limit).
pub fn spectrogram_request(batch: u64, time: u64, seed: u64) -> InferenceRequest {
    let mut state = seed.max(1);
    let values = (0..batch * SPECTROGRAM_BINS * time)
        .map(|_| {
            // Sum of four uniforms (xorshift64), centred: close to normal, within [-3.4, 3.4].
            let mut sum = 0.0;
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                sum += (state >> 11) as f64 / (1u64 << 53) as f64;
            }
            ((sum - 2.0) * 1.7 * 1e4).round() / 1e4
        })
        .collect();
    InferenceRequest {
        id: None,
        inputs: vec![InputTensor {
            name: "x".into(),
            shape: vec![batch, SPECTROGRAM_BINS, time],
            datatype: DataType::Fp32,
            data: TensorData::Float(values),
        }],
        outputs: None,
    }
}

/// The token ids of client-sdk/examples/fixtures/sentences.tokens.json, one list per
/// sentence (made offline by the model's own tokenizer; no vocabulary ships).
pub fn fixture_sentences() -> Vec<Vec<i64>> {
    let path = repo_root().join("client-sdk/examples/fixtures/sentences.tokens.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let fixture: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let sentences = fixture["sentences"].as_array().unwrap_or_else(|| panic!("{}: no sentences", path.display()));
    sentences
        .iter()
        .map(|s| s["input_ids"].as_array().expect("input_ids").iter().map(|i| i.as_i64().expect("an id")).collect())
        .collect()
}

/// A `text-embedding` request for `sentences`: `input_ids`, `attention_mask` and
/// `token_type_ids`, each INT64 [sentences, longest], padded with id 0 and mask 0.
pub fn token_request(sentences: &[Vec<i64>]) -> InferenceRequest {
    let length = sentences.iter().map(Vec::len).max().unwrap_or(0);
    let padded = |f: &dyn Fn(&[i64], usize) -> i64| -> Vec<i64> {
        sentences.iter().flat_map(|s| (0..length).map(move |i| f(s, i))).collect()
    };
    let input = |name: &str, data: Vec<i64>| InputTensor {
        name: name.into(),
        shape: vec![sentences.len() as u64, length as u64],
        datatype: DataType::Int64,
        data: TensorData::Int(data),
    };
    InferenceRequest {
        id: None,
        inputs: vec![
            input("input_ids", padded(&|s, i| s.get(i).copied().unwrap_or(0))),
            input("attention_mask", padded(&|s, i| i64::from(i < s.len()))),
            input("token_type_ids", padded(&|_, _| 0)),
        ],
        outputs: None,
    }
}

/// Asserts that `outputs` (what a client got from the gateway for `request`) are every
/// output Python onnxruntime gives for the same request on the model's `.onnx` file, with
/// the same shapes, all FP32, each element within the tolerance; returns the largest
/// difference.
pub async fn assert_matches_onnxruntime(model: &str, request: &InferenceRequest, outputs: &[OutputTensor]) -> f64 {
    let reference = onnxruntime_outputs(&real_model_path(model), request).await;
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, reference.keys().map(String::as_str).collect::<Vec<_>>(), "{model}: outputs");
    let mut worst = 0.0_f64;
    for output in outputs {
        let ReferenceTensor { shape, data } = &reference[&output.name];
        assert_eq!(&output.shape, shape, "{model} {}: shape", output.name);
        assert_eq!(output.datatype, DataType::Fp32, "{model} {}: datatype", output.name);
        let ours = output.as_f64().unwrap_or_else(|| panic!("{model} {}: not numbers", output.name));
        assert_eq!(ours.len(), data.len(), "{model} {}: elements", output.name);
        for (i, (a, b)) in ours.iter().zip(data).enumerate() {
            let difference = (a - b).abs();
            assert!(
                difference <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * b.abs(),
                "{model} {} element {i}: the gateway's answer {a}, Python onnxruntime {b}",
                output.name
            );
            worst = worst.max(difference);
        }
    }
    worst
}

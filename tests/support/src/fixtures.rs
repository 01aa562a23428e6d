//! The inputs and expected answers the tests share: the demo models and their example
//! requests (`models/demo/`), the slow model that holds sessions busy (`tests/models/`),
//! readers for the outputs the demo models return, and the check that a gateway still
//! serves after a test has thrown bad input at it.

use std::fs;
use std::path::PathBuf;

use sealgate_client::inference::{DataType, InferenceRequest, InferenceResponse, InputTensor, TensorData};

use crate::{Gateway, repo_root};

/// The demo models served by every test gateway.
pub const DEMO_MODELS: [&str; 2] = ["breast-cancer", "credit-risk"];

/// The class labels of the rows in each `models/demo/*.example.json`: one row of each class,
/// class 0 first (documented in `models/demo/README.md`).
pub const EXAMPLE_LABELS: [i64; 2] = [0, 1];
/// `models/demo` of the checkout.
pub fn demo_models_dir() -> PathBuf {
    repo_root().join("models/demo")
}

/// The ONNX file of a demo model.
pub fn demo_model_path(model: &str) -> PathBuf {
    demo_models_dir().join(format!("{model}.onnx"))
}

/// A temporary folder holding `tests/models/slow.onnx` (made by
/// `models/make/make_test_models.py`): a model whose run time the request sets, served as a
/// plaintext `.onnx` (start the gateway with `--danger-allow-plaintext-models`).
pub fn slow_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::copy(repo_root().join("tests/models/slow.onnx"), dir.path().join("slow.onnx")).expect("copying slow.onnx");
    dir
}

/// A request to the slow model (inputs `x` FP32 [1, 256] and `repeats` INT64 [2]) that costs
/// about 4 x `repeats` MFLOP: on one core here about 70 ms per 1000 repeats.
pub fn slow_request(repeats: i64) -> InferenceRequest {
    InferenceRequest {
        id: None,
        inputs: vec![
            InputTensor {
                name: "x".into(),
                shape: vec![1, 256],
                datatype: DataType::Fp32,
                data: TensorData::Float(vec![0.01; 256]),
            },
            InputTensor {
                name: "repeats".into(),
                shape: vec![2],
                datatype: DataType::Int64,
                data: TensorData::Int(vec![repeats, 1]),
            },
        ],
        outputs: None,
    }
}

/// The example request body of a demo model (`models/demo/{model}.example.json`).
pub fn example_path(model: &str) -> PathBuf {
    demo_models_dir().join(format!("{model}.example.json"))
}

/// The example request of a demo model, parsed.
pub fn example_request(model: &str) -> InferenceRequest {
    let path = example_path(model);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not an inference request: {e}", path.display()))
}

/// `n` random bytes from the system RNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the system RNG");
    bytes
}

/// The `label` output as integers (checks datatype INT64 and one label per row).
pub fn labels(response: &InferenceResponse) -> Vec<i64> {
    let label = response.output("label").expect("a 'label' output");
    assert_eq!(label.datatype, DataType::Int64, "label datatype");
    let values = label.data.as_i64().expect("integer labels").to_vec();
    assert_eq!(label.shape, vec![values.len() as u64], "label shape");
    values
}

/// The `probabilities` output as rows of two (checks datatype FP32 and shape `[N, 2]`).
pub fn probabilities(response: &InferenceResponse) -> Vec<Vec<f64>> {
    let probabilities = response.output("probabilities").expect("a 'probabilities' output");
    assert_eq!(probabilities.datatype, DataType::Fp32, "probabilities datatype");
    let values = probabilities.as_f64().expect("numeric probabilities");
    assert_eq!(probabilities.shape, vec![(values.len() / 2) as u64, 2], "probabilities shape");
    values.chunks(2).map(<[f64]>::to_vec).collect()
}

/// Asserts that the gateway still runs and still answers: `/readyz` is 200 and the
/// breast-cancer example classifies as documented, through a fresh SDK client.
pub async fn assert_still_serving(gateway: &Gateway) {
    assert!(gateway.is_running(), "the gateway exited:\n{}", gateway.logs());
    let ready = gateway.get("/readyz").await;
    assert_eq!(ready.status, 200, "/readyz: {}", ready.text());
    let model = DEMO_MODELS[0];
    let response = gateway
        .client()
        .infer(model, &example_request(model))
        .await
        .unwrap_or_else(|e| panic!("a good inference failed after bad input: {e}\n{}", gateway.logs()));
    assert_eq!(labels(&response), EXAMPLE_LABELS, "labels of the {model} example");
}

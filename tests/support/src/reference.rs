//! The independent answer for the demo models: Python ONNX Runtime runs a demo model's
//! example request, so the tests can compare the gateway's labels and probabilities with a
//! runtime that shares no code with it.

use std::time::Duration;

use crate::{demo_model_path, example_path, output_text, run_command};

/// Python onnxruntime's answer for a demo model's example request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Predicted class per row.
    pub labels: Vec<i64>,
    /// Class probabilities per row.
    pub probabilities: Vec<Vec<f64>>,
}

/// Loads the model and the example request given as arguments and prints the `label` and
/// `probabilities` outputs as JSON.
const REFERENCE_SCRIPT: &str = r#"
import json, sys
import numpy as np
import onnxruntime as ort
t = json.load(open(sys.argv[2]))["inputs"][0]
x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
label, proba = s.run(["label", "probabilities"], {t["name"]: x})
print(json.dumps({"labels": [int(v) for v in label], "probabilities": proba.astype(float).tolist()}))
"#;

/// Runs the example request of `model` through Python onnxruntime (`python3`, with the
/// packages of `tests/interop/requirements.txt`).
pub async fn onnxruntime_reference(model: &str) -> Reference {
    let output = run_command(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(REFERENCE_SCRIPT)
            .arg(demo_model_path(model))
            .arg(example_path(model)),
        Duration::from_secs(120),
        "install Python 3 and `pip install -r tests/interop/requirements.txt` (cargo xtask setup does both)",
    )
    .await
    .expect("running python3");
    assert!(output.status.success(), "python3 onnxruntime reference failed:\n{}", output_text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the reference output is not JSON ({e}):\n{}", output_text(&output)));
    let labels = json["labels"].as_array().expect("labels").iter().map(|v| v.as_i64().expect("int label")).collect();
    let probabilities = json["probabilities"]
        .as_array()
        .expect("probabilities")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(|p| p.as_f64().expect("float")).collect())
        .collect();
    Reference { labels, probabilities }
}

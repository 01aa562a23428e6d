//! The independent answer: Python ONNX Runtime runs a demo model's example request
//! ([`onnxruntime_reference`]), or any request on any ONNX file ([`onnxruntime_outputs`]),
//! so the tests can compare the gateway's answers with a runtime that shares no code with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sealgate_client::inference::InferenceRequest;

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

/// One output of [`onnxruntime_outputs`]: its shape and its elements as `f64`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceTensor {
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Elements (float32 and int64 outputs alike, widened exactly).
    pub data: Vec<f64>,
}

/// Runs the KServe request in the file given second on the model given first and prints
/// every output as JSON. Inputs become numpy arrays of their KServe datatype (FP32 as
/// float32, so Python sees the same float32 values the gateway does), and the session has
/// one intra-op thread, as the gateway's sessions do, so both sum in the same order.
const OUTPUTS_SCRIPT: &str = r#"
import json, sys
import numpy as np
import onnxruntime as ort
DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}
request = json.load(open(sys.argv[2]))
feeds = {t["name"]: np.asarray(t["data"], dtype=DTYPES[t["datatype"]]).reshape(t["shape"]) for t in request["inputs"]}
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
values = session.run(names, feeds)
print(json.dumps({n: {"shape": list(v.shape), "data": v.astype(float).ravel().tolist()} for n, v in zip(names, values)}))
"#;

/// Every output of the ONNX file `model` for `request`, from Python onnxruntime (`python3`
/// with the packages of `tests/interop/requirements.txt`: the pinned onnxruntime, the same
/// version the gateway loads).
pub async fn onnxruntime_outputs(model: &Path, request: &InferenceRequest) -> BTreeMap<String, ReferenceTensor> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let request_file = dir.path().join("request.json");
    std::fs::write(&request_file, serde_json::to_vec(request).expect("a request serializes")).expect("writing it");
    let output = run_command(
        tokio::process::Command::new("python3").arg("-c").arg(OUTPUTS_SCRIPT).arg(model).arg(&request_file),
        Duration::from_secs(120),
        "install Python 3 and `pip install -r tests/interop/requirements.txt` (cargo xtask setup does both)",
    )
    .await
    .expect("running python3");
    assert!(output.status.success(), "python3 onnxruntime on {} failed:\n{}", model.display(), output_text(&output));
    let json: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the reference output is not JSON ({e}):\n{}", output_text(&output)));
    json.into_iter()
        .map(|(name, tensor)| {
            let numbers = |key: &str| tensor[key].as_array().unwrap_or_else(|| panic!("{name}: no '{key}' array"));
            let shape = numbers("shape").iter().map(|d| d.as_u64().expect("a dimension")).collect();
            let data = numbers("data").iter().map(|v| v.as_f64().expect("a number")).collect();
            (name, ReferenceTensor { shape, data })
        })
        .collect()
}

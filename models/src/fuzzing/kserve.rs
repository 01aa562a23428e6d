//! Fuzz target `kserve`: the KServe V2 JSON a gateway parses from a decrypted request body
//! and checks before ONNX Runtime sees a tensor. The body is read as the gateway's
//! `parse_request` reads it (`serde_json::from_slice::<InferenceRequest>`, with the
//! protocol's own `TensorData` reader), checked against fixed model signatures with
//! [`check_request`] (names, datatypes, shapes, element counts, [`MAX_ELEMENTS`], element
//! ranges: the checks [`Model::infer`](crate::Model::infer) runs), and, read as NDJSON lines,
//! stacked as [`Model::infer_batch`](crate::Model::infer_batch) stacks them
//! (`model::stack`). The same bytes are also read as the answers a client parses
//! (inference response, model metadata, model list, error body).
//!
//! Asserted: a parsed request serializes to JSON that parses back to the same request
//! (floats within serde_json's parsing precision), and a stack holds every request's rows.

use sealgate_protocol::inference::check::check_request;
use sealgate_protocol::inference::{
    DataType, ErrorBody, InferenceRequest, InferenceResponse, ModelList, ModelMetadata, TensorData, TensorMetadata,
};

use super::Seed;
use crate::tensor::MAX_ELEMENTS;

/// The most NDJSON lines of one input stacked.
const MAX_LINES: usize = 8;

/// A model's signature: its name, inputs and outputs.
type Signature = (&'static str, Vec<TensorMetadata>, Vec<TensorMetadata>);

/// The `kserve` target: the signatures of the served models and a few more datatypes.
#[derive(Debug)]
pub struct Target {
    models: Vec<Signature>,
}

impl Default for Target {
    fn default() -> Self {
        Self::new()
    }
}

fn spec(name: &str, datatype: DataType, shape: &[i64]) -> TensorMetadata {
    TensorMetadata { name: name.into(), datatype, shape: shape.to_vec() }
}

impl Target {
    /// The signatures: credit-risk (and breast-cancer, 30 features), text-embedding,
    /// seizure-risk, and models with BOOL, INT32 and fixed-shape FP64 inputs.
    pub fn new() -> Self {
        let classifier = |features| {
            (
                vec![spec("input", DataType::Fp32, &[-1, features])],
                vec![spec("label", DataType::Int64, &[-1]), spec("probabilities", DataType::Fp32, &[-1, 2])],
            )
        };
        let (credit_in, credit_out) = classifier(20);
        let (breast_in, breast_out) = classifier(30);
        let tokens = ["input_ids", "attention_mask", "token_type_ids"].map(|n| spec(n, DataType::Int64, &[-1, -1]));
        let models = vec![
            ("credit-risk", credit_in, credit_out),
            ("breast-cancer", breast_in, breast_out),
            ("text-embedding", tokens.to_vec(), vec![spec("last_hidden_state", DataType::Fp32, &[-1, -1, 384])]),
            (
                "seizure-risk",
                vec![spec("x", DataType::Fp32, &[-1, 100, -1])],
                vec![spec("y", DataType::Fp32, &[-1, 1])],
            ),
            (
                "mixed",
                vec![
                    spec("flags", DataType::Bool, &[-1, 2]),
                    spec("ids", DataType::Int32, &[-1]),
                    spec("scale", DataType::Fp64, &[2, 3]),
                ],
                vec![spec("out", DataType::Fp64, &[-1])],
            ),
        ];
        Self { models }
    }

    /// Parses `data` as one request and as NDJSON lines, checks them against every
    /// signature, and reads it as each answer type; true when it parsed as a request.
    pub fn run(&self, data: &[u8]) -> bool {
        let request = serde_json::from_slice::<InferenceRequest>(data);
        if let Ok(request) = &request {
            for (name, inputs, _) in &self.models {
                let _ = check_request(request, name, inputs, MAX_ELEMENTS);
            }
            round_trip(request);
        }

        let lines: Vec<InferenceRequest> =
            data.split(|&b| b == b'\n').take(MAX_LINES).filter_map(|line| serde_json::from_slice(line).ok()).collect();
        if lines.len() >= 2 {
            for (name, inputs, outputs) in &self.models {
                if let Some((stacked, rows)) = crate::model::stack(inputs, outputs, &lines) {
                    check_stack(&lines, &stacked, &rows);
                    let _ = check_request(&stacked, name, inputs, MAX_ELEMENTS);
                }
            }
        }

        let _ = serde_json::from_slice::<InferenceResponse>(data);
        let _ = serde_json::from_slice::<ModelMetadata>(data);
        let _ = serde_json::from_slice::<ModelList>(data);
        let _ = serde_json::from_slice::<ErrorBody>(data);
        request.is_ok()
    }

    /// Request bodies for each signature (the demo models' examples among them), NDJSON
    /// batches that stack, requests each check refuses, and the answers clients read.
    pub fn seeds(&self) -> Vec<Seed> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut seeds: Vec<Seed> = ["credit-risk", "breast-cancer"]
            .into_iter()
            .filter_map(|m| {
                Some((format!("{m}-example"), std::fs::read(root.join(format!("demo/{m}.example.json"))).ok()?))
            })
            .collect();
        let credit = r#"{"id":"r1","inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","data":[21,81.5,3,2,6.4,60,8.4,131,9.9,0.5,2,34.3,10.5,30.7,1,2,0,120,75.6,0]}],"outputs":[{"name":"probabilities"}]}"#;
        let tokens = r#"{"inputs":[{"name":"input_ids","shape":[1,4],"datatype":"INT64","data":[101,7592,2088,102]},{"name":"attention_mask","shape":[1,4],"datatype":"INT64","data":[1,1,1,1]},{"name":"token_type_ids","shape":[1,4],"datatype":"INT64","data":[0,0,0,0]}]}"#;
        let mixed = r#"{"inputs":[{"name":"flags","shape":[2,2],"datatype":"BOOL","data":[true,false,false,true]},{"name":"ids","shape":[3],"datatype":"INT32","data":[1,-2,2147483647]},{"name":"scale","shape":[2,3],"datatype":"FP64","data":[0.5,1e300,-2.5e-300,3,4,5]}]}"#;
        let bodies = [
            ("credit-risk-one-row", credit.to_owned()),
            ("text-embedding", tokens.to_owned()),
            ("mixed-datatypes", mixed.to_owned()),
            ("ndjson-credit-risk", [credit, credit, credit].join("\n")),
            ("ndjson-text-embedding", [tokens, tokens].join("\n")),
            ("refused-shape", r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#.into()),
            ("refused-count", r#"{"inputs":[{"name":"input","shape":[2,20],"datatype":"FP32","data":[1]}]}"#.into()),
            (
                "refused-repeated",
                r#"{"inputs":[{"name":"ids","shape":[1],"datatype":"INT32","data":[1]},{"name":"ids","shape":[1],"datatype":"INT32","data":[1]}]}"#.into(),
            ),
            ("refused-range", r#"{"inputs":[{"name":"ids","shape":[1],"datatype":"INT32","data":[4294967296]}]}"#.into()),
            ("refused-fp32-range", r#"{"inputs":[{"name":"input","shape":[1,1],"datatype":"FP32","data":[1e39]}]}"#.into()),
            ("response", r#"{"model_name":"credit-risk","model_version":"1","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[1]},{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[0.25,0.75]}]}"#.into()),
            ("metadata", r#"{"name":"credit-risk","versions":["1"],"platform":"onnxruntime","inputs":[{"name":"input","datatype":"FP32","shape":[-1,20]}],"outputs":[{"name":"label","datatype":"INT64","shape":[-1]}]}"#.into()),
            ("model-list", r#"{"models":[{"name":"credit-risk","versions":["1"]}]}"#.into()),
            ("error", r#"{"error":"model 'x' is not served"}"#.into()),
        ];
        seeds.extend(bodies.into_iter().map(|(name, body)| (name.to_owned(), body.into_bytes())));
        seeds
    }
}

/// A parsed request serializes to JSON that parses back to the same request. serde_json
/// (without `float_roundtrip`) may read a float back one unit in the last place off, so
/// floats are compared within that.
fn round_trip(request: &InferenceRequest) {
    let json = serde_json::to_vec(request);
    let again = json.as_ref().ok().and_then(|json| serde_json::from_slice::<InferenceRequest>(json).ok());
    let Some(again) = again else { panic!("a parsed request serializes and parses back") };
    assert_eq!((&again.id, &again.outputs), (&request.id, &request.outputs), "id and outputs round trip");
    assert_eq!(again.inputs.len(), request.inputs.len(), "every input round trips");
    for (a, b) in again.inputs.iter().zip(&request.inputs) {
        assert_eq!((&a.name, &a.shape, a.datatype), (&b.name, &b.shape, b.datatype), "an input's name, shape, type");
        let same = match (&a.data, &b.data) {
            (TensorData::Bool(x), TensorData::Bool(y)) => x == y,
            (TensorData::Int(x), TensorData::Int(y)) => x == y,
            (TensorData::Float(x), TensorData::Float(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(&p, &q)| close(p, q))
            }
            _ => false,
        };
        assert!(same, "tensor data round trips as the same kind and values");
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
}

/// A stack holds every request's rows, in order.
fn check_stack(requests: &[InferenceRequest], stacked: &InferenceRequest, rows: &[u64]) {
    assert_eq!(rows.len(), requests.len(), "one row count per request");
    for (j, input) in stacked.inputs.iter().enumerate() {
        let shapes: Vec<u64> = requests.iter().filter_map(|r| r.inputs.get(j)?.shape.first().copied()).collect();
        assert_eq!(shapes, rows, "each request brings its rows");
        let total: Option<u64> = rows.iter().try_fold(0u64, |sum, &n| sum.checked_add(n));
        assert_eq!(input.shape.first().copied(), total, "the stacked rows are the sum");
        let elements: usize = requests.iter().filter_map(|r| Some(r.inputs.get(j)?.data.len())).sum();
        assert_eq!(input.data.len(), elements, "the stacked data is every request's");
    }
}

//! The demo models through the real ONNX Runtime: metadata from the ONNX signature, answers
//! for the example rows, and every kind of bad tensor refused with a message that names the
//! problem but never the values.
//!
//! Needs the ONNX Runtime library: `ORT_DYLIB_PATH`, as `cargo xtask test` sets it.

use std::path::PathBuf;

use sealgate_models::{Model, ModelError, ModelRegistry, runtime};
use sealgate_protocol::inference::{DataType, InferenceRequest, InputTensor, RequestedOutput, TensorData};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env() -> &'static ort::environment::Environment {
    let library =
        std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).unwrap_or_else(|| runtime::installed_library(&repo()));
    runtime::environment(&library).expect("ONNX Runtime library (run `cargo xtask setup`)")
}

fn model(name: &str) -> Model {
    let bytes = std::fs::read(repo().join(format!("models/demo/{name}.onnx"))).unwrap();
    Model::from_onnx_bytes(env(), name, "1", &bytes, 2).unwrap()
}

fn example(name: &str) -> InferenceRequest {
    let text = std::fs::read_to_string(repo().join(format!("models/demo/{name}.example.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn input(shape: Vec<u64>, datatype: DataType, data: TensorData) -> InferenceRequest {
    InferenceRequest {
        id: None,
        inputs: vec![InputTensor { name: "input".into(), shape, datatype, data }],
        outputs: None,
    }
}

fn invalid(model: &Model, request: &InferenceRequest) -> String {
    match model.infer(request) {
        Err(ModelError::InvalidInput(msg)) => msg,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn metadata_comes_from_the_onnx_signature() {
    for (name, features) in [("breast-cancer", 30), ("credit-risk", 20)] {
        let meta = model(name).metadata();
        assert_eq!(meta.inputs.len(), 1);
        assert_eq!((meta.inputs[0].name.as_str(), meta.inputs[0].datatype), ("input", DataType::Fp32));
        assert_eq!(meta.inputs[0].shape, vec![-1, features]);
        let outputs: Vec<_> = meta.outputs.iter().map(|o| (o.name.as_str(), o.datatype)).collect();
        assert_eq!(outputs, vec![("label", DataType::Int64), ("probabilities", DataType::Fp32)]);
    }
}

#[test]
fn example_rows_are_classified_as_documented() {
    // models/demo/README.md: each example file holds one row of class 0, then one of class 1.
    for name in ["breast-cancer", "credit-risk"] {
        let answer = model(name).infer(&example(name)).unwrap();
        assert_eq!(answer.output("label").unwrap().data, TensorData::Int(vec![0, 1]), "{name}");
        let p = answer.output("probabilities").unwrap();
        assert_eq!(p.shape, vec![2, 2]);
        let p = p.as_f64().unwrap();
        for row in p.chunks(2) {
            assert!((row[0] + row[1] - 1.0).abs() < 1e-5, "{name}: {row:?}");
        }
        assert!(p[0] > 0.5 && p[3] > 0.5, "{name}: {p:?}");
    }
}

#[test]
fn requested_outputs_are_honoured() {
    let model = model("credit-risk");
    let mut request = example("credit-risk");
    request.outputs = Some(vec![RequestedOutput { name: "label".into() }]);
    let answer = model.infer(&request).unwrap();
    assert_eq!(answer.outputs.len(), 1);
    request.outputs = Some(vec![RequestedOutput { name: "nope".into() }]);
    assert!(invalid(&model, &request).contains("no output 'nope'"));
}

#[test]
fn bad_tensors_are_refused_with_clear_messages() {
    let model = model("breast-cancer");
    let canary = 1234.5678;
    let row = |n: usize| TensorData::Float(vec![canary; n]);

    let mut wrong_name = input(vec![1, 30], DataType::Fp32, row(30));
    wrong_name.inputs[0].name = "features".into();
    assert!(invalid(&model, &wrong_name).contains("no input 'features'"));

    let msg = invalid(&model, &input(vec![1, 29], DataType::Fp32, row(29)));
    assert!(msg.contains("shape [1, 29]") && msg.contains("[-1, 30]"), "{msg}");

    let msg = invalid(&model, &input(vec![1, 30], DataType::Int64, TensorData::Int(vec![1; 30])));
    assert!(msg.contains("datatype FP32") && msg.contains("INT64"), "{msg}");

    let msg = invalid(&model, &input(vec![1, 30], DataType::Fp32, row(29)));
    assert!(msg.contains("29 values") && msg.contains("needs 30"), "{msg}");

    let msg = invalid(&model, &input(vec![1, 30], DataType::Fp32, TensorData::Float(vec![1e300; 30])));
    assert!(msg.contains("FP32 range"), "{msg}");

    let msg = invalid(&model, &input(vec![1, 30], DataType::Fp32, TensorData::Bool(vec![true; 30])));
    assert!(msg.contains("does not match datatype"), "{msg}");

    let msg = invalid(&model, &input(vec![0, 30], DataType::Fp32, row(0)));
    assert!(msg.contains("empty dimension"), "{msg}");

    let msg = invalid(&model, &input(vec![1 << 40, 30], DataType::Fp32, row(30)));
    assert!(msg.contains("too large"), "{msg}");

    let mut twice = input(vec![1, 30], DataType::Fp32, row(30));
    twice.inputs.push(twice.inputs[0].clone());
    assert!(invalid(&model, &twice).contains("given twice"));

    let missing = InferenceRequest { id: None, inputs: vec![], outputs: None };
    assert!(invalid(&model, &missing).contains("missing input 'input'"));

    // None of the messages above may quote the values sent.
    for request in [wrong_name, twice] {
        let msg = invalid(&model, &request);
        assert!(!msg.contains("1234"), "{msg}");
    }
    // The model still answers after all of that.
    assert!(model.infer(&input(vec![1, 30], DataType::Fp32, row(30))).is_ok());
}

#[test]
fn registry_loads_a_folder_and_refuses_duplicates() {
    let sources = ModelRegistry::onnx_files_in(&repo().join("models/demo")).unwrap();
    let mut registry = ModelRegistry::load(env(), &sources, 1).unwrap();
    assert_eq!(registry.len(), 2);
    assert_eq!(
        registry.list().models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["breast-cancer", "credit-risk"]
    );
    assert!(registry.get("credit-risk", None).is_some());
    assert!(registry.get("credit-risk", Some("2")).is_none());
    let again = model("credit-risk");
    assert!(matches!(registry.insert(again), Err(ModelError::Duplicate(_))));
}

#[test]
fn garbage_model_bytes_are_refused() {
    let e = Model::from_onnx_bytes(env(), "junk", "1", b"definitely not an onnx protobuf", 1).unwrap_err();
    assert!(matches!(e, ModelError::Runtime(_) | ModelError::Unsupported { .. }), "{e:?}");
}

#[test]
fn models_with_external_data_are_refused_before_onnx_runtime_reads_anything() {
    // ModelProto { graph: GraphProto { initializer: TensorProto { name: "w",
    //   data_location: EXTERNAL, external_data: [{ location: "weights.bin" }] } } }
    let field = |n: u8, payload: &[u8]| [vec![n << 3 | 2, payload.len() as u8], payload.to_vec()].concat();
    let entry = [field(1, b"location"), field(2, b"weights.bin")].concat();
    let tensor = [field(8, b"w"), vec![14 << 3, 1], field(13, &entry)].concat();
    let model = field(7, &field(5, &tensor));
    let e = Model::from_onnx_bytes(env(), "ext", "1", &model, 1).unwrap_err();
    assert!(e.to_string().contains("external data"), "{e}");
    // The demo models are self-contained.
    for name in ["breast-cancer", "credit-risk"] {
        let bytes = std::fs::read(repo().join(format!("models/demo/{name}.onnx"))).unwrap();
        assert_eq!(sealgate_models::onnx_scan::scan(&bytes), Ok(sealgate_models::onnx_scan::Scan::SelfContained));
    }
}

#[test]
fn answers_are_bounded_before_they_are_built() {
    let model = model("credit-risk");
    let rows = 4000;
    let many_rows = input(vec![rows, 20], DataType::Fp32, TensorData::Float(vec![0.5; rows as usize * 20]));

    // The same output named thousands of times is refused before anything runs.
    let mut repeated = many_rows.clone();
    repeated.outputs = Some(vec![RequestedOutput { name: "probabilities".into() }; 1000]);
    let msg = invalid(&model, &repeated);
    assert!(msg.contains("output 'probabilities' is requested more than once"), "{msg}");

    // An answer over the element cap is refused with a clear error, and nothing else breaks:
    // 4000 rows give 4000 labels + 8000 probabilities = 12000 values.
    match model.infer_limited(&many_rows, 11_999) {
        Err(ModelError::TooLarge(msg)) => assert!(msg.contains("12000") && msg.contains("11999"), "{msg}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let answer = model.infer_limited(&many_rows, 12_000).unwrap();
    assert_eq!(answer.outputs.iter().map(|o| o.data.len()).sum::<usize>(), 12_000);

    // Thousands of inputs: refused after looking at two of them.
    let one_row = input(vec![1, 20], DataType::Fp32, TensorData::Float(vec![0.5; 20]));
    let mut inputs = one_row.clone();
    inputs.inputs = (0..5000).map(|i| InputTensor { name: format!("in{i}"), ..one_row.inputs[0].clone() }).collect();
    inputs.inputs[0].name = "input".into();
    assert!(invalid(&model, &inputs).contains("no input 'in1'"));
}

#[test]
fn an_index_out_of_range_names_the_integer_input_and_never_the_value() {
    // tests/models/gather.onnx (models/make/make_test_models.py): an out-of-range index makes
    // ONNX Runtime fail (InvalidArgument) with a message that quotes the index.
    let bytes = std::fs::read(repo().join("tests/models/gather.onnx")).unwrap();
    let model = Model::from_onnx_bytes(env(), "gather", "1", &bytes, 1).unwrap();
    let request = |index: i64| InferenceRequest {
        id: None,
        inputs: vec![InputTensor {
            name: "index".into(),
            shape: vec![1],
            datatype: DataType::Int64,
            data: TensorData::Int(vec![index]),
        }],
        outputs: None,
    };
    match model.infer(&request(987_654_321)) {
        Err(e @ ModelError::InputValues { .. }) => {
            let text = e.to_string();
            assert!(text.contains("'index'") && !text.contains("987654"), "{text}");
        }
        other => panic!("expected the input values refused, got {other:?}"),
    }
    // The session went back to the pool: the (single-session) model still answers.
    let answer = model.infer(&request(1)).unwrap();
    assert_eq!(answer.outputs[0].data.as_f64().unwrap(), [1.5]);
}

/// Stacked requests get, each, the answer they get alone; ones that cannot be stacked (other
/// outputs asked for, a bad one among them) still get their own answer or their own error.
#[test]
fn a_batch_answers_each_request_as_it_would_be_answered_alone() {
    for name in ["credit-risk", "breast-cancer"] {
        let model = model(name);
        let whole = example(name);
        // One request per example row, plus the whole example (several rows) as one.
        let rows = whole.inputs[0].shape[0] as usize;
        let per_row = whole.inputs[0].data.len() / rows;
        let row = |i: usize| {
            let mut r = whole.clone();
            r.id = Some(format!("row-{i}"));
            r.inputs[0].shape[0] = 1;
            r.inputs[0].data = match &whole.inputs[0].data {
                TensorData::Float(v) => TensorData::Float(v[i * per_row..(i + 1) * per_row].to_vec()),
                TensorData::Int(v) => TensorData::Int(v[i * per_row..(i + 1) * per_row].to_vec()),
                TensorData::Bool(v) => TensorData::Bool(v[i * per_row..(i + 1) * per_row].to_vec()),
            };
            r
        };
        let mut requests: Vec<InferenceRequest> = (0..rows).map(row).collect();
        requests.push(whole.clone());
        assert!(model.stacks(&requests), "{name}: rows of one shape stack");
        let mut other_outputs = row(1);
        other_outputs.outputs = Some(vec![sealgate_protocol::inference::RequestedOutput { name: "x".into() }]);
        assert!(!model.stacks(&[row(0), other_outputs]), "{name}: other outputs asked for do not");
        let alone: Vec<_> = requests.iter().map(|r| model.infer_limited(r, 1 << 20).unwrap()).collect();
        let batched: Vec<_> = model.infer_batch(&requests, 1 << 20).into_iter().map(Result::unwrap).collect();
        for (a, b) in alone.iter().zip(&batched) {
            assert_eq!(a.id, b.id, "{name}");
            for (x, y) in a.outputs.iter().zip(&b.outputs) {
                assert_eq!((&x.name, &x.shape, x.datatype), (&y.name, &y.shape, y.datatype), "{name}");
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                for (p, q) in x.iter().zip(&y) {
                    assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{name}: {p} alone, {q} stacked");
                }
            }
        }
        // A bad request among them: it alone gets the error.
        let mut bad = row(0);
        bad.inputs[0].shape = vec![1, 3];
        bad.inputs[0].data = TensorData::Float(vec![0.0; 3]);
        let answers = model.infer_batch(&[row(0), bad, row(1)], 1 << 20);
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{name}");
        assert!(matches!(answers[1], Err(sealgate_models::ModelError::InvalidInput(_))), "{name}: {:?}", answers[1]);
        // The per-answer cap holds for each stacked answer.
        let capped = model.infer_batch(&[row(0), whole.clone()], 3);
        assert!(capped[0].is_ok() && capped[1].is_err(), "{name}: {capped:?}");
    }
}

//! Models with external data files built from memory, through the real ONNX Runtime
//! (tests/models/external/, made by models/make/make_external_models.py):
//!
//! - ONNX Runtime copies the external files while the session is built: the buffers are
//!   wiped right after, and the model still answers what the weights say (computed here
//!   from the plaintext files, independently of ONNX Runtime);
//! - a model that needs files it was not given is refused, with the reason;
//! - ONNX Runtime's external-data folder set to an empty directory makes a reference that a
//!   scan could miss fail closed: the same model loads when the folder holds the file.
//!
//! Needs the ONNX Runtime library: `ORT_DYLIB_PATH`, as `cargo xtask test` sets it.

use std::path::{Path, PathBuf};

use sealgate_models::external::{EXTERNAL_DATA_FOLDER_KEY, with_files_in_memory};
use sealgate_models::{Model, ModelFiles, runtime};
use sealgate_protocol::inference::{DataType, InferenceRequest, InputTensor, TensorData};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    repo().join("tests/models/external")
}

fn env() -> &'static ort::environment::Environment {
    let library =
        std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).unwrap_or_else(|| runtime::installed_library(&repo()));
    runtime::environment(&library).expect("ONNX Runtime library (run `cargo xtask setup`)")
}

fn floats(bytes: &[u8], offset: usize, count: usize) -> Vec<f64> {
    bytes[offset..offset + 4 * count].chunks(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect()
}

/// y = (relu(x @ w1 + b1) @ w2 + b2) * 1.0, from the fixture's files (w1 [16,32] at 0 and
/// b1 [32] at 4096 in weights/layer1.bin; w2 [32,4] at 0 and b2 [4] at 512 in layer2.bin).
fn expected(layer1: &[u8], layer2: &[u8], x: &[f64]) -> Vec<f64> {
    let (w1, b1) = (floats(layer1, 0, 16 * 32), floats(layer1, 4096, 32));
    let (w2, b2) = (floats(layer2, 0, 32 * 4), floats(layer2, 512, 4));
    let mut y = Vec::new();
    for row in x.chunks(16) {
        let h: Vec<f64> =
            (0..32).map(|j| (b1[j] + (0..16).map(|i| row[i] * w1[i * 32 + j]).sum::<f64>()).max(0.0)).collect();
        y.extend((0..4).map(|k| b2[k] + (0..32).map(|j| h[j] * w2[j * 4 + k]).sum::<f64>()));
    }
    y
}

fn request(x: &[f64]) -> InferenceRequest {
    InferenceRequest {
        id: None,
        inputs: vec![InputTensor {
            name: "x".into(),
            shape: vec![(x.len() / 16) as u64, 16],
            datatype: DataType::Fp32,
            data: TensorData::Float(x.to_vec()),
        }],
        outputs: None,
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn external_files_are_copied_when_the_session_is_built() {
    let mlp = fixtures().join("mlp");
    let onnx = read(&mlp.join("mlp.onnx"));
    let (mut layer1, mut layer2) = (read(&mlp.join("weights/layer1.bin")), read(&mlp.join("layer2.bin")));
    let (keep1, keep2) = (layer1.clone(), layer2.clone());
    let empty = tempfile::tempdir().unwrap();
    let model = {
        let external = [("weights/layer1.bin", &layer1[..]), ("layer2.bin", &layer2[..])];
        let files = ModelFiles { onnx: &onnx, external: &external, empty_dir: Some(empty.path()) };
        Model::from_files(env(), "mlp", "1", &files, 2, [0; 32]).unwrap()
    };
    // What the gateway does with its locked buffer once the sessions exist.
    layer1.fill(0);
    layer2.fill(0);
    drop((layer1, layer2));
    let x: Vec<f64> = (0..48).map(|i| f64::from((i * 37) % 101) / 50.0 - 1.0).collect();
    let answer = model.infer(&request(&x)).unwrap();
    let TensorData::Float(y) = &answer.outputs[0].data else { panic!("{answer:?}") };
    let want = expected(&keep1, &keep2, &x);
    assert_eq!(y.len(), want.len());
    assert!(want.iter().any(|v| v.abs() > 1e-3), "a fixture whose answer is all zeros proves nothing");
    for (got, want) in y.iter().zip(&want) {
        assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{got} vs {want}");
    }
}

#[test]
fn a_model_given_too_few_or_too_many_files_is_refused() {
    let mlp = fixtures().join("mlp");
    let onnx = read(&mlp.join("mlp.onnx"));
    let (layer1, layer2) = (read(&mlp.join("weights/layer1.bin")), read(&mlp.join("layer2.bin")));
    type Files<'a> = &'a [(&'a str, &'a [u8])];
    let cases: [(Files<'_>, &str); 4] = [
        (&[], "references external data files, which only a version-2 sealed artifact carries"),
        (&[("weights/layer1.bin", &layer1)], "needs external file 'layer2.bin', which the artifact does not hold"),
        (
            &[("weights/layer1.bin", &layer1[..100]), ("layer2.bin", &layer2)],
            "reads past the end of external file 'weights/layer1.bin' (100 bytes)",
        ),
        (
            &[("weights/layer1.bin", &layer1), ("layer2.bin", &layer2), ("x.bin", &layer2)],
            "external file 'x.bin' is not referenced by the model",
        ),
    ];
    for (external, needle) in cases {
        let files = ModelFiles { onnx: &onnx, external, empty_dir: None };
        let e = Model::from_files(env(), "mlp", "1", &files, 1, [0; 32]).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
}

/// The function-attribute fixture keeps a tensor in `fn.bin` as a `FunctionProto`
/// attribute default: ONNX Runtime reads it from its external-data folder even when the
/// files are supplied in memory. Pointed at the fixture's folder it loads (the reference is
/// live); pointed at an empty folder, as the gateway always does, it fails.
#[test]
fn a_reference_the_scan_could_miss_finds_only_an_empty_folder() {
    let dir = fixtures().join("function-attr");
    let onnx = read(&dir.join("model.onnx"));
    let fn_bin = read(&dir.join("fn.bin"));
    let build = |folder: &Path| {
        let builder = ort::session::Session::builder(env())
            .unwrap()
            .with_config_entry(EXTERNAL_DATA_FOLDER_KEY, folder.to_string_lossy())
            .unwrap();
        with_files_in_memory(builder, &[("fn.bin", &fn_bin)]).unwrap().commit_from_memory(&onnx)
    };
    assert!(build(&dir).is_ok(), "the fixture's reference is not live: the test proves nothing");
    let empty = tempfile::tempdir().unwrap();
    assert!(build(empty.path()).is_err(), "ONNX Runtime read an external file although its folder is empty");
    // And the scan refuses it before ONNX Runtime sees it.
    let files = ModelFiles { onnx: &onnx, external: &[("fn.bin", &fn_bin)], empty_dir: Some(empty.path()) };
    let e = Model::from_files(env(), "f", "1", &files, 1, [0; 32]).unwrap_err().to_string();
    assert!(e.contains("in a function attribute default stores its data in external file 'fn.bin'"), "{e}");
}

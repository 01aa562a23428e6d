//! Models with external data files through the real `sealgate` binary: one version-2
//! artifact holding the model and every file it references, sealed, verified and served
//! from memory (answers equal to Python onnxruntime on the plaintext files, no plaintext on
//! disk, ONNX Runtime's external-data folder left empty), and every bad input of the issue:
//! an external file swapped for another artifact's, truncated, reordered or missing; a
//! header that lists a file twice; locations that leave the model's folder (`../`, absolute,
//! symlink) or a file missing at seal time; version 1 (still served; refused for a model
//! with external data); an external tensor as a `FunctionProto` attribute default.
//!
//! The fixtures are made by `models/make/make_external_models.py` (tests/models/external/).

use std::fs;
use std::path::{Path, PathBuf};

use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, TensorData};
use sealgate_test_support::{
    CliOutput, Gateway, GatewayOptions, SealedLayout, assert_no_plaintext, demo_model_path, onnxruntime_outputs,
    repo_root, sealgate,
};

use crate::SEALGATE;

/// A test's own directory: a data dir and copies of the fixtures.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let ws = Self { dir: tempfile::Builder::new().prefix("sealgate-external-").tempdir().unwrap() };
        let data = ws.data();
        sealgate(SEALGATE, ["kms", "--data-dir", utf8(&data), "create", "k1"]).assert_success();
        ws
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// Copies the fixture folder `name` (and `outside.bin` next to it) into the workspace.
    fn fixture(&self, name: &str) -> PathBuf {
        let from = fixtures().join(name);
        let to = self.path("fixtures").join(name);
        copy_dir(&from, &to);
        fs::copy(fixtures().join("outside.bin"), self.path("fixtures").join("outside.bin")).unwrap();
        to
    }

    fn seal(&self, input: &Path, output: &Path, extra: &[&str]) -> CliOutput {
        let data = self.data();
        let mut args = vec!["seal", "--data-dir", utf8(&data), "--kms", "local", "--key-id", "k1"];
        args.extend_from_slice(&["--model", "mlp", "--version", "1", "--frame-size", "4096"]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&[utf8(input), "-o", utf8(output)]);
        sealgate(SEALGATE, args)
    }

    fn verify(&self, file: &Path) -> CliOutput {
        let data = self.data();
        sealgate(SEALGATE, ["verify", "--data-dir", utf8(&data), utf8(file)])
    }

    /// A models folder holding only `bytes` as `mlp.sealed`.
    fn models_with(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.path(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("mlp.sealed"), bytes).unwrap();
        dir
    }

    fn options(&self, models: &Path) -> GatewayOptions {
        GatewayOptions::new(SEALGATE).data_dir(self.data()).models(models)
    }
}

fn fixtures() -> PathBuf {
    repo_root().join("tests/models/external")
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn request(rows: usize) -> InferenceRequest {
    let data: Vec<f64> = (0..rows * 16).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0).collect();
    InferenceRequest {
        id: None,
        inputs: vec![InputTensor {
            name: "x".into(),
            shape: vec![rows as u64, 16],
            datatype: DataType::Fp32,
            data: TensorData::Float(data),
        }],
        outputs: None,
    }
}

/// The weights of the fixture (both external files), for the scans for plaintext on disk.
fn weights(mlp: &Path) -> Vec<Vec<u8>> {
    vec![fs::read(mlp.join("weights/layer1.bin")).unwrap(), fs::read(mlp.join("layer2.bin")).unwrap()]
}

#[tokio::test]
async fn a_model_with_external_data_is_sealed_verified_and_served_as_python_onnxruntime_runs_it() {
    let ws = Workspace::new();
    let mlp = ws.fixture("mlp");
    let sealed = ws.path("mlp.sealed");
    ws.seal(&mlp.join("mlp.onnx"), &sealed, &[])
        .assert_success()
        .assert_stdout_contains("with 2 external data file(s) as mlp@1")
        .assert_stdout_contains("(format 2,");
    let layout = SealedLayout::parse(&fs::read(&sealed).unwrap());
    let names: Vec<&str> = layout.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["mlp.onnx", "weights/layer1.bin", "layer2.bin"]);
    assert_eq!(layout.files[1].1, fs::metadata(mlp.join("weights/layer1.bin")).unwrap().len());
    let verified = ws.verify(&sealed);
    verified.assert_success().assert_stdout_contains("format 2, 3 file(s)");
    verified.assert_stdout_contains("  weights/layer1.bin 4224 bytes sha256 ");

    // Served from a folder that holds the artifact only: the weights can come from nowhere
    // but the artifact.
    let models = ws.path("models");
    fs::create_dir_all(&models).unwrap();
    fs::copy(&sealed, models.join("mlp.sealed")).unwrap();
    let gateway = Gateway::start(ws.options(&models));
    let req = request(3);
    let answer = gateway.client().infer("mlp", &req).await.unwrap_or_else(|e| panic!("{e}\n{}", gateway.logs()));
    let reference = onnxruntime_outputs(&mlp.join("mlp.onnx"), &req).await;
    let y = &answer.outputs[0];
    assert_eq!((y.name.as_str(), &y.shape), ("y", &reference["y"].shape));
    let TensorData::Float(values) = &y.data else { panic!("y is not a float tensor: {y:?}") };
    assert_eq!(values.len(), 12);
    for (got, want) in values.iter().zip(&reference["y"].data) {
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "gateway {got} vs onnxruntime {want}");
    }
    assert!(gateway.logs().contains("loaded sealed model") && gateway.logs().contains("files=3"), "{}", gateway.logs());
    // ONNX Runtime's external-data folder exists, is read-only and stays empty.
    let empty = ws.data().join("no-external-data");
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&empty).unwrap().permissions().mode() & 0o777, 0o555);
    gateway.stop();
    for w in weights(&mlp) {
        assert_no_plaintext(&ws.data(), &w);
        assert_no_plaintext(&models, &w);
    }
}

/// The artifact's bytes with the body's plaintext range of file `index` taken from `other`
/// (another artifact of the same files under another data key).
fn with_file_from(bytes: &[u8], other: &[u8], index: usize) -> Vec<u8> {
    let layout = SealedLayout::parse(bytes);
    let range = layout.file_range(index);
    let frame = layout.frame_size as u64;
    let mut out = bytes.to_vec();
    // Every frame that holds part of the file, ciphertext and tag, from the other artifact.
    for (i, frame_range) in layout.frames.iter().enumerate() {
        let (start, end) = (i as u64 * frame, (i as u64 + 1) * frame);
        if start < range.end && range.start < end {
            out[frame_range.clone()].copy_from_slice(&other[frame_range.clone()]);
        }
    }
    out
}

/// The header's files section rewritten to list `names` (with the sizes and digests of the
/// files at `order`); the MAC is left as it was.
fn relisted(bytes: &[u8], order: &[usize], names: &[&str]) -> Vec<u8> {
    let layout = SealedLayout::parse(bytes);
    let entry_start = |i: usize| layout.files[i].2 - layout.files[i].0.len() - 2;
    let start = entry_start(0) - 2;
    let last = layout.files.len() - 1;
    let end = layout.files[last].2 + 8 + 32;
    let mut out = bytes[..start].to_vec();
    out.extend_from_slice(&(order.len() as u16).to_be_bytes());
    for (&i, name) in order.iter().zip(names) {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&bytes[layout.files[i].2..layout.files[i].2 + 40]);
    }
    out.extend_from_slice(&bytes[end..]);
    out
}

#[tokio::test]
async fn tampered_multi_file_artifacts_are_refused_by_verify_and_serve() {
    let ws = Workspace::new();
    let mlp = ws.fixture("mlp");
    let (a, b) = (ws.path("a.sealed"), ws.path("b.sealed"));
    ws.seal(&mlp.join("mlp.onnx"), &a, &[]).assert_success();
    ws.seal(&mlp.join("mlp.onnx"), &b, &[]).assert_success();
    let (a, b) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let layout = SealedLayout::parse(&a);
    assert!(layout.frames.len() >= 2, "the fixture spans two frames of 4 KiB");
    let body = layout.body;
    let full = layout.frame_size + 16;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("an external file swapped for another artifact's", with_file_from(&a, &b, 2), "failed authentication"),
        (
            "the final frame cut short (a truncated file)",
            a[..a.len() - 100].to_vec(),
            "the body holds 5142 bytes of plaintext but the header lists 3 file(s) of 5242 bytes",
        ),
        (
            "the body's frames reordered",
            [&a[..body], &a[body + full..], &a[body..body + full]].concat(),
            "failed authentication",
        ),
        (
            "the listed files reordered",
            relisted(&a, &[0, 2, 1], &["mlp.onnx", "layer2.bin", "weights/layer1.bin"]),
            "header MAC mismatch",
        ),
        (
            "a file missing from the list",
            relisted(&a, &[0, 1], &["mlp.onnx", "weights/layer1.bin"]),
            "header MAC mismatch",
        ),
        (
            "a frame missing (a file cut from the body)",
            [&a[..body], &a[body + full..]].concat(),
            "file(s) of 5242 bytes",
        ),
        (
            "a header that lists a file twice",
            relisted(&a, &[0, 1, 2], &["mlp.onnx", "weights/layer1.bin", "weights/layer1.bin"]),
            "malformed artifact header: a file is listed twice",
        ),
    ];
    let total: u64 = layout.files.iter().map(|f| f.1).sum();
    assert_eq!(total, 5242, "the fixture's size, which the expected messages quote");
    for (what, bytes, needle) in cases {
        let file = ws.path("tampered.sealed");
        fs::write(&file, &bytes).unwrap();
        let verified = ws.verify(&file);
        assert!(!verified.success(), "verify accepted {what}");
        assert!(verified.text().contains(needle), "{what}: verify said\n{}", verified.text());
        let models = ws.models_with("tampered-models", &bytes);
        let failed = Gateway::start_expecting_failure(ws.options(&models));
        assert!(failed.text().contains(needle), "{what}: serve said\n{}", failed.text());
        fs::remove_dir_all(&models).unwrap();
    }
    for w in weights(&mlp) {
        assert_no_plaintext(&ws.data(), &w);
    }
}

#[test]
fn external_files_that_leave_the_folder_or_are_missing_are_refused_at_seal() {
    let ws = Workspace::new();
    let symlink = ws.fixture("symlink");
    std::os::unix::fs::symlink("../outside.bin", symlink.join("link.bin")).unwrap();
    let absolute = Path::new("/tmp/sealgate-absolute-weights.bin");
    if !absolute.exists() {
        fs::copy(fixtures().join("outside.bin"), absolute).unwrap();
    }
    let cases = [
        ("escape-dotdot", "external data file '../outside.bin' is an empty, '.' or '..' path component"),
        ("escape-absolute", "external data file '/tmp/sealgate-absolute-weights.bin' is an absolute path"),
        ("symlink", "external data file 'link.bin' leads out of the model's folder (a symbolic link to"),
        ("missing", "external data file 'absent.bin' cannot be read"),
        ("function-attr", "in a function attribute default stores its data in external file 'fn.bin'"),
    ];
    for (fixture, needle) in cases {
        let dir = if fixture == "symlink" { symlink.clone() } else { ws.fixture(fixture) };
        let output = ws.path(&format!("{fixture}.sealed"));
        ws.seal(&dir.join("model.onnx"), &output, &[]).assert_failure(needle);
        assert!(!output.exists() && !output.with_extension("sealed.partial").exists(), "{fixture}: output left");
    }
    // Refused before any key was used: `sealgate seal` left no entry in the audit log.
    let audit = fs::read_to_string(ws.data().join("audit.log")).unwrap_or_default();
    assert!(!audit.contains("sealgate seal"), "a refused seal used a key:\n{audit}");
}

#[tokio::test]
async fn version_1_still_serves_and_cannot_hold_external_data() {
    let ws = Workspace::new();
    let mlp = ws.fixture("mlp");
    let refused = ws.path("mlp-v1.sealed");
    ws.seal(&mlp.join("mlp.onnx"), &refused, &["--format-version", "1"])
        .assert_failure("references 2 external data file(s), which a version-1 artifact cannot hold");
    assert!(!refused.exists());
    ws.seal(&mlp.join("mlp.onnx"), &refused, &["--format-version", "3"]).assert_failure("--format-version");

    // A self-contained model sealed as version 1 is served as before.
    let v1 = ws.path("models/credit-risk.sealed");
    fs::create_dir_all(v1.parent().unwrap()).unwrap();
    let data = ws.data();
    sealgate(
        SEALGATE,
        [
            "seal",
            "--data-dir",
            utf8(&data),
            "--kms",
            "local",
            "--key-id",
            "k1",
            "--model",
            "credit-risk",
            "--version",
            "1",
            "--format-version",
            "1",
            utf8(&demo_model_path("credit-risk")),
            "-o",
            utf8(&v1),
        ],
    )
    .assert_success()
    .assert_stdout_contains("(format 1,");
    assert_eq!(SealedLayout::parse(&fs::read(&v1).unwrap()).version, 1);
    let gateway = Gateway::start(ws.options(v1.parent().unwrap()));
    let example = sealgate_test_support::example_request("credit-risk");
    let answer = gateway.client().infer("credit-risk", &example).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sealgate_test_support::labels(&answer), sealgate_test_support::EXAMPLE_LABELS);
}

/// Artifacts made with the library, as another tool could make them, that `sealgate seal`
/// would refuse: the gateway refuses them too, at start, with the reason.
#[test]
fn models_that_seal_refuses_are_refused_at_serve_too() {
    use sealgate_models::artifact::{self, PlainFile, SealRequest, format};
    use sealgate_models::kms::customer::CustomerKey;

    let ws = Workspace::new();
    let key_bytes = [7u8; 32];
    let key_file = ws.path("customer.key");
    fs::write(&key_file, hex::encode(key_bytes)).unwrap();
    let key = CustomerKey::from_bytes(&key_bytes).unwrap();
    let mlp = fixtures().join("mlp");
    let function = fixtures().join("function-attr");
    let read = |p: PathBuf| fs::read(p).unwrap();
    let (mlp_onnx, layer1, layer2) =
        (read(mlp.join("mlp.onnx")), read(mlp.join("weights/layer1.bin")), read(mlp.join("layer2.bin")));
    let (fn_onnx, fn_bin) = (read(function.join("model.onnx")), read(function.join("fn.bin")));
    let file = |name, bytes| PlainFile { name, bytes };
    let cases: Vec<(&str, u8, Vec<PlainFile<'_>>, &str)> = vec![
        (
            "a model with external data sealed as version 1",
            format::VERSION_1,
            vec![file("mlp.onnx", &mlp_onnx)],
            "references external data files, which only a version-2 sealed artifact carries",
        ),
        (
            "a version 2 artifact without one of the model's files",
            format::VERSION_2,
            vec![file("mlp.onnx", &mlp_onnx), file("weights/layer1.bin", &layer1)],
            "needs external file 'layer2.bin', which the artifact does not hold",
        ),
        (
            "a version 2 artifact with a file the model does not reference",
            format::VERSION_2,
            vec![
                file("mlp.onnx", &mlp_onnx),
                file("weights/layer1.bin", &layer1),
                file("layer2.bin", &layer2),
                file("extra.bin", &layer2),
            ],
            "external file 'extra.bin' is not referenced by the model",
        ),
        (
            "an external tensor as a FunctionProto attribute default, its file included",
            format::VERSION_2,
            vec![file("model.onnx", &fn_onnx), file("fn.bin", &fn_bin)],
            "in a function attribute default stores its data in external file 'fn.bin'",
        ),
    ];
    for (what, version, files, needle) in cases {
        let request =
            SealRequest { model: "mlp", version: "1", primary: (&key, ""), recovery: vec![], frame_size: 4096 };
        let mut sealed = Vec::new();
        artifact::seal_files(&request, version, &files, &mut sealed, |_| {}).unwrap();
        let models = ws.models_with("library-models", &sealed);
        let failed = Gateway::start_expecting_failure(ws.options(&models).args(["--customer-key", utf8(&key_file)]));
        assert!(failed.text().contains(needle), "{what}: serve said\n{}", failed.text());
        fs::remove_dir_all(&models).unwrap();
    }
}

//! Sealed model artifacts through the real `sealgate` binary: `seal` and `verify` with a
//! local key, every kind of tampering refused by both `verify` and `serve`, artifacts
//! renamed to pose as another model, disabled and pending-deletion keys, the audit log and
//! its tamper evidence, plaintext models, immutable published versions, `rewrap` after
//! rotation and with a recovery key, and the embedded development default.
//!
//! Every refusal is checked for its message, a non-zero exit, a gateway that never prints
//! `listening`, no plaintext model bytes on disk and, where a key was used, a `refused:`
//! line in an audit log that still verifies. Each test has its own temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use sealgate_test_support::{
    CliOutput, DEMO_MODELS, EXAMPLE_LABELS, FailedStart, Gateway, GatewayOptions, SealedLayout, assert_audit_intact,
    assert_no_plaintext, audit_entries, demo_model_path, example_request, labels, list_files, sealgate,
};

use crate::SEALGATE;

const CREDIT_RISK: &str = "credit-risk";

/// A test's temporary directory with a data dir inside.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self { dir: tempfile::Builder::new().prefix("sealgate-sealed-").tempdir().unwrap() }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.root().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// A new models folder `name` holding `bytes` as `file_name`.
    fn models_dir(&self, name: &str, file_name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.path(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file_name), bytes).unwrap();
        dir
    }

    /// `sealgate kms --data-dir DATA ARGS...`
    fn kms(&self, args: &[&str]) -> CliOutput {
        let data = self.data();
        let mut all = vec!["kms", "--data-dir", utf8(&data)];
        all.extend_from_slice(args);
        sealgate(SEALGATE, all)
    }

    /// `sealgate seal --data-dir DATA --model M --version V INPUT -o OUTPUT EXTRA...`
    fn seal(&self, input: &Path, output: &Path, model: &str, version: &str, extra: &[&str]) -> CliOutput {
        let data = self.data();
        let mut args = vec!["seal", "--data-dir", utf8(&data), "--model", model, "--version", version];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[utf8(input), "-o", utf8(output)]);
        sealgate(SEALGATE, args)
    }

    /// `sealgate verify --data-dir DATA FILE EXTRA...`
    fn verify(&self, file: &Path, extra: &[&str]) -> CliOutput {
        let data = self.data();
        let mut args = vec!["verify", "--data-dir", utf8(&data), utf8(file)];
        args.extend_from_slice(extra);
        sealgate(SEALGATE, args)
    }

    /// `sealgate serve --data-dir DATA --models MODELS`, which must refuse to start.
    fn serve_refuses(&self, models: &Path) -> FailedStart {
        Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).data_dir(self.data()).models(models))
    }

    /// `sealgate serve --data-dir DATA --models MODELS`, which must start.
    fn serve(&self, models: &Path) -> Gateway {
        Gateway::start(GatewayOptions::new(SEALGATE).data_dir(self.data()).models(models))
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn credit_risk_onnx() -> Vec<u8> {
    fs::read(demo_model_path(CREDIT_RISK)).unwrap()
}

/// A workspace with the local key `k1` and credit-risk sealed under it (4 KiB frames, so
/// the model spans 14 frames) as `credit-risk.sealed`.
fn sealed_credit_risk() -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    ws.kms(&["create", "k1"]).assert_success().assert_stdout_contains("created local key 'k1'");
    let sealed = ws.path("credit-risk.sealed");
    ws.seal(&demo_model_path(CREDIT_RISK), &sealed, CREDIT_RISK, "1", &["--kms", "local", "--key-id", "k1"])
        .assert_success();
    (ws, sealed)
}

/// The example of `example_model` through `model` on `gateway` classifies as documented.
async fn assert_serves(gateway: &Gateway, model: &str, example_model: &str) {
    let response = gateway
        .client()
        .infer(model, &example_request(example_model))
        .await
        .unwrap_or_else(|e| panic!("inference on {model} failed: {e}\n{}", gateway.logs()));
    assert_eq!(labels(&response), EXAMPLE_LABELS, "labels of the {example_model} example on {model}");
}

/// The audit entries whose result is a refusal.
fn refusals(data: &Path) -> Vec<serde_json::Value> {
    audit_entries(data).into_iter().filter(|e| e["result"].as_str().unwrap_or("").starts_with("refused: ")).collect()
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

/// The artifact with its frames replaced by `frames` (indices into the original frames).
fn with_frames(bytes: &[u8], layout: &SealedLayout, frames: &[usize]) -> Vec<u8> {
    let mut out = bytes[..layout.body].to_vec();
    for &i in frames {
        out.extend_from_slice(&bytes[layout.frames[i].clone()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_then_verify_and_serve_with_a_created_local_key() {
    let (ws, sealed) = sealed_credit_risk();
    let plaintext = credit_risk_onnx();
    let bytes = fs::read(&sealed).unwrap();
    assert!(!ws.path("credit-risk.sealed.partial").exists(), "the partial file is renamed into place");

    let layout = SealedLayout::parse(&bytes);
    assert_eq!(layout.context_value("model"), Some(CREDIT_RISK));
    assert_eq!(layout.context_value("version"), Some("1"));
    assert_eq!(layout.wrapped_keys.len(), 1);
    assert_eq!((layout.wrapped_keys[0].0.as_str(), layout.wrapped_keys[0].1.as_str()), ("local", "k1"));
    assert_eq!(layout.frame_size, 1 << 20, "the default frame size");
    assert_eq!(layout.frames.len(), 1, "a 55 KB model fits in the final frame");

    let output = ws.verify(&sealed, &["--model", CREDIT_RISK, "--version", "1"]);
    output.assert_success().assert_stdout_contains("ok:");
    let summary = format!("is {CREDIT_RISK}@1 (format 2, 1 file(s), {} bytes", plaintext.len());
    assert!(output.stdout.contains(&summary), "{}", output.text());
    assert!(output.stdout.contains("opened with local:k1"), "{}", output.text());

    // Neither the artifact nor anything else the commands wrote holds a piece of the model.
    assert_no_plaintext(ws.root(), &plaintext);

    let gateway = ws.serve(&ws.models_dir("models", "credit-risk.sealed", &bytes));
    assert_serves(&gateway, CREDIT_RISK, CREDIT_RISK).await;
    gateway.stop();
    assert_no_plaintext(ws.root(), &plaintext);
    let published = fs::read_to_string(ws.data().join("published-models.json")).unwrap();
    assert!(published.contains("credit-risk@1"), "{published}");

    let ops: Vec<String> =
        audit_entries(&ws.data()).iter().map(|e| format!("{} {}", e["op"], e["result"]).replace('"', "")).collect();
    for wanted in ["create ok", "generate ok", "unwrap ok"] {
        assert!(ops.iter().any(|o| o == wanted), "no '{wanted}' in the audit log: {ops:?}");
    }
    assert_audit_intact(SEALGATE, &ws.data());
}

#[test]
fn tampered_artifacts_are_refused_by_verify_and_serve() {
    let ws = Workspace::new();
    ws.kms(&["create", "k1"]).assert_success();
    let sealed = ws.path("original.sealed");
    let input = demo_model_path(CREDIT_RISK);
    let key = ["--kms", "local", "--key-id", "k1", "--frame-size", "4096"];
    ws.seal(&input, &sealed, CREDIT_RISK, "1", &key).assert_success();
    let bytes = fs::read(&sealed).unwrap();
    let plaintext = credit_risk_onnx();
    let layout = SealedLayout::parse(&bytes);
    let frames = layout.frames.len();
    assert_eq!(frames, 14, "54915 bytes in 4 KiB frames: 13 full frames and a final one");
    let last = frames - 1;
    let all: Vec<usize> = (0..frames).collect();

    // The same model sealed as version 2: its key section, spliced into version 1, asks the
    // KMS to unwrap a data key under the wrong encryption context.
    let other = ws.path("other.sealed");
    ws.seal(&input, &other, CREDIT_RISK, "2", &key).assert_success();
    let other_bytes = fs::read(&other).unwrap();
    let other_layout = SealedLayout::parse(&other_bytes);
    let mut spliced = bytes[..layout.key_section].to_vec();
    spliced.extend_from_slice(&other_bytes[other_layout.key_section..other_layout.header_mac]);
    spliced.extend_from_slice(&bytes[layout.header_mac..]);

    let (_, _, wrapped) = &layout.wrapped_keys[0];
    let mut swapped = all.clone();
    swapped.swap(1, 2);
    let mut duplicated = all.clone();
    duplicated.insert(2, 1);
    let mut dropped = all.clone();
    dropped.remove(3);
    let mut appended = bytes.clone();
    appended.push(0);

    // Version 2 lists the file's size: a body that holds more or less is refused before any
    // frame is decrypted.
    let body_holds = |n: usize| {
        format!("the body holds {n} bytes of plaintext but the header lists 1 file(s) of {} bytes", plaintext.len())
    };
    // (case, tampered bytes, what verify and serve must say, whether the KMS refused)
    let cases: Vec<(&str, Vec<u8>, String, bool)> = vec![
        ("bit flip in the message id (header byte 20)", flip(&bytes, 20), "key commitment mismatch".into(), false),
        (
            "bit flip in the model name (header context)",
            flip(&bytes, layout.model_name_at),
            "the data key could not be unwrapped".into(),
            true,
        ),
        (
            "bit flip in the wrapped key",
            flip(&bytes, wrapped.start + wrapped.len() / 2),
            "the data key could not be unwrapped".into(),
            true,
        ),
        ("bit flip in the header MAC", flip(&bytes, layout.header_mac + 5), "header MAC mismatch".into(), false),
        ("wrapped key of another version spliced in", spliced, "the data key could not be unwrapped".into(), true),
        ("bit flip in the first frame", flip(&bytes, layout.body + 5), "frame 0 failed authentication".into(), false),
        (
            "bit flip in a middle frame",
            flip(&bytes, layout.frames[6].start + 100),
            "frame 6 failed authentication".into(),
            false,
        ),
        (
            "bit flip in the final frame's last byte",
            flip(&bytes, bytes.len() - 1),
            format!("frame {last} failed authentication"),
            false,
        ),
        ("truncated by 100 bytes", bytes[..bytes.len() - 100].to_vec(), body_holds(plaintext.len() - 100), false),
        (
            "truncated before the final frame",
            bytes[..layout.frames[last].start].to_vec(),
            "the artifact is truncated".into(),
            false,
        ),
        ("truncated inside the header", bytes[..100].to_vec(), "the artifact is truncated".into(), false),
        ("one byte appended", appended, body_holds(plaintext.len() + 1), false),
        (
            "frames 1 and 2 swapped",
            with_frames(&bytes, &layout, &swapped),
            "frame 1 failed authentication".into(),
            false,
        ),
        ("frame 1 duplicated", with_frames(&bytes, &layout, &duplicated), body_holds(plaintext.len() + 4096), false),
        ("frame 3 removed", with_frames(&bytes, &layout, &dropped), body_holds(plaintext.len() - 4096), false),
    ];

    for (i, (case, tampered, expected, kms_refused)) in cases.iter().enumerate() {
        let before = refusals(&ws.data()).len();
        let file = ws.path(&format!("tampered-{i}.sealed"));
        fs::write(&file, tampered).unwrap();
        let output = ws.verify(&file, &[]);
        assert!(!output.success(), "{case}: verify accepted it:\n{}", output.text());
        assert!(output.stderr.contains("failed verification"), "{case}:\n{}", output.text());
        assert!(output.stderr.contains(expected.as_str()), "{case}: expected '{expected}':\n{}", output.text());
        assert!(!output.stdout.contains("ok:"), "{case}:\n{}", output.text());

        let models = ws.models_dir(&format!("models-{i}"), "credit-risk.sealed", tampered);
        let failed = ws.serve_refuses(&models);
        let error = failed.error();
        let refusing = format!("error: refusing {}: ", models.join("credit-risk.sealed").display());
        assert!(error.starts_with(&refusing), "{case}: expected '{refusing}...':\n{}", failed.text());
        assert!(error.contains(expected.as_str()), "{case}: serve should say '{expected}':\n{}", failed.text());
        assert!(!failed.stderr.contains("loaded sealed model"), "{case}: loaded:\n{}", failed.text());

        if *kms_refused {
            // verify and serve each asked the KMS once, and both refusals are on record.
            let after = refusals(&ws.data());
            assert_eq!(after.len(), before + 2, "{case}: refusals in the audit log: {after:#?}");
            for entry in &after[before..] {
                assert_eq!(entry["op"], "unwrap", "{case}: {entry}");
                assert_eq!(entry["key_id"], "k1", "{case}: {entry}");
                assert!(entry["result"].as_str().unwrap().contains("could not be unwrapped"), "{case}: {entry}");
            }
        }
    }
    // Nothing was ever loaded or published, and no plaintext reached the disk.
    assert!(!ws.data().join("published-models.json").exists(), "a refused start must not publish versions");
    assert_no_plaintext(ws.root(), &credit_risk_onnx());
    assert_audit_intact(SEALGATE, &ws.data());
    // The original still verifies: the refusals came from the tampering alone.
    ws.verify(&sealed, &[]).assert_success().assert_stdout_contains("ok:");
}

#[test]
fn an_artifact_renamed_to_pose_as_another_model_is_refused() {
    let (ws, sealed) = sealed_credit_risk();
    let bytes = fs::read(&sealed).unwrap();

    for (name, file) in [
        ("another model", "breast-cancer.sealed"),
        ("another version", "credit-risk@2.sealed"),
        ("another model and version", "breast-cancer@1.sealed"),
    ] {
        let models = ws.models_dir(&format!("models-{file}"), file, &bytes);
        let failed = ws.serve_refuses(&models);
        let error = failed.error();
        assert!(error.contains("renamed") && error.contains("pose"), "{name}:\n{}", failed.text());
        assert!(error.contains("the artifact holds model 'credit-risk' version '1'"), "{name}:\n{}", failed.text());
        assert!(!failed.stderr.contains("loaded sealed model"), "{name}:\n{}", failed.text());
    }

    ws.verify(&sealed, &["--model", "breast-cancer"])
        .assert_failure("holds model 'credit-risk', not 'breast-cancer' (--model)");
    ws.verify(&sealed, &["--version", "2"]).assert_failure("holds version '1', not '2' (--version)");
    assert!(!ws.data().join("published-models.json").exists(), "a refused start must not publish versions");
    assert_no_plaintext(ws.root(), &credit_risk_onnx());
    assert_audit_intact(SEALGATE, &ws.data());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_pending_deletion_keys_refuse_until_restored() {
    let (ws, sealed) = sealed_credit_risk();
    let models = ws.models_dir("models", "credit-risk.sealed", &fs::read(&sealed).unwrap());
    let state = |ws: &Workspace| ws.kms(&["list"]).assert_success().stdout.clone();

    // Disabled.
    ws.kms(&["disable", "k1"]).assert_success().assert_stdout_contains("disabled 'k1'");
    assert!(state(&ws).contains("k1\t1 version(s)\tdisabled"), "{}", state(&ws));
    ws.verify(&sealed, &[]).assert_failure("key 'k1' is disabled");
    ws.serve_refuses(&models).assert_stderr_contains("key 'k1' is disabled");
    ws.seal(&demo_model_path(CREDIT_RISK), &ws.path("new.sealed"), CREDIT_RISK, "2", &["--key-id", "k1"])
        .assert_failure("key 'k1' is disabled");
    assert!(!ws.path("new.sealed").exists() && !ws.path("new.sealed.partial").exists(), "no output when refused");

    ws.kms(&["enable", "k1"]).assert_success().assert_stdout_contains("enabled 'k1'");
    ws.verify(&sealed, &[]).assert_success().assert_stdout_contains("ok:");

    // Waiting periods outside 7 to 30 days are errors, and leave the key as it was.
    for days in ["6", "31"] {
        ws.kms(&["schedule-deletion", "k1", "--days", days]).assert_failure("must be 7 to 30 days");
    }
    assert!(state(&ws).contains("k1\t1 version(s)\tenabled"), "{}", state(&ws));

    // Pending deletion.
    ws.kms(&["schedule-deletion", "k1", "--days", "7"]).assert_success().assert_stdout_contains("cancel-deletion");
    assert!(state(&ws).contains("pending deletion"), "{}", state(&ws));
    ws.verify(&sealed, &[]).assert_failure("key 'k1' is pending deletion");
    ws.serve_refuses(&models).assert_stderr_contains("key 'k1' is pending deletion");
    ws.kms(&["enable", "k1"]).assert_failure("cancel the deletion first");

    // Cancelling leaves the key disabled; enabling makes it usable again.
    ws.kms(&["cancel-deletion", "k1"]).assert_success().assert_stdout_contains("the key is disabled");
    ws.verify(&sealed, &[]).assert_failure("key 'k1' is disabled");
    ws.kms(&["enable", "k1"]).assert_success();
    ws.verify(&sealed, &[]).assert_success().assert_stdout_contains("opened with local:k1");
    let gateway = ws.serve(&models);
    assert_serves(&gateway, CREDIT_RISK, CREDIT_RISK).await;
    gateway.stop();

    // Every refusal is on record, and the log still verifies.
    let refused: Vec<String> = refusals(&ws.data()).iter().map(|e| e["result"].as_str().unwrap().to_owned()).collect();
    for wanted in [
        "refused: key 'k1' is disabled",
        "refused: key 'k1' is pending deletion",
        "refused: invalid KMS request: the deletion waiting period must be 7 to 30 days, not 6",
        "refused: invalid KMS request: the deletion waiting period must be 7 to 30 days, not 31",
    ] {
        assert!(refused.iter().any(|r| r == wanted), "no '{wanted}' among the refusals: {refused:#?}");
    }
    let unwrap_refusals = refusals(&ws.data()).iter().filter(|e| e["op"] == "unwrap").count();
    assert!(unwrap_refusals >= 5, "verify x3 and serve x2 were refused: {unwrap_refusals}");
    assert_audit_intact(SEALGATE, &ws.data());
    assert_no_plaintext(ws.root(), &credit_risk_onnx());
}

#[test]
fn audit_verify_detects_edited_removed_and_reordered_lines() {
    let (ws, sealed) = sealed_credit_risk();
    ws.kms(&["disable", "k1"]).assert_success();
    ws.verify(&sealed, &[]).assert_failure("is disabled");
    ws.kms(&["enable", "k1"]).assert_success();
    ws.kms(&["rotate", "k1"]).assert_success();
    ws.verify(&sealed, &[]).assert_success();
    let entries = assert_audit_intact(SEALGATE, &ws.data());
    assert!(entries >= 7, "{entries} entries");
    let log = fs::read_to_string(ws.data().join("audit.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len() as u64, entries);
    assert!(lines.iter().any(|l| l.contains("\"result\":\"refused: ")), "{log}");
    let head = fs::read(ws.data().join("audit.head")).unwrap();

    // An audit log with `lines` (and the original head file) in a data dir of its own.
    let check = |name: &str, lines: &[String]| -> CliOutput {
        let dir = ws.path(name);
        sealgate_test_support::copy_audit_key(&ws.data(), &dir);
        fs::write(dir.join("audit.log"), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        fs::write(dir.join("audit.head"), &head).unwrap();
        sealgate(SEALGATE, ["audit", "verify", "--data-dir", utf8(&dir)])
    };
    let original: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert!(check("copy", &original).success(), "an unmodified copy verifies");

    // One character changed in line 3 (its result "ok" becomes "oK").
    let mut edited = original.clone();
    assert!(edited[2].contains("\"result\":\"ok\""), "{}", edited[2]);
    edited[2] = edited[2].replace("\"result\":\"ok\"", "\"result\":\"oK\"");
    check("edited", &edited).assert_failure("audit log line 3: content does not match its hash (edited)");

    // One character of a refusal changed: hiding what was refused is detected too.
    let refused = original.iter().position(|l| l.contains("refused: ")).unwrap();
    let mut hidden = original.clone();
    hidden[refused] = hidden[refused].replace("refused: ", "refuses: ");
    check("hidden", &hidden).assert_failure(&format!("audit log line {}:", refused + 1));

    // Line 2 removed.
    let mut removed = original.clone();
    removed.remove(1);
    check("removed", &removed).assert_failure("audit log line 2: sequence 3 where 2 was expected");

    // Lines 2 and 3 swapped.
    let mut swapped = original.clone();
    swapped.swap(1, 2);
    check("swapped", &swapped).assert_failure("audit log line 2:");

    // The last line cut off.
    let mut cut = original.clone();
    cut.pop();
    check("cut", &cut).assert_failure("lines removed");

    // The real log is untouched and still verifies.
    assert_audit_intact(SEALGATE, &ws.data());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_models_need_the_danger_flag() {
    let ws = Workspace::new();
    let plaintext = credit_risk_onnx();
    let models = ws.models_dir("models", "credit-risk.onnx", &plaintext);

    let failed = ws.serve_refuses(&models);
    let error = failed.error();
    assert!(error.contains("refusing plaintext model"), "{}", failed.text());
    assert!(error.contains("--danger-allow-plaintext-models"), "{}", failed.text());
    assert!(error.contains("sealgate seal"), "{}", failed.text());
    assert!(!ws.data().join("published-models.json").exists());
    assert_no_plaintext(&ws.data(), &plaintext);

    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE).data_dir(ws.data()).models(&models).arg("--danger-allow-plaintext-models"),
    );
    assert_serves(&gateway, CREDIT_RISK, CREDIT_RISK).await;
    assert!(gateway.logs().contains("PLAINTEXT"), "a loud warning:\n{}", gateway.logs());
    gateway.stop();
    // Serving the plaintext file copied it nowhere into the data dir.
    assert_no_plaintext(&ws.data(), &plaintext);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_versions_are_immutable() {
    let ws = Workspace::new();
    ws.kms(&["create", "k1"]).assert_success();
    let key = ["--key-id", "k1"];
    let first = ws.path("m-1.sealed");
    ws.seal(&demo_model_path(CREDIT_RISK), &first, "m", "1", &key).assert_success();
    let models = ws.models_dir("models", "m.sealed", &fs::read(&first).unwrap());

    let gateway = ws.serve(&models);
    assert_serves(&gateway, "m", CREDIT_RISK).await;
    gateway.stop();
    let published = fs::read_to_string(ws.data().join("published-models.json")).unwrap();
    assert!(published.contains("m@1"), "{published}");

    // Different content under the same name and version.
    let replacement = ws.path("m-1-other.sealed");
    ws.seal(&demo_model_path("breast-cancer"), &replacement, "m", "1", &key).assert_success();
    fs::write(models.join("m.sealed"), fs::read(&replacement).unwrap()).unwrap();
    let failed = ws.serve_refuses(&models);
    let error = failed.error();
    assert!(error.contains("model m@1 was published with different content"), "{}", failed.text());
    assert!(error.contains("immutable"), "{}", failed.text());
    assert!(error.contains("new version"), "{}", failed.text());
    assert_eq!(fs::read_to_string(ws.data().join("published-models.json")).unwrap(), published, "unchanged");

    // The same content re-sealed (new data key, new message id) is the same version.
    let resealed = ws.path("m-1-again.sealed");
    ws.seal(&demo_model_path(CREDIT_RISK), &resealed, "m", "1", &key).assert_success();
    fs::write(models.join("m.sealed"), fs::read(&resealed).unwrap()).unwrap();
    let gateway = ws.serve(&models);
    assert_serves(&gateway, "m", CREDIT_RISK).await;
    gateway.stop();

    // New content as a new version is fine.
    let second = ws.path("m-2.sealed");
    ws.seal(&demo_model_path("breast-cancer"), &second, "m", "2", &key).assert_success();
    fs::write(models.join("m.sealed"), fs::read(&second).unwrap()).unwrap();
    let gateway = ws.serve(&models);
    assert_serves(&gateway, "m", "breast-cancer").await;
    gateway.stop();
    let published = fs::read_to_string(ws.data().join("published-models.json")).unwrap();
    assert!(published.contains("m@1") && published.contains("m@2"), "{published}");
    assert_audit_intact(SEALGATE, &ws.data());
}

#[test]
fn rewrap_after_rotation_and_with_a_recovery_key_keeps_the_body() {
    let (ws, sealed) = sealed_credit_risk();
    let data = ws.data();
    let rewrap = |input: &Path, output: &Path, extra: &[&str]| {
        let mut args = vec!["rewrap", "--data-dir", utf8(&data), utf8(input), "-o", utf8(output)];
        args.extend_from_slice(extra);
        sealgate(SEALGATE, args)
    };
    // The body of an artifact: everything after its header.
    let body = |path: &Path| {
        let bytes = fs::read(path).unwrap();
        let layout = SealedLayout::parse(&bytes);
        bytes[layout.body..].to_vec()
    };
    // The local key version that wrapped the first data key (the first 4 ciphertext bytes).
    let key_version = |path: &Path| {
        let bytes = fs::read(path).unwrap();
        let layout = SealedLayout::parse(&bytes);
        let range = layout.wrapped_keys[0].2.clone();
        u32::from_be_bytes(bytes[range.start..range.start + 4].try_into().unwrap())
    };
    assert_eq!(key_version(&sealed), 1);

    // Rotate, then re-wrap under the new version.
    ws.kms(&["rotate", "k1"]).assert_success().assert_stdout_contains("version 2");
    assert!(ws.kms(&["list"]).stdout.contains("k1\t2 version(s)\tenabled"));
    let rotated = ws.path("rotated.sealed");
    rewrap(&sealed, &rotated, &["--kms", "local", "--key-id", "k1"]).assert_success();
    assert_eq!(key_version(&rotated), 2, "rewrap uses the newest key version");
    assert_eq!(body(&rotated), body(&sealed), "rewrap leaves the body untouched");
    ws.verify(&rotated, &[]).assert_success().assert_stdout_contains("opened with local:k1");
    // The old version still decrypts the original.
    ws.verify(&sealed, &[]).assert_success();
    // Never overwrite.
    rewrap(&sealed, &rotated, &["--key-id", "k1"]).assert_failure("exists");

    // Add a recovery key, then lose the original key.
    ws.kms(&["create", "recovery"]).assert_success();
    let recoverable = ws.path("recoverable.sealed");
    let output = rewrap(&rotated, &recoverable, &["--add", "--kms", "local", "--key-id", "recovery"]);
    output.assert_success().assert_stdout_contains("wrapped by local:k1, local:recovery");
    let layout = SealedLayout::parse(&fs::read(&recoverable).unwrap());
    let names: Vec<&str> = layout.wrapped_keys.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(names, ["k1", "recovery"]);
    assert_eq!(body(&recoverable), body(&sealed), "adding a key leaves the body untouched");

    ws.kms(&["disable", "k1"]).assert_success();
    let output = ws.verify(&recoverable, &[]);
    output.assert_success().assert_stdout_contains("opened with local:recovery");
    ws.verify(&rotated, &[]).assert_failure("key 'k1' is disabled");
    // Re-keying needs a key that opens the artifact: with k1 disabled, only the recoverable
    // one can be moved onto another key.
    rewrap(&rotated, &ws.path("stuck.sealed"), &["--key-id", "recovery"]).assert_failure("is disabled");
    assert!(!ws.path("stuck.sealed").exists() && !ws.path("stuck.sealed.partial").exists());
    let moved = ws.path("moved.sealed");
    rewrap(&recoverable, &moved, &["--key-id", "recovery"]).assert_success();
    let layout = SealedLayout::parse(&fs::read(&moved).unwrap());
    assert_eq!(layout.wrapped_keys.len(), 1, "without --add the keys are replaced");
    ws.verify(&moved, &[]).assert_success().assert_stdout_contains("opened with local:recovery");
    assert_eq!(body(&moved), body(&sealed));

    let refused = refusals(&data);
    assert!(refused.iter().any(|e| e["key_id"] == "k1" && e["op"] == "unwrap"), "{refused:#?}");
    assert_audit_intact(SEALGATE, &data);
    assert_no_plaintext(ws.root(), &credit_risk_onnx());
}

#[test]
fn rewrap_streams_bodies_larger_than_the_header_read() {
    // More than the 64 KiB the reader takes for the header, so part of the body is copied
    // from the stream rather than from that first read. `seal` only scans the ONNX protobuf
    // for external data, so a ModelProto holding nothing but one unknown field (number 100)
    // of random bytes is enough here.
    let ws = Workspace::new();
    ws.kms(&["create", "k1"]).assert_success();
    let input = ws.path("blob.onnx");
    let mut blob = vec![0xa2, 0x06, 0xe0, 0xa7, 0x12]; // field 100, length-delimited, 300,000 bytes
    blob.extend_from_slice(&sealgate_test_support::random_bytes(300_000));
    fs::write(&input, &blob).unwrap();
    let sealed = ws.path("blob.sealed");
    ws.seal(&input, &sealed, "blob", "1", &["--key-id", "k1", "--frame-size", "4096"]).assert_success();
    ws.kms(&["rotate", "k1"]).assert_success();
    let out = ws.path("blob-rewrapped.sealed");
    let data = ws.data();
    sealgate(SEALGATE, ["rewrap", "--data-dir", utf8(&data), utf8(&sealed), "-o", utf8(&out), "--key-id", "k1"])
        .assert_success();
    let (a, b) = (fs::read(&sealed).unwrap(), fs::read(&out).unwrap());
    let (la, lb) = (SealedLayout::parse(&a), SealedLayout::parse(&b));
    assert_eq!(a[la.body..], b[lb.body..], "identical bodies");
    ws.verify(&out, &[]).assert_success().assert_stdout_contains(&format!(" 1 file(s), {} bytes", blob.len()));
    fs::remove_file(&input).unwrap();
    assert_no_plaintext(ws.root(), &blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_default_keeps_only_sealed_material_in_the_data_dir() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    assert_serves(&gateway, CREDIT_RISK, CREDIT_RISK).await;
    let data = gateway.data_dir();

    let files = list_files(&data);
    let names: Vec<String> = files.iter().map(|f| f.strip_prefix(&data).unwrap().display().to_string()).collect();
    for model in DEMO_MODELS {
        let sealed = data.join("models").join(format!("{model}.sealed"));
        assert!(sealed.is_file(), "{} missing; files: {names:?}", sealed.display());
        let layout = SealedLayout::parse(&fs::read(&sealed).unwrap());
        assert_eq!(layout.context_value("model"), Some(model));
        assert_eq!(layout.wrapped_keys[0].0, "local");
        assert_eq!(layout.wrapped_keys[0].1, "default");
        assert_no_plaintext(&data, &fs::read(demo_model_path(model)).unwrap());
    }
    assert!(!names.iter().any(|n| n.ends_with(".onnx")), "plaintext models in the data dir: {names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".partial") || n.contains("staging")), "{names:?}");

    // The HPKE private keys (one X25519, one X-Wing) rest only wrapped by the KMS.
    // (keys/ also holds the key list, keys.json, and its lock: public facts only.)
    let keys: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.starts_with(data.join("keys")) && f.extension().is_some_and(|e| e == "key"))
        .collect();
    assert_eq!(keys.len(), 2, "HPKE key files: {names:?}");
    let served = sealgate_protocol::KeyConfig::decode_list(&gateway.get(sealgate_protocol::GATEWAY_PATH).await.body)
        .unwrap()
        .iter()
        .map(|c| (u64::from(c.key_id()), u64::from(c.kem().id())))
        .collect::<Vec<_>>();
    for key in keys {
        assert_eq!(key.extension().and_then(|e| e.to_str()), Some("key"), "{}", key.display());
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(key).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "{} is readable by others ({mode:o})", key.display());
        let json: serde_json::Value = serde_json::from_slice(&fs::read(key).unwrap()).unwrap();
        let fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(!fields.iter().any(|f| f.contains("secret") || f.contains("private")), "{json}");
        let stored = (json["key_id"].as_u64().unwrap(), json["kem"].as_u64().unwrap());
        assert!(served.contains(&stored), "{json} is not one of the served keys {served:?}");
        let wrapped = json["wrapped"].as_object().unwrap_or_else(|| panic!("no 'wrapped' object: {json}"));
        assert_eq!(wrapped["provider"], "local", "{json}");
        assert_eq!(wrapped["key_id"], "default", "{json}");
        let ciphertext = hex::decode(wrapped["ciphertext_hex"].as_str().unwrap()).unwrap();
        // version (4) + nonce (12) + the 32-byte key encrypted + tag (16).
        assert_eq!(ciphertext.len(), 64, "{json}");
        let text = serde_json::to_string(&json).unwrap();
        assert!(!text.contains("secret"), "{json}");
    }

    gateway.stop();
    let entries = audit_entries(&data);
    let has = |op: &str, subject: &str| {
        entries
            .iter()
            .any(|e| e["op"] == op && e["artifact"] == subject && e["result"] == "ok" && e["key_id"] == "default")
    };
    assert!(has("wrap", "ohttp-key"), "{entries:#?}");
    for model in DEMO_MODELS {
        assert!(has("generate", &format!("{model}@1")), "{entries:#?}");
        assert!(has("unwrap", &format!("{model}@1")), "{entries:#?}");
    }
    assert_eq!(assert_audit_intact(SEALGATE, &data), entries.len() as u64);
    let log = fs::read_to_string(data.join("audit.log")).unwrap();
    assert!(!log.contains("ciphertext"), "no key material in the audit log");

    // A second start reuses everything: the HPKE key is unwrapped, nothing is re-sealed.
    let sealed_before = fs::read(data.join("models/credit-risk.sealed")).unwrap();
    let again = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&data));
    assert_eq!(again.key_id(), gateway.key_id());
    assert_eq!(again.key_config_sha256(), gateway.key_config_sha256());
    again.stop();
    assert_eq!(fs::read(data.join("models/credit-risk.sealed")).unwrap(), sealed_before);
    let entries = audit_entries(&data);
    assert!(entries.iter().any(|e| e["op"] == "unwrap" && e["artifact"] == "ohttp-key"), "{entries:#?}");
    assert_audit_intact(SEALGATE, &data);
}

/// The audit log records every refusal of a bad artifact, including those that happen after
/// the KMS unwrapped the data key (commitment, header MAC, frame authentication, truncation,
/// renamed artifact).
#[test]
fn refusals_after_the_unwrap_are_audited_too() {
    let (ws, sealed) = sealed_credit_risk();
    let bytes = fs::read(&sealed).unwrap();
    let layout = SealedLayout::parse(&bytes);
    let tampered = ws.path("tampered.sealed");
    fs::write(&tampered, flip(&bytes, layout.body + 5)).unwrap();
    ws.verify(&tampered, &[]).assert_failure("frame 0 failed authentication");
    let models = ws.models_dir("models", "breast-cancer.sealed", &bytes);
    ws.serve_refuses(&models).assert_stderr_contains("renamed");

    let refused = refusals(&ws.data());
    let refused_subjects: Vec<&str> = refused.iter().filter_map(|e| e["artifact"].as_str()).collect();
    assert_eq!(refused_subjects, ["credit-risk@1", "credit-risk@1"], "{:#?}", audit_entries(&ws.data()));
}

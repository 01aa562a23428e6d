//! The `sealgate` binary's start-up errors: each is one clear line and a non-zero exit, and
//! nothing is left listening.

use std::process::Command;

fn sealgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealgate"))
}

#[test]
fn a_missing_onnx_runtime_library_says_how_to_get_it() {
    let data = tempfile::tempdir().unwrap();
    let out = sealgate()
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--ort-library", "/nonexistent/libonnxruntime.so"])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cargo xtask setup") && stderr.contains("ORT_DYLIB_PATH"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing may claim to listen: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn an_empty_models_folder_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let out = sealgate()
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--models")
        .arg(models.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no models (*.sealed) found in"), "{stderr}");
}

#[test]
fn help_documents_serve() {
    let out = sealgate().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--data-dir", "--listen", "--models", "--max-body-bytes", "--request-timeout-secs"] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

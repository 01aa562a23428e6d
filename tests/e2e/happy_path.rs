//! The good path through the real `sealgate` binary: both demo models via the Rust SDK and
//! via the independent Python client (for all three AEADs), compared with Python
//! onnxruntime; model listing and metadata; key configuration discovery; health endpoints.

use std::time::Duration;

use sealgate_client::Aead;
use sealgate_client::inference::{DataType, TensorMetadata};
use sealgate_protocol::{GATEWAY_PATH, Kem, KeyConfig, media_type};
use sealgate_test_support::{
    DEMO_MODELS, EXAMPLE_LABELS, Gateway, GatewayOptions, demo_model_path, example_path, example_request, labels,
    onnxruntime_reference, output_text, probabilities, repo_root, run_command,
};

use crate::SEALGATE;

/// The AEADs the gateway offers, with their names on the Python client's command line and
/// in the gateway's log.
const AEADS: [(Aead, &str, &str); 3] = [
    (Aead::Aes128Gcm, "aes128gcm", "aes-128-gcm"),
    (Aead::ChaCha20Poly1305, "chacha20poly1305", "chacha20-poly1305"),
    (Aead::Aes256Gcm, "aes256gcm", "aes-256-gcm"),
];

/// Largest allowed difference between the gateway's and Python onnxruntime's probabilities.
const TOLERANCE: f64 = 1e-5;

const PYTHON_HINT: &str =
    "install Python 3 and `pip install -r tests/interop/requirements.txt` (cargo xtask setup does both)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_matches_onnxruntime_for_both_models_and_every_aead() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let pin: [u8; 32] = hex::decode(gateway.key_config_sha256()).unwrap().try_into().unwrap();
    for model in DEMO_MODELS {
        let reference = onnxruntime_reference(model).await;
        assert_eq!(reference.labels, EXAMPLE_LABELS, "Python onnxruntime on the {model} example (documented order)");
        for (aead, _, _) in AEADS {
            let client = gateway.client_builder().aead(aead).pin_key_config_sha256(pin).build().unwrap();
            let mut request = example_request(model);
            request.id = Some(format!("{model}-{}", aead.name()));
            let response = client
                .infer(model, &request)
                .await
                .unwrap_or_else(|e| panic!("{model} with {aead:?}: {e}\n{}", gateway.logs()));
            assert_eq!(response.model_name, model);
            assert_eq!(response.id, request.id, "the request id is echoed");
            let labels = labels(&response);
            assert_eq!(labels, reference.labels, "{model} labels with {aead:?}");
            let probabilities = probabilities(&response);
            assert_eq!(probabilities.len(), reference.probabilities.len(), "{model} rows");
            for ((row, expected), label) in probabilities.iter().zip(&reference.probabilities).zip(&labels) {
                let sum: f64 = row.iter().sum();
                assert!((sum - 1.0).abs() <= TOLERANCE, "{model}: probabilities {row:?} sum to {sum}");
                for (p, q) in row.iter().zip(expected) {
                    assert!((p - q).abs() <= TOLERANCE, "{model} with {aead:?}: {row:?}, onnxruntime {expected:?}");
                }
                let argmax = if row[1] > row[0] { 1 } else { 0 };
                assert_eq!(*label, argmax, "{model}: the label is the argmax of {row:?}");
            }
        }
    }
    // The AEAD choice reached the gateway: it logs the suite of every request it served.
    let logs = gateway.logs();
    let served: Vec<&str> = logs.lines().filter(|l| l.contains("served encapsulated request")).collect();
    for (_, _, log_name) in AEADS {
        let count = served.iter().filter(|l| l.contains(log_name)).count();
        assert_eq!(count, DEMO_MODELS.len(), "requests served with {log_name}:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_python_client_matches_onnxruntime_for_both_models_and_every_aead() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let script = repo_root().join("tests/interop/ohttp_client.py");
    for model in DEMO_MODELS {
        for (_, cli_name, _) in AEADS {
            let output = run_command(
                tokio::process::Command::new("python3")
                    .arg(&script)
                    .args(["--url", gateway.url(), "--aead", cli_name, "--model", model])
                    .arg("--ca")
                    .arg(gateway.ca_path())
                    .arg("--onnx")
                    .arg(demo_model_path(model))
                    .arg("--input")
                    .arg(example_path(model))
                    .arg("--token-file")
                    .arg(gateway.data_dir().join("dev.token"))
                    .current_dir(repo_root()),
                Duration::from_secs(120),
                PYTHON_HINT,
            )
            .await
            .expect("running python3");
            let text = output_text(&output);
            assert!(output.status.success(), "ohttp_client.py {model} {cli_name}:\n{text}\n{}", gateway.logs());
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(stdout.starts_with(&format!("OK {model} ")), "{text}");
            assert!(stdout.contains("TLSv1.3"), "{text}");
            assert!(stdout.contains(&format!("key_id {}", gateway.key_id())), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_with_their_metadata() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let client = gateway.client();

    let list = client.models().await.unwrap();
    let mut names: Vec<&str> = list.models.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, DEMO_MODELS);
    assert!(list.models.iter().all(|m| !m.versions.is_empty()), "{list:?}");

    for (model, features) in [("breast-cancer", 30), ("credit-risk", 20)] {
        let meta = client.model_metadata(model).await.unwrap();
        assert_eq!(meta.name, model);
        assert_eq!(meta.platform, "onnxruntime");
        assert!(!meta.versions.is_empty());
        assert_eq!(
            meta.inputs,
            vec![TensorMetadata { name: "input".into(), datatype: DataType::Fp32, shape: vec![-1, features] }],
            "{model} inputs"
        );
        let output = |name: &str| {
            meta.outputs.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{model}: no output {name}"))
        };
        assert_eq!(meta.outputs.len(), 2, "{model} outputs: {:?}", meta.outputs);
        assert_eq!(output("label").datatype, DataType::Int64);
        assert_eq!(output("label").shape.len(), 1);
        assert_eq!(output("probabilities").datatype, DataType::Fp32);
        assert_eq!(output("probabilities").shape.len(), 2);
        assert_eq!(output("probabilities").shape[1], 2, "two classes");
    }
}

/// The SDK keeps to X25519 by default and uses the gateway's X-Wing key when asked; the
/// answers are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_with_x_wing_gets_the_same_answers() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let default = gateway.client();
    let xwing = gateway.client_builder().kem(Kem::XWing).build().unwrap();
    assert_eq!(default.key_config().await.unwrap().kem(), Kem::X25519HkdfSha256);
    assert_eq!(xwing.key_config().await.unwrap().kem(), Kem::XWing);
    for model in DEMO_MODELS {
        let request = example_request(model);
        let classical = default.infer(model, &request).await.unwrap();
        let hybrid = xwing.infer(model, &request).await.unwrap_or_else(|e| panic!("{model}: {e}\n{}", gateway.logs()));
        assert_eq!(labels(&hybrid), labels(&classical), "{model}");
        assert_eq!(probabilities(&hybrid), probabilities(&classical), "{model}");
    }
    let logs = gateway.logs();
    let served =
        |kem: &str| logs.lines().filter(|l| l.contains("served encapsulated request") && l.contains(kem)).count();
    assert_eq!((served("x25519"), served("x-wing")), (DEMO_MODELS.len(), DEMO_MODELS.len()), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_configuration_matches_the_printed_fingerprint() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    let response = gateway.get(GATEWAY_PATH).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.content_type, media_type::OHTTP_KEYS);
    let configs = KeyConfig::decode_list(&response.body).unwrap();
    let kems: Vec<Kem> = configs.iter().map(KeyConfig::kem).collect();
    assert_eq!(kems, [Kem::X25519HkdfSha256, Kem::XWing], "an X25519 key configuration, then X-Wing");
    assert_eq!(KeyConfig::encode_list(&configs), response.body, "nothing else in the list");
    assert_ne!(configs[0].key_id(), configs[1].key_id());
    let config = &configs[0];
    assert_eq!(hex::encode(config.sha256()), gateway.key_config_sha256());
    assert_eq!(config.key_id(), gateway.key_id());
    for config in &configs {
        for (aead, _, _) in AEADS {
            assert!(config.suite_for(aead).is_some(), "{:?} offers {aead:?}", config.kem());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_200() {
    let gateway = Gateway::start(GatewayOptions::new(SEALGATE));
    for path in ["/healthz", "/readyz"] {
        let response = gateway.get(path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert!(!response.body.is_empty(), "{path} has a body");
    }
}

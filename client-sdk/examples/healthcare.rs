//! A hospital app asks the `breast-cancer` model about one biopsy, end-to-end encrypted.
//!
//! Run the gateway (`cargo xtask serve`), then: `cargo run -p sealgate-client --example healthcare`.
//! The feature values below never leave this process in plaintext: they are HPKE-encrypted
//! to the gateway's key before the TLS connection even sees them.

mod common;

use common::client;
use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, TensorData};

/// One fine-needle aspirate, the 30 measurements in the model's column order
/// (see models/demo/README.md).
const PATIENT: [(&str, f64); 30] = [
    ("mean radius", 17.99),
    ("mean texture", 20.66),
    ("mean perimeter", 117.8),
    ("mean area", 991.7),
    ("mean smoothness", 0.1036),
    ("mean compactness", 0.1304),
    ("mean concavity", 0.1201),
    ("mean concave points", 0.08824),
    ("mean symmetry", 0.1992),
    ("mean fractal dimension", 0.06069),
    ("radius error", 0.4537),
    ("texture error", 0.8733),
    ("perimeter error", 3.061),
    ("area error", 49.81),
    ("smoothness error", 0.007231),
    ("compactness error", 0.02772),
    ("concavity error", 0.02509),
    ("concave points error", 0.0148),
    ("symmetry error", 0.01414),
    ("fractal dimension error", 0.003336),
    ("worst radius", 21.08),
    ("worst texture", 25.41),
    ("worst perimeter", 138.1),
    ("worst area", 1349.0),
    ("worst smoothness", 0.1482),
    ("worst compactness", 0.3735),
    ("worst concavity", 0.3301),
    ("worst concave points", 0.1974),
    ("worst symmetry", 0.306),
    ("worst fractal dimension", 0.08503),
];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), sealgate_client::Error> {
    let client = client()?;
    let request = InferenceRequest {
        id: Some("patient-0001".into()),
        inputs: vec![InputTensor {
            name: "input".into(),
            shape: vec![1, PATIENT.len() as u64],
            datatype: DataType::Fp32,
            data: TensorData::Float(PATIENT.iter().map(|(_, v)| *v).collect()),
        }],
        outputs: None,
    };
    let answer = client.infer("breast-cancer", &request).await?;
    let label = answer.output("label").and_then(|o| o.data.as_i64().map(<[i64]>::to_vec)).unwrap_or_default();
    let probabilities = answer.output("probabilities").and_then(|o| o.as_f64()).unwrap_or_default();
    let verdict = if label.first() == Some(&0) { "malignant" } else { "benign" };
    println!("breast-cancer: {verdict} (P(malignant) = {:.3})", probabilities.first().copied().unwrap_or(f64::NAN));
    Ok(())
}

//! A hospital app asks the `breast-cancer` model about one biopsy, end-to-end encrypted.
//!
//! Run the gateway (`cargo xtask serve`), then: `cargo run -p sealgate-client --example healthcare`.
//! The feature values below never leave this process in plaintext: they are HPKE-encrypted
//! to the gateway's key before the TLS connection even sees them.

mod common;

use common::client;

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
    common::exit_code(run()).await
}

async fn run() -> Result<(), sealgate_client::Error> {
    let answer = client()?.infer("breast-cancer", &common::one_row("patient-0001", &PATIENT)).await?;
    let (label, probabilities) = common::label_and_probabilities(&answer);
    let verdict = if label == Some(0) { "malignant" } else { "benign" };
    println!("breast-cancer: {verdict} (P(malignant) = {:.3})", probabilities.first().copied().unwrap_or(f64::NAN));
    Ok(())
}

//! What the examples share: where the gateway is, which CA to trust, which token to send,
//! how one row of features becomes a request and an answer a label, and how an error is
//! shown (with its causes, which the SDK keeps as `source()`).

use sealgate_client::inference::{DataType, InferenceRequest, InferenceResponse, InputTensor, TensorData};
use sealgate_client::{Client, Error, Report};

/// A client for the gateway named by `SEALGATE_URL` (default `https://127.0.0.1:8443`),
/// trusting `SEALGATE_CA` (default `.sealgate/tls/ca.pem`) and sending the bearer token of
/// `SEALGATE_TOKEN_FILE` (default `.sealgate/dev.token`; `sealgate serve` creates both on
/// first start).
pub fn client() -> Result<Client, sealgate_client::Error> {
    let url = std::env::var("SEALGATE_URL").unwrap_or_else(|_| "https://127.0.0.1:8443".into());
    let ca = std::env::var("SEALGATE_CA").unwrap_or_else(|_| ".sealgate/tls/ca.pem".into());
    let token = std::env::var("SEALGATE_TOKEN_FILE").unwrap_or_else(|_| ".sealgate/dev.token".into());
    Client::builder(url).ca_certificate_file(ca)?.bearer_token_file(token)?.build()
}

/// Runs an example to its exit code: on failure prints the error and every cause.
pub async fn exit_code(run: impl Future<Output = Result<(), Error>>) -> std::process::ExitCode {
    match run.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The credit-risk model's 20 input columns, in order (models/demo/README.md).
#[allow(dead_code)] // Only the credit-risk examples use it; each example compiles this module.
pub const CREDIT_RISK_FEATURES: [&str; 20] = [
    "age",
    "annual_income",
    "employment_years",
    "home_ownership",
    "loan_amount",
    "loan_term_months",
    "interest_rate",
    "monthly_installment",
    "debt_to_income",
    "credit_history_years",
    "num_open_accounts",
    "total_credit_limit",
    "revolving_balance",
    "credit_utilization",
    "num_credit_inquiries_6m",
    "num_late_payments_12m",
    "num_delinquencies_2y",
    "months_since_last_delinquency",
    "savings_balance",
    "has_cosigner",
];

/// `POST /v2/models/{model}/infer` for one row of named FP32 features, in column order.
#[allow(dead_code)] // Only the demo models' examples use it; each example compiles this module.
pub fn one_row(id: &str, features: &[(&str, f64)]) -> InferenceRequest {
    InferenceRequest {
        id: Some(id.into()),
        inputs: vec![InputTensor {
            name: "input".into(),
            shape: vec![1, features.len() as u64],
            datatype: DataType::Fp32,
            data: TensorData::Float(features.iter().map(|(_, v)| *v).collect()),
        }],
        outputs: None,
    }
}

/// The demo models' `label` (first row) and `probabilities` outputs.
#[allow(dead_code)] // Only the demo models' examples use it.
pub fn label_and_probabilities(answer: &InferenceResponse) -> (Option<i64>, Vec<f64>) {
    let label = answer.output("label").and_then(|o| o.data.as_i64()).and_then(|l| l.first().copied());
    let probabilities = answer.output("probabilities").and_then(|o| o.as_f64()).unwrap_or_default();
    (label, probabilities)
}

//! A bank's loan system asks the `credit-risk` model about one application, end-to-end
//! encrypted.
//!
//! Run the gateway (`cargo xtask serve`), then: `cargo run -p sealgate-client --example finance`.

mod common;

use common::client;

/// One (synthetic) loan application, the 20 features in the model's column order
/// (see models/demo/README.md).
const APPLICATION: [(&str, f64); 20] = [
    ("age", 48.0),
    ("annual_income", 71.7),
    ("employment_years", 4.0),
    ("home_ownership", 1.0),
    ("loan_amount", 23.9),
    ("loan_term_months", 60.0),
    ("interest_rate", 13.87),
    ("monthly_installment", 554.5),
    ("debt_to_income", 37.5),
    ("credit_history_years", 24.9),
    ("num_open_accounts", 11.0),
    ("total_credit_limit", 60.8),
    ("revolving_balance", 47.9),
    ("credit_utilization", 78.8),
    ("num_credit_inquiries_6m", 3.0),
    ("num_late_payments_12m", 1.0),
    ("num_delinquencies_2y", 1.0),
    ("months_since_last_delinquency", 20.0),
    ("savings_balance", 1.5),
    ("has_cosigner", 0.0),
];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run()).await
}

async fn run() -> Result<(), sealgate_client::Error> {
    let answer = client()?.infer("credit-risk", &common::one_row("loan-application-0001", &APPLICATION)).await?;
    let (label, probabilities) = common::label_and_probabilities(&answer);
    let verdict = if label == Some(1) { "likely to default" } else { "likely to repay" };
    println!("credit-risk: {verdict} (P(default) = {:.3})", probabilities.get(1).copied().unwrap_or(f64::NAN));
    Ok(())
}

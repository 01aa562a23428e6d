//! A lender scores a whole file of credit applications with the `credit-risk` model in one
//! end-to-end encrypted stream (`Client::infer_stream`: chunked OHTTP, NDJSON inside), and
//! reports the throughput and the time to the first answer.
//!
//! Run the gateway (`cargo xtask serve`), then:
//! `cargo run --release -p sealgate-client --example score_csv [applications.csv]`.
//! Without a path it first writes 100,000 synthetic applications (`SEALGATE_ROWS` to change
//! the count) to a temporary CSV file: a header with the model's 20 column names
//! (models/demo/README.md), then one application per row, made by varying the two rows of
//! `models/demo/credit-risk.example.json`. Rows are read from the file as the stream sends
//! them, so the file is never held in memory, and each answer is counted as it arrives.

mod common;

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{CREDIT_RISK_FEATURES, client};
use futures_util::StreamExt;
use sealgate_client::inference::InferenceRequest;

/// The demo request: two applications of 20 features, one of each class.
const EXAMPLE: &str = include_str!("../../models/demo/credit-risk.example.json");

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let rows = match open_applications() {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    common::exit_code(score(rows)).await
}

/// The CSV rows after its header, from the path given or a file written first.
fn open_applications() -> Result<std::io::Lines<std::io::BufReader<std::fs::File>>, String> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let rows = std::env::var("SEALGATE_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
            let path = std::env::temp_dir().join("sealgate-credit-applications.csv");
            write_applications(&path, rows).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {rows} synthetic applications to {}", path.display());
            path
        }
    };
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines.next().transpose().map_err(|e| format!("{}: {e}", path.display()))?.unwrap_or_default();
    if header.split(',').map(str::trim).ne(CREDIT_RISK_FEATURES) {
        return Err(format!("{}: the header is not the credit-risk model's 20 column names", path.display()));
    }
    Ok(lines)
}

async fn score(lines: std::io::Lines<std::io::BufReader<std::fs::File>>) -> Result<(), sealgate_client::Error> {
    // Reading a local file line by line blocks only briefly; a server would use async I/O.
    let requests = futures_util::stream::iter(lines.enumerate().filter_map(|(i, line)| {
        let row = line.ok().and_then(|line| parse_row(&line));
        if row.is_none() {
            eprintln!("row {}: not 20 numbers, skipped", i + 1);
        }
        row.map(|row| application(i + 1, &row))
    }));

    let client = client()?;
    client.key_config().await?; // Discovery first, so the clock below measures the stream.
    let started = Instant::now();
    let mut first_answer: Option<Duration> = None;
    let (mut scored, mut defaults, mut failed) = (0u64, 0u64, 0u64);
    let mut answers = std::pin::pin!(client.infer_stream("credit-risk", requests));
    while let Some(answer) = answers.next().await {
        first_answer.get_or_insert_with(|| started.elapsed());
        match answer {
            Ok(answer) => {
                scored += 1;
                defaults += u64::from(common::label_and_probabilities(&answer).0 == Some(1));
            }
            // One application refused (its line number says which); the rest go on.
            Err(e) if matches!(e, sealgate_client::Error::Exchange(sealgate_client::ExchangeError::Line { .. })) => {
                failed += 1;
                eprintln!("{e}");
            }
            Err(e) => return Err(e),
        }
    }
    let elapsed = started.elapsed();
    println!("scored {scored} applications ({failed} refused): {defaults} likely to default");
    println!(
        "{:.0} rows/s; first answer after {:.1} ms; {:.2} s in all",
        scored as f64 / elapsed.as_secs_f64(),
        first_answer.unwrap_or_default().as_secs_f64() * 1e3,
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// One application as a request of one row, its id the CSV row number.
fn application(row: usize, features: &[f64]) -> InferenceRequest {
    let named: Vec<(&str, f64)> = CREDIT_RISK_FEATURES.iter().copied().zip(features.iter().copied()).collect();
    common::one_row(&format!("application-{row}"), &named)
}

/// 20 comma-separated numbers, or `None`.
fn parse_row(line: &str) -> Option<Vec<f64>> {
    let row: Vec<f64> = line.split(',').map(|cell| cell.trim().parse().ok()).collect::<Option<_>>()?;
    (row.len() == CREDIT_RISK_FEATURES.len() && row.iter().all(|v| v.is_finite())).then_some(row)
}

/// Writes `rows` synthetic applications: each one of the two example rows with every
/// feature varied by up to ±20 % (counts stay whole numbers, codes unchanged), from a fixed seed.
fn write_applications(path: &Path, rows: usize) -> std::io::Result<()> {
    let example: serde_json::Value = serde_json::from_str(EXAMPLE).map_err(std::io::Error::other)?;
    let data: Vec<f64> = example["inputs"][0]["data"]
        .as_array()
        .map(|values| values.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    let bases: Vec<&[f64]> = data.chunks_exact(CREDIT_RISK_FEATURES.len()).collect();
    if bases.is_empty() {
        return Err(invalid("the example request holds no complete row"));
    }
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "{}", CREDIT_RISK_FEATURES.join(","))?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: a fixed, dependency-free sequence, so every run writes the same file.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    for row in 0..rows {
        let base = bases[row % bases.len()];
        let cells: Vec<String> = base
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let varied = v * (0.8 + 0.4 * next());
                if i == 3 || i == 5 || i == 19 {
                    format!("{v}") // Codes (home ownership, loan term, cosigner) stay as they are.
                } else if v.fract() == 0.0 {
                    format!("{}", varied.round())
                } else {
                    format!("{varied:.2}")
                }
            })
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    out.flush()
}

fn invalid(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

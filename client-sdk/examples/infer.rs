//! Sends one KServe V2 request from a JSON file to a model through the encrypted endpoint
//! and prints the answer as JSON: the smallest end-to-end client, used by `cargo xtask
//! bench --large` to compare the gateway's answer with Python onnxruntime's.
//!
//! Run the gateway (`cargo xtask serve`), then:
//! `cargo run --release -p sealgate-client --example infer -- MODEL REQUEST.json`
//! (`SEALGATE_URL`, `SEALGATE_CA` and `SEALGATE_TOKEN_FILE` as for the other examples).

mod common;

use sealgate_client::inference::InferenceRequest;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, path] = args.as_slice() else {
        eprintln!("usage: infer MODEL REQUEST.json");
        return std::process::ExitCode::from(2);
    };
    let request: InferenceRequest = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| format!("not a KServe V2 inference request: {e}")))
    {
        Ok(request) => request,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    common::exit_code(async {
        let answer = common::client()?.infer(model, &request).await?;
        println!("{}", serde_json::to_string(&answer).unwrap_or_default());
        Ok(())
    })
    .await
}

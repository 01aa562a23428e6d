//! `sealgate-load` against the real gateway, and the gateway's `--danger-plaintext-bench`
//! path it compares with.
//!
//! An integration test of `sealgate-load`, so cargo builds the tool first and names it in
//! `CARGO_BIN_EXE_sealgate-load`. The gateway is another package's binary, which cargo
//! does not build for this test: [`gateway_binary`] finds it in the target directory
//! (`cargo build --workspace --bins` builds it; `SEALGATE_BIN` overrides) and warns when it
//! is older than its sources.
//! Runs are short (`--requests`, `--warmup 0s`) so the whole file takes seconds; the JSON
//! report is what the assertions read. Every bad-input case must end with exactly one
//! `error: ...` line, exit status 1, and nothing that looks like a panic or backtrace.

use std::process::{Command, Output};

use sealgate_test_support::{Gateway, GatewayOptions, example_path, gateway_binary, sealgate_command};

mod common;
use common::{args, at, load, text};

/// Runs the tool with `--json` and returns the parsed report; the run must succeed.
fn run_json(base: &[String], extra: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let json_arg = json.display().to_string();
    let mut all = args(base, extra);
    all.extend(["--json", &json_arg, "--quiet"]);
    let output = load(&all);
    assert!(output.status.success(), "sealgate-load {all:?} failed:\n{}", text(&output));
    let report = std::fs::read(&json).unwrap_or_else(|e| panic!("reading {}: {e}\n{}", json.display(), text(&output)));
    (serde_json::from_slice(&report).expect("the JSON report parses"), String::from_utf8_lossy(&output.stdout).into())
}

/// Asserts a clean failure: status 1, nothing on stdout, one `error:` line holding `needle`.
#[track_caller]
fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    assert!(output.stdout.is_empty(), "nothing on stdout when the run cannot start:\n{}", text(output));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr:\n{}", text(output));
    assert!(lines[0].starts_with("error: "), "{}", text(output));
    assert!(lines[0].contains(needle), "expected '{needle}':\n{}", text(output));
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "'{bad}' on stderr:\n{}", text(output));
    }
}

fn errors_total(run: &serde_json::Value) -> u64 {
    run["errors"].as_object().expect("errors by kind").values().map(|t| t["count"].as_u64().expect("a count")).sum()
}

#[test]
fn help_documents_every_option() {
    let output = load(&["--help"]);
    assert!(output.status.success(), "{}", text(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--url",
        "--ca",
        "--token",
        "--token-file",
        "--model",
        "--input",
        "--batch",
        "--concurrency",
        "--rate",
        "--max-in-flight",
        "--duration",
        "--requests",
        "--warmup",
        "--http1",
        "--http2",
        "--timeout",
        "--retries",
        "--no-precompute",
        "--json",
        "--compare-plaintext",
        "--stream",
        "--quiet",
        "coordinated omission",
        "Exit status",
    ] {
        assert!(help.contains(option), "--help does not mention {option}:\n{help}");
    }
    // Conflicting options are refused by the parser, with clap's usage status.
    let output = load(&["--model", "m", "--rate", "10", "--concurrency", "2"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[test]
fn load_runs_encrypted_and_plaintext_against_the_real_gateway() {
    let gateway = Gateway::start(GatewayOptions::new(gateway_binary()).arg("--danger-plaintext-bench"));
    assert!(gateway.logs().contains("--danger-plaintext-bench"), "a loud warning:\n{}", gateway.logs());
    let base = at(&gateway);

    // Closed loop, generated inputs, both paths, default HTTP version (h2 by ALPN).
    let (report, stdout) = run_json(
        &base,
        &["--model", "credit-risk", "--concurrency", "2", "--requests", "20", "--warmup", "0s", "--compare-plaintext"],
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    for (run, mode) in runs.iter().zip(["encrypted", "plaintext"]) {
        assert_eq!(run["mode"], mode);
        assert_eq!((run["ok"].as_u64(), errors_total(run)), (Some(20), 0), "{run}");
        assert_eq!(run["latency_us"]["count"], 20, "{run}");
        assert!(run["throughput_rps"].as_f64().is_some_and(|r| r > 0.0), "{run}");
    }
    let crypto = &runs[0]["client_crypto_us"];
    assert!(crypto["p50"].as_f64().is_some_and(|us| us > 1.0 && us < runs[0]["latency_us"]["p50"].as_f64().unwrap()));
    assert!(runs[1]["client_crypto_us"].is_null(), "no HPKE on the plaintext path");
    assert!(report["ratio"]["throughput"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    for needle in ["encrypted (Oblivious HTTP", "plaintext (benchmark path", "encrypted vs plaintext", "client HPKE"] {
        assert!(stdout.contains(needle), "'{needle}' in the report:\n{stdout}");
    }
    let log = gateway.logs();
    assert!(log.contains("served PLAINTEXT benchmark request"), "{log}");
    assert!(log.contains("served encapsulated request"), "{log}");

    // Open loop with the example file over HTTP/1.1: every request answered, and the
    // scheduler's lateness is reported.
    let example = example_path("breast-cancer").display().to_string();
    let (report, _) = run_json(
        &base,
        &[
            "--model",
            "breast-cancer",
            "--input",
            &example,
            "--rate",
            "50",
            "--requests",
            "25",
            "--warmup",
            "0s",
            "--http1",
        ],
    );
    let run = &report["runs"][0];
    assert_eq!((run["ok"].as_u64(), errors_total(run)), (Some(25), 0), "{run}");
    assert!(run["max_schedule_lag_us"].as_f64().is_some(), "{run}");
    // 25 requests at 50/s take about half a second whatever the latency.
    assert!(run["elapsed_s"].as_f64().is_some_and(|s| s > 0.4), "{run}");
    assert_eq!(report["config"]["load"], "open");

    // HTTP/2 only, batch 3, a duration instead of a count.
    let (report, _) = run_json(
        &base,
        &["--model", "credit-risk", "--http2", "--batch", "3", "--duration", "500ms", "--warmup", "0s"],
    );
    let run = &report["runs"][0];
    assert!(run["ok"].as_u64().is_some_and(|n| n > 0) && errors_total(run) == 0, "{run}");
}

#[test]
fn streams_report_rows_first_line_and_line_latency_against_plaintext_batches() {
    let gateway = Gateway::start(GatewayOptions::new(gateway_binary()).arg("--danger-plaintext-bench"));
    let base = at(&gateway);
    let example = example_path("credit-risk").display().to_string();
    let (report, stdout) = run_json(
        &base,
        &[
            "--model",
            "credit-risk",
            "--input",
            &example,
            "--stream",
            "300",
            "--concurrency",
            "2",
            "--requests",
            "4",
            "--warmup",
            "0s",
            "--compare-plaintext",
        ],
    );
    assert_eq!(report["config"]["stream"], 300);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    let (streamed, plain) = (&runs[0], &runs[1]);
    assert_eq!((streamed["ok"].as_u64(), errors_total(streamed)), (Some(4), 0), "{streamed}");
    // The example request holds two rows, so 4 streams of 300 lines are 2,400 rows.
    assert_eq!((streamed["rows"]["ok"].as_u64(), streamed["rows"]["failed"].as_u64()), (Some(2400), Some(0)));
    assert_eq!(streamed["rows"]["line_latency_us"]["count"], 1200, "one latency per line: {streamed}");
    assert_eq!(streamed["rows"]["first_line_us"]["count"], 4, "one first line per stream: {streamed}");
    let line_p50 = streamed["rows"]["line_latency_us"]["p50"].as_f64().unwrap();
    assert!(line_p50 > 0.0 && line_p50 <= streamed["latency_us"]["max"].as_f64().unwrap(), "{streamed}");
    // The plaintext side sent the same rows as one batch per request.
    assert_eq!((plain["ok"].as_u64(), plain["rows"]["ok"].as_u64()), (Some(4), Some(2400)), "{plain}");
    assert!(plain["rows"]["line_latency_us"].is_null());
    assert!(report["ratio"]["rows_per_s"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    for needle in ["encrypted stream", "plaintext rows", "rows/s", "first line", "per line", "(streamed vs plaintext)"]
    {
        assert!(stdout.contains(needle), "'{needle}' in the report:\n{stdout}");
    }
    let log = gateway.logs();
    assert!(log.contains("served chunked encapsulated request"), "{log}");

    // The plaintext side as NDJSON: the same lines scored line by line, without OHTTP.
    let (report, _) = run_json(
        &base,
        &[
            "--model",
            "credit-risk",
            "--stream",
            "50",
            "--requests",
            "2",
            "--warmup",
            "0s",
            "--compare-plaintext",
            "--plaintext-as",
            "ndjson",
        ],
    );
    assert_eq!(report["config"]["plaintext_as"], "ndjson");
    let plain = &report["runs"][1];
    // Generated inputs are one row per line.
    assert_eq!((plain["ok"].as_u64(), plain["rows"]["ok"].as_u64()), (Some(2), Some(100)), "{plain}");
    assert_eq!(report["runs"][0]["rows"]["ok"], 100);

    // An input the model would refuse on every line is caught before any stream is sent.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let body = std::fs::read_to_string(example_path("credit-risk")).unwrap().replace("\"input\"", "\"other\"");
    std::fs::write(&bad, body).unwrap();
    let bad = bad.display().to_string();
    let output = load(&args(&base, &["--model", "credit-risk", "--input", &bad, "--stream", "5", "--requests", "1"]));
    assert_one_line_error(&output, "other");
}

#[test]
fn bad_input_is_one_clear_line() {
    let gateway = Gateway::start(GatewayOptions::new(gateway_binary()));
    let base = at(&gateway);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("writing a test file");
        path.display().to_string()
    };
    let quick = ["--requests", "3", "--warmup", "0s", "--quiet"];

    // Unreachable gateway: a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let url = format!("https://127.0.0.1:{port}");
    let ca = gateway.ca_path().display().to_string();
    let output = load(&[&["--url", &url, "--ca", &ca, "--model", "credit-risk"][..], &quick].concat());
    assert_one_line_error(&output, "cannot reach the gateway");

    // CA: missing, not PEM, and a CA that did not sign the gateway's certificate.
    let missing_ca = dir.path().join("missing.pem").display().to_string();
    let not_pem = write("not.pem", "hello");
    let wrong_ca = dir.path().join("other-ca.pem").display().to_string();
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=Some other CA", "-days", "1", "-keyout"])
        .arg(dir.path().join("other-ca.key"))
        .args(["-out", &wrong_ca])
        .output()
        .expect("openssl not found: install it (cargo xtask setup installs it)");
    assert!(openssl.status.success(), "openssl req failed:\n{}", text(&openssl));
    for (ca, needle) in [
        (missing_ca.as_str(), "--ca"),
        (not_pem.as_str(), "no certificate"),
        (wrong_ca.as_str(), "is --ca the CA that signed"),
    ] {
        let output = load(&[&["--url", gateway.url(), "--ca", ca, "--model", "credit-risk"][..], &quick].concat());
        assert_one_line_error(&output, needle);
    }
    // The default --ca (.sealgate/tls/ca.pem relative to the working directory) is absent.
    let output = load(&[&["--url", gateway.url(), "--model", "credit-risk"][..], &quick].concat());
    assert_one_line_error(&output, ".sealgate/tls/ca.pem");

    // Unknown model: the 404 travels inside the encryption; the tool names what is served.
    let output = load(&[&args(&base, &["--model", "no-such-model"])[..], &quick].concat());
    assert_one_line_error(
        &output,
        "does not serve a model called 'no-such-model' (it serves: breast-cancer, credit-risk)",
    );

    // Input files: missing, not JSON, JSON but not a request, and the wrong tensors.
    let missing_input = dir.path().join("missing.json").display().to_string();
    let not_json = write("not.json", "{ this is not json");
    let not_request = write("not-request.json", r#"{"hello": 1}"#);
    let wrong_name = write(
        "wrong-name.json",
        r#"{"inputs":[{"name":"features","shape":[1,20],"datatype":"FP32","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}"#,
    );
    let wrong_shape =
        write("wrong-shape.json", r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#);
    let wrong_count =
        write("wrong-count.json", r#"{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","data":[1,2,3]}]}"#);
    let wrong_type = write(
        "wrong-type.json",
        r#"{"inputs":[{"name":"input","shape":[1,20],"datatype":"INT64","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}"#,
    );
    // The breast-cancer example does not fit credit-risk (30 features, not 20).
    let other_model = example_path("breast-cancer").display().to_string();
    for (input, needle) in [
        (missing_input.as_str(), "No such file"),
        (not_json.as_str(), "is not a KServe V2 inference request"),
        (not_request.as_str(), "is not a KServe V2 inference request"),
        (wrong_name.as_str(), "has no input 'features' (its inputs: input)"),
        (wrong_shape.as_str(), "has shape [1, 3]"),
        (wrong_count.as_str(), "has 3 values but shape [1, 20] needs 20"),
        (wrong_type.as_str(), "datatype INT64"),
        (other_model.as_str(), "has shape [2, 30]"),
    ] {
        let output = load(&[&args(&base, &["--model", "credit-risk", "--input", input])[..], &quick].concat());
        assert_one_line_error(&output, needle);
    }

    // Tokens: a missing token file, and no token at all (the gateway's inner 401).
    let missing_token = dir.path().join("missing.token").display().to_string();
    let no_token = [gateway.url(), &ca];
    let output = load(
        &[
            &["--url", no_token[0], "--ca", no_token[1], "--model", "credit-risk", "--token-file", &missing_token][..],
            &quick,
        ]
        .concat(),
    );
    assert_one_line_error(&output, "bearer token file");
    let output = load(&[&["--url", no_token[0], "--ca", no_token[1], "--model", "credit-risk"][..], &quick].concat());
    assert_one_line_error(&output, "401");

    // --compare-plaintext against a gateway started without --danger-plaintext-bench.
    let output = load(&[&args(&base, &["--model", "credit-risk", "--compare-plaintext"])[..], &quick].concat());
    assert_one_line_error(&output, "start it with `sealgate serve --danger-plaintext-bench`");
    assert!(gateway.is_running(), "{}", gateway.logs());
}

#[test]
fn plaintext_bench_is_refused_off_loopback() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8443"] {
        let root = tempfile::tempdir().expect("a temporary directory");
        let data_dir = root.path().join("data");
        let output =
            sealgate_command(gateway_binary(), ["serve", "--listen", listen, "--danger-plaintext-bench", "--data-dir"])
                .arg(&data_dir)
                .run();
        output.assert_failure("--danger-plaintext-bench").assert_failure("loopback");
        assert!(!data_dir.exists(), "refused before creating anything: {}", output.text());
    }
    // Without the flag the path does not exist at all (`bad_input_is_one_clear_line`,
    // --compare-plaintext); with it on loopback the gateway starts (the load test).
}

//! `cargo xtask bench --large`: a generated ~3 GB model with external initializers
//! (models/make/make_large_model.py, in `target/bench/large/`) sealed, verified and
//! served, with
//!
//! 1. `sealgate seal` and `sealgate verify` timed;
//! 2. the criterion-free bench `models/benches/large.rs`: time to a ready session and peak
//!    RSS, sealed against ONNX Runtime loading the same files from disk, and decryption
//!    against raw aws-lc-rs AES-256-GCM with the second core free and busy;
//! 3. `sealgate serve` of the artifact under `strace -f -e trace=write,pwrite64,pwritev,
//!    pwritev2,writev`: every write to a file descriptor that is a regular file is listed and
//!    checked for any 64-byte window of the weights (none may appear); the time to ready and
//!    the gateway's peak RSS;
//! 4. the model's answer through the encrypted endpoint (`client-sdk` example `infer`)
//!    against Python onnxruntime's on the plaintext files (`expected.json`, written by the
//!    model script).
//!
//! Not part of `cargo xtask test`: it needs about 10 GB of memory, 7 GB of disk and several
//! minutes.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::process::{cargo, run, stdout_of, succeeds};
use crate::setup::ORT_DYLIB_ENV;

/// Runs the large-model benchmark with a model of about `gib` GiB.
pub fn run_large(root: &Path, library: &Path, sealgate: &Path, gib: f64) -> Result<()> {
    let dir = root.join("target").join("bench").join("large");
    let model_dir = dir.join(format!("model-{gib}"));
    let onnx = model_dir.join("large.onnx");
    if !onnx.is_file() {
        if !succeeds(Command::new("python3").args(["-c", "import numpy, onnx, onnxruntime"])) {
            run(Command::new("python3")
                .args(["-m", "pip", "install", "-r"])
                .arg(root.join("models/make/requirements.txt"))
                .env("PIP_BREAK_SYSTEM_PACKAGES", "1"))?;
        }
        eprintln!("==> making a {gib} GiB model in {}", model_dir.display());
        run(Command::new("python3")
            .arg(root.join("models/make/make_large_model.py"))
            .arg(&model_dir)
            .args(["--gib", &gib.to_string()]))?;
    }
    let work = dir.join("run");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let data = work.join("data");
    let models = work.join("models");
    fs::create_dir_all(&models)?;
    let keys = stdout_of(Command::new(sealgate).args(["kms", "list", "--data-dir"]).arg(&data))?;
    if !keys.lines().any(|l| l.split_whitespace().next() == Some("default")) {
        run(Command::new(sealgate).args(["kms", "create", "default", "--data-dir"]).arg(&data).stdout(Stdio::null()))?;
    }
    let sealed = models.join("large.sealed");
    let t = Instant::now();
    let out = stdout_of(
        Command::new(sealgate)
            .args(["seal", "--data-dir"])
            .arg(&data)
            .args(["--model", "large", "--version", "1"])
            .arg(&onnx)
            .arg("-o")
            .arg(&sealed),
    )?;
    let seal_s = t.elapsed().as_secs_f64();
    print!("{out}");
    let t = Instant::now();
    print!("{}", stdout_of(Command::new(sealgate).args(["verify", "--data-dir"]).arg(&data).arg(&sealed))?);
    let verify_s = t.elapsed().as_secs_f64();
    println!("seal {seal_s:.1} s, verify {verify_s:.1} s (whole commands, reading the files from the page cache)");

    eprintln!("==> models/benches/large.rs (time to ready, peak RSS, decryption)");
    run(cargo()
        .current_dir(root)
        .args(["bench", "-p", "sealgate-models", "--bench", "large", "--", "--onnx"])
        .arg(&onnx)
        .arg("--sealed")
        .arg(&sealed)
        .arg("--data")
        .arg(&data)
        .env(ORT_DYLIB_ENV, library))?;

    serve_and_check(root, library, sealgate, &data, &models, &model_dir, &work)
}

/// Serves the artifact under strace, checks the writes and the answer.
fn serve_and_check(
    root: &Path,
    library: &Path,
    sealgate: &Path,
    data: &Path,
    models: &Path,
    model_dir: &Path,
    work: &Path,
) -> Result<()> {
    let token =
        stdout_of(Command::new(sealgate).args(["tenants", "add", "bench", "--models", "*", "--data-dir"]).arg(data))?;
    let token_file = data.join("bench.token");
    fs::write(&token_file, token.trim())?;
    let trace = work.join("strace.txt");
    let log = fs::File::create(work.join("gateway.log"))?;
    let started = Instant::now();
    let mut child = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=write,pwrite64,pwritev,pwritev2,writev",
            "-e",
            "signal=none",
            "-y",
            "-s",
            "0",
            "-o",
        ])
        .arg(&trace)
        .arg(sealgate)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--sessions-per-model", "1"])
        .arg("--data-dir")
        .arg(data)
        .arg("--models")
        .arg(models)
        .env(ORT_DYLIB_ENV, library)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting sealgate under strace (apt-get install strace)")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let (mut url, mut line) = (String::new(), String::new());
    while stdout.read_line(&mut line)? > 0 {
        if let Some(rest) = line.strip_prefix("sealgate listening on ") {
            url = rest.trim().to_owned();
        }
        if line.starts_with("models: ") {
            break;
        }
        line.clear();
    }
    let ready = started.elapsed().as_secs_f64();
    if url.is_empty() {
        let _ = child.kill();
        bail!("the gateway did not start; see {}", work.join("gateway.log").display());
    }
    // Peak RSS is measured by models/benches/large.rs in a process of its own: here the
    // child is strace.
    println!("gateway (under strace) ready in {ready:.1} s");
    let answer = stdout_of(
        cargo()
            .current_dir(root)
            .args(["run", "--release", "-q", "-p", "sealgate-client", "--example", "infer", "--", "large"])
            .arg(model_dir.join("request.json"))
            .env("SEALGATE_URL", &url)
            .env("SEALGATE_CA", data.join("tls/ca.pem"))
            .env("SEALGATE_TOKEN_FILE", &token_file),
    );
    let _ = child.kill();
    let _ = child.wait();
    let answer: Value = serde_json::from_str(&answer?).context("the answer is not JSON")?;
    let expected: Value = serde_json::from_slice(&fs::read(model_dir.join("expected.json"))?)?;
    let got: Vec<f64> =
        answer["outputs"][0]["data"].as_array().context("no output data")?.iter().filter_map(Value::as_f64).collect();
    let want: Vec<f64> = expected["y"].as_array().context("no expected y")?.iter().filter_map(Value::as_f64).collect();
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f64, f64::max);
    println!(
        "answer through the gateway vs Python onnxruntime on the plaintext files: {} values, max |difference| {worst:.2e} ({})",
        got.len(),
        if got.len() == want.len() && worst <= 1e-5 { "equal within 1e-5" } else { "DIFFERENT" }
    );
    check_writes(&trace, model_dir)
}

/// Every write strace saw to a regular file (with `-y`, the fd's path): how many bytes in
/// total (a few kilobytes of logs and records cannot hold gigabytes of weights), and whether
/// any of those files holds a piece of the weights afterwards (strace runs with `-s 0`).
fn check_writes(trace: &Path, model_dir: &Path) -> Result<()> {
    let text = fs::read_to_string(trace)?;
    let mut files = HashSet::new();
    let mut writes = 0usize;
    let mut bytes_written = 0u64;
    for line in text.lines() {
        // pid write(5</path/to/file>, ""..., 123) = 123
        let Some(start) = line.find('<') else { continue };
        let Some(end) = line[start..].find('>') else { continue };
        let path = &line[start + 1..start + end];
        if path.starts_with('/') && Path::new(path).is_file() {
            files.insert(path.to_owned());
            writes += 1;
            bytes_written += line.rsplit("= ").next().and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0);
        }
    }
    // 64-byte windows of the first weights file, sampled every 1 MiB.
    let weights = fs::read_dir(model_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .context("no weights file")?;
    let mut sample = Vec::new();
    let mut f = fs::File::open(&weights)?;
    let mut chunk = vec![0u8; 1 << 20];
    while sample.len() < 256 && f.read(&mut chunk)? == chunk.len() {
        sample.push(chunk[..64].to_vec());
    }
    let mut leaked = Vec::new();
    for path in &files {
        let bytes = fs::read(path).unwrap_or_default();
        if sample.iter().any(|w| bytes.windows(64).any(|b| b == &w[..])) {
            leaked.push(path.clone());
        }
    }
    let mut listed: Vec<&String> = files.iter().collect();
    listed.sort();
    println!("strace: {writes} writes, {bytes_written} bytes in total, to {} regular files: {listed:?}", files.len());
    if leaked.is_empty() {
        println!("no file the gateway wrote holds a piece of the weights (256 windows of 64 bytes checked)");
        Ok(())
    } else {
        bail!("weights found in files the gateway wrote: {leaked:?}")
    }
}

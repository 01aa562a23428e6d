//! The KMS providers through the real `sealgate` binary: an unknown provider, a
//! customer-provided key (right, wrong, from stdin, never stored), AWS KMS against a moto
//! server started by the test (and then a missing KMS at start-up), and PKCS#11 against a
//! SoftHSM2 token created by the test. Each test has its own data dir and backends.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sealgate_test_support::moto::Moto;
use sealgate_test_support::softhsm::SoftHsm;
use sealgate_test_support::{
    CliOutput, EXAMPLE_LABELS, Gateway, GatewayOptions, SealedLayout, assert_audit_intact, assert_no_plaintext,
    audit_entries, contains, demo_model_path, example_request, labels, list_files, random_bytes, sealgate,
    sealgate_command,
};

use crate::SEALGATE;

const CREDIT_RISK: &str = "credit-risk";

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("sealgate-kms-").tempdir().unwrap()
}

fn credit_risk_onnx() -> Vec<u8> {
    fs::read(demo_model_path(CREDIT_RISK)).unwrap()
}

/// `sealgate seal --data-dir DATA --model credit-risk --version V INPUT -o OUT ARGS...`
fn seal_args<'a>(input: &'a Path, data: &'a Path, out: &'a Path, version: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["seal", "--data-dir", utf8(data), "--model", CREDIT_RISK, "--version", version];
    all.extend_from_slice(args);
    all.extend_from_slice(&[utf8(input), "-o", utf8(out)]);
    all
}

/// A models folder `root/name` holding `sealed` as `credit-risk.sealed`.
fn models_dir(root: &Path, name: &str, sealed: &Path) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(sealed, dir.join("credit-risk.sealed")).unwrap();
    dir
}

async fn assert_serves_credit_risk(gateway: &Gateway) {
    let response = gateway
        .client()
        .infer(CREDIT_RISK, &example_request(CREDIT_RISK))
        .await
        .unwrap_or_else(|e| panic!("inference failed: {e}\n{}", gateway.logs()));
    assert_eq!(labels(&response), EXAMPLE_LABELS);
}

fn refusals(data: &Path) -> Vec<serde_json::Value> {
    audit_entries(data).into_iter().filter(|e| e["result"].as_str().unwrap_or("").starts_with("refused: ")).collect()
}

#[test]
fn an_unknown_provider_is_refused_everywhere() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let input = demo_model_path(CREDIT_RISK);
    let out = dir.path().join("out.sealed");

    let output = sealgate(SEALGATE, seal_args(&input, &data, &out, "1", &["--kms", "vault", "--key-id", "k"]));
    output.assert_failure("unknown KMS provider 'vault' (expected local, aws-kms, pkcs11 or customer-provided)");
    assert!(!out.exists() && !dir.path().join("out.sealed.partial").exists(), "no output file");

    sealgate(SEALGATE, ["kms", "--data-dir", utf8(&data), "create", "k", "--provider", "vault"])
        .assert_failure("unknown KMS provider 'vault'");

    // A real artifact for rewrap and for a header naming an unknown provider.
    let sealed = dir.path().join("real.sealed");
    sealgate(SEALGATE, ["kms", "--data-dir", utf8(&data), "create", "k1"]).assert_success();
    sealgate(SEALGATE, seal_args(&input, &data, &sealed, "1", &["--key-id", "k1"])).assert_success();
    let rewrapped = dir.path().join("rewrapped.sealed");
    sealgate(SEALGATE, ["rewrap", "--data-dir", utf8(&data), utf8(&sealed), "-o", utf8(&rewrapped), "--kms", "vault"])
        .assert_failure("unknown KMS provider 'vault'");
    assert!(!rewrapped.exists());

    // The provider name "local" in the key section changed to "vault" (same length).
    let mut bytes = fs::read(&sealed).unwrap();
    let layout = SealedLayout::parse(&bytes);
    let at = layout.key_section + 2;
    assert_eq!(&bytes[at..at + 5], b"local");
    bytes[at..at + 5].copy_from_slice(b"vault");
    let renamed = dir.path().join("vault.sealed");
    fs::write(&renamed, &bytes).unwrap();
    sealgate(SEALGATE, ["verify", "--data-dir", utf8(&data), utf8(&renamed)])
        .assert_failure("vault key 'k1': provider not configured");
    let failed = Gateway::start_expecting_failure(GatewayOptions::new(SEALGATE).data_dir(&data).models(models_dir(
        dir.path(),
        "models",
        &renamed,
    )));
    failed.assert_stderr_contains("vault key 'k1': provider not configured");

    // serve with an HPKE key wrapped by an unknown provider.
    let failed = Gateway::start_expecting_failure(
        GatewayOptions::new(SEALGATE).data_dir(&data).arg("--hpke-key-kms").arg("vault:k"),
    );
    failed.assert_stderr_contains("unknown KMS provider 'vault'");
    assert_audit_intact(SEALGATE, &data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_provided_key_is_needed_and_never_stored() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let input = demo_model_path(CREDIT_RISK);
    let keys = dir.path().join("keys-outside-the-data-dir");
    fs::create_dir_all(&keys).unwrap();
    let (k1, k2) = (random_bytes(32), random_bytes(32));
    let (k1_path, k2_path) = (keys.join("k1.bin"), keys.join("k2.bin"));
    fs::write(&k1_path, &k1).unwrap();
    fs::write(&k2_path, &k2).unwrap();
    let sealed = dir.path().join("sealed").join("credit-risk.sealed");
    fs::create_dir_all(sealed.parent().unwrap()).unwrap();

    let output = sealgate(
        SEALGATE,
        seal_args(&input, &data, &sealed, "1", &["--kms", "customer-provided", "--customer-key", utf8(&k1_path)]),
    );
    output.assert_success();
    let fingerprint = SealedLayout::parse(&fs::read(&sealed).unwrap()).wrapped_keys[0].1.clone();
    assert_eq!(fingerprint.len(), 16, "an 8-byte fingerprint: {fingerprint}");
    assert!(output.stdout.contains(&format!("wrapped by customer-provided:{fingerprint}")), "{}", output.text());

    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--data-dir", utf8(&data), utf8(&sealed)];
        args.extend_from_slice(extra);
        sealgate_command(SEALGATE, args)
    };
    // The wrong key: refused, naming both fingerprints but neither key.
    let wrong = verify(&["--customer-key", utf8(&k2_path)]).run();
    wrong.assert_failure("fingerprint");
    assert!(wrong.stderr.contains(&fingerprint), "{}", wrong.text());
    // No key at all.
    verify(&[]).run().assert_failure("customer-provided key '");
    verify(&[]).run().assert_failure("provider not configured");
    // A key of the wrong size.
    let short = keys.join("short.bin");
    fs::write(&short, &k1[..31]).unwrap();
    verify(&["--customer-key", utf8(&short)]).run().assert_failure("32 raw bytes or 64 hex characters");

    // The right key from stdin, raw and as hex.
    let ok: CliOutput = verify(&["--customer-key", "-"]).stdin(k1.clone()).run();
    ok.assert_success().assert_stdout_contains(&format!("opened with customer-provided:{fingerprint}"));
    let hex_line = format!("{}\n", hex::encode(&k1));
    verify(&["--customer-key", "-"]).stdin(hex_line.clone()).run().assert_success();
    // The wrong key from stdin.
    verify(&["--customer-key", "-"]).stdin(k2.clone()).run().assert_failure("fingerprint");

    // serve: with the right key it serves; with the wrong one it refuses to start.
    let models = sealed.parent().unwrap().to_path_buf();
    let failed = Gateway::start_expecting_failure(
        GatewayOptions::new(SEALGATE).data_dir(&data).models(&models).arg("--customer-key").arg(utf8(&k2_path)),
    );
    failed.assert_stderr_contains("fingerprint");
    assert!(!data.join("published-models.json").exists());
    let gateway = Gateway::start(
        GatewayOptions::new(SEALGATE).data_dir(&data).models(&models).arg("--customer-key").arg(utf8(&k1_path)),
    );
    assert_serves_credit_risk(&gateway).await;
    gateway.stop();
    let logs = gateway.logs();
    // The customer key unwrapped the model at start and is dropped then: only the provider
    // that wraps the HPKE keys (local) is kept for the keys rotations add.
    let kept = logs.lines().find(|l| l.contains("KMS providers after start-up")).unwrap_or_else(|| panic!("{logs}"));
    assert!(kept.contains("kept=local") && kept.contains("dropped=customer-provided"), "{kept}");

    // The key, raw or hex in either case, is nowhere under the data dir or the artifact's
    // folder, nor in anything the gateway printed.
    let forms: [Vec<u8>; 3] =
        [k1.clone(), hex::encode(&k1).into_bytes(), hex::encode(&k1).to_ascii_uppercase().into_bytes()];
    for root in [&data, &models] {
        for file in list_files(root) {
            let bytes = fs::read(&file).unwrap();
            for form in &forms {
                assert!(!contains(&bytes, form), "the customer key is in {}", file.display());
            }
        }
    }
    for form in &forms[1..] {
        assert!(!logs.contains(std::str::from_utf8(form).unwrap()), "the customer key in the gateway's output");
    }

    let refused = refusals(&data);
    assert!(
        refused.iter().any(|e| e["provider"] == "customer-provided"
            && e["key_id"] == fingerprint.as_str()
            && e["result"].as_str().unwrap().contains("fingerprint")),
        "{refused:#?}"
    );
    assert_audit_intact(SEALGATE, &data);
    assert_no_plaintext(dir.path(), &credit_risk_onnx());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kms_through_moto_then_a_missing_kms_stops_start_up() {
    let mut moto = Moto::start();
    let env = moto.env();
    let dir = tempdir();
    let data = dir.path().join("data");
    let input = demo_model_path(CREDIT_RISK);
    let run = |args: Vec<&str>| sealgate_command(SEALGATE, args).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).run();

    let created = run(vec!["kms", "--data-dir", utf8(&data), "create", "--provider", "aws-kms", "sealgate e2e"]);
    created.assert_success().assert_stdout_contains("created AWS KMS key ");
    let key_id = created.stdout.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(!key_id.is_empty() && !key_id.contains(' '), "{}", created.text());

    let sealed = dir.path().join("credit-risk.sealed");
    run(seal_args(&input, &data, &sealed, "1", &["--kms", "aws-kms", "--key-id", &key_id])).assert_success();
    let layout = SealedLayout::parse(&fs::read(&sealed).unwrap());
    assert_eq!(layout.wrapped_keys[0].0, "aws-kms");
    run(vec!["verify", "--data-dir", utf8(&data), utf8(&sealed), "--aws-kms"])
        .assert_success()
        .assert_stdout_contains("opened with aws-kms:");
    // Without --aws-kms the provider is not configured.
    run(vec!["verify", "--data-dir", utf8(&data), utf8(&sealed)]).assert_failure("provider not configured");

    // The same model sealed as version 2: its wrapped key spliced into version 1 reaches
    // AWS KMS with the wrong encryption context, which refuses it.
    let other = dir.path().join("other.sealed");
    run(seal_args(&input, &data, &other, "2", &["--kms", "aws-kms", "--key-id", &key_id])).assert_success();
    let (bytes, other_bytes) = (fs::read(&sealed).unwrap(), fs::read(&other).unwrap());
    let other_layout = SealedLayout::parse(&other_bytes);
    let mut spliced = bytes[..layout.key_section].to_vec();
    spliced.extend_from_slice(&other_bytes[other_layout.key_section..other_layout.header_mac]);
    spliced.extend_from_slice(&bytes[layout.header_mac..]);
    let spliced_path = dir.path().join("spliced.sealed");
    fs::write(&spliced_path, spliced).unwrap();
    run(vec!["verify", "--data-dir", utf8(&data), utf8(&spliced_path), "--aws-kms"])
        .assert_failure("the data key could not be unwrapped");

    let models = models_dir(dir.path(), "models", &sealed);
    let options = |options: GatewayOptions| env.iter().fold(options, |o, (k, v)| o.env(*k, v.as_str()));
    let gateway =
        Gateway::start(options(GatewayOptions::new(SEALGATE).data_dir(&data).models(&models).arg("--aws-kms")));
    assert_serves_credit_risk(&gateway).await;
    gateway.stop();

    // The KMS goes away: start-up retries, then fails without listening.
    moto.stop();
    let started = Instant::now();
    let failed = Gateway::start_expecting_failure(options(
        GatewayOptions::new(SEALGATE).data_dir(&data).models(&models).arg("--aws-kms").arg("--kms-retries").arg("1"),
    ));
    let elapsed = started.elapsed();
    failed.assert_stderr_contains("the KMS stayed unreachable after 1 retries");
    failed.assert_stderr_contains("the KMS is unavailable");
    failed.assert_stderr_contains("retry 1/1");
    assert!(!failed.stderr.contains("loaded sealed model"), "{}", failed.text());
    assert!(elapsed < Duration::from_secs(25), "a missing KMS took {elapsed:?} to report");

    run(vec!["verify", "--data-dir", utf8(&data), utf8(&sealed), "--aws-kms"]).assert_failure("unavailable");

    let refused = refusals(&data);
    assert!(
        refused.iter().any(|e| e["provider"] == "aws-kms"
            && e["op"] == "unwrap"
            && e["result"].as_str().unwrap().contains("the KMS is unavailable")),
        "{refused:#?}"
    );
    assert!(
        refused.iter().any(|e| e["provider"] == "aws-kms" && e["result"].as_str().unwrap().contains("unwrapped")),
        "the wrong-context refusal: {refused:#?}"
    );
    assert_audit_intact(SEALGATE, &data);
    assert_no_plaintext(dir.path(), &credit_risk_onnx());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_through_softhsm() {
    const TOKEN: &str = "sealgate-e2e";
    let hsm = SoftHsm::new(&[TOKEN]);
    let env = hsm.env();
    let dir = tempdir();
    let data = dir.path().join("data");
    let input = demo_model_path(CREDIT_RISK);
    let with_env = |args: Vec<&str>| sealgate_command(SEALGATE, args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));

    // The provider flags go before the `kms` subcommand (see
    // `kms_create_accepts_provider_flags_after_the_subcommand`).
    with_env(vec![
        "kms",
        "--data-dir",
        utf8(&data),
        "--pkcs11-token",
        TOKEN,
        "create",
        "--provider",
        "pkcs11",
        "mykey",
    ])
    .run()
    .assert_success()
    .assert_stdout_contains("created PKCS#11 key 'mykey'");

    let sealed = dir.path().join("credit-risk.sealed");
    with_env(seal_args(
        &input,
        &data,
        &sealed,
        "1",
        &["--kms", "pkcs11", "--pkcs11-token", TOKEN, "--key-id", "mykey"],
    ))
    .run()
    .assert_success()
    .assert_stdout_contains("wrapped by pkcs11:mykey");
    with_env(vec!["verify", "--data-dir", utf8(&data), utf8(&sealed), "--pkcs11-token", TOKEN])
        .run()
        .assert_success()
        .assert_stdout_contains("opened with pkcs11:mykey");

    // Without the token, or with a wrong PIN, it does not open.
    with_env(vec!["verify", "--data-dir", utf8(&data), utf8(&sealed)]).run().assert_failure("provider not configured");
    with_env(vec!["verify", "--data-dir", utf8(&data), utf8(&sealed), "--pkcs11-token", TOKEN])
        .env("SEALGATE_PKCS11_PIN", "0000")
        .run()
        .assert_failure("the user PIN is incorrect");
    // A key that is not on the token.
    with_env(seal_args(
        &input,
        &data,
        &dir.path().join("nokey.sealed"),
        "1",
        &["--kms", "pkcs11", "--pkcs11-token", TOKEN, "--key-id", "nokey"],
    ))
    .run()
    .assert_failure("nokey");

    let models = models_dir(dir.path(), "models", &sealed);
    let options =
        env.iter().fold(GatewayOptions::new(SEALGATE).data_dir(&data).models(&models), |o, (k, v)| o.env(*k, v));
    let gateway = Gateway::start(options.clone().arg("--pkcs11-token").arg(TOKEN));
    assert_serves_credit_risk(&gateway).await;
    gateway.stop();
    // Without the token configured, serve refuses.
    Gateway::start_expecting_failure(options).assert_stderr_contains("provider not configured");

    assert!(
        audit_entries(&data).iter().any(|e| e["provider"] == "pkcs11" && e["op"] == "unwrap" && e["result"] == "ok")
    );
    assert_audit_intact(SEALGATE, &data);
    assert_no_plaintext(dir.path(), &credit_risk_onnx());
    assert_no_plaintext(hsm.dir(), &credit_risk_onnx());
}

/// Every refusal of bad input is recorded in the audit log, an unknown provider included:
/// `kms create --provider vault` and `seal --kms vault` each leave a `refused:` entry.
#[test]
fn unknown_provider_refusals_are_audited() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let input = demo_model_path(CREDIT_RISK);
    let out = dir.path().join("out.sealed");
    sealgate(SEALGATE, ["kms", "--data-dir", utf8(&data), "create", "k", "--provider", "vault"])
        .assert_failure("unknown KMS provider 'vault'");
    sealgate(SEALGATE, seal_args(&input, &data, &out, "1", &["--kms", "vault"]))
        .assert_failure("unknown KMS provider 'vault'");
    let refused: Vec<String> = refusals(&data).iter().map(|e| e["result"].to_string()).collect();
    assert_eq!(refused.iter().filter(|r| r.contains("unknown KMS provider 'vault'")).count(), 2, "{refused:#?}");
    assert_audit_intact(SEALGATE, &data);
}

/// `sealgate kms create --provider pkcs11 --pkcs11-token L NAME`: provider flags are global,
/// so they work after the subcommand too.
#[test]
fn kms_create_accepts_provider_flags_after_the_subcommand() {
    const TOKEN: &str = "sealgate-e2e";
    let hsm = SoftHsm::new(&[TOKEN]);
    let dir = tempdir();
    let data = dir.path().join("data");
    sealgate_command(
        SEALGATE,
        ["kms", "create", "--data-dir", utf8(&data), "--provider", "pkcs11", "--pkcs11-token", TOKEN, "k"],
    )
    .envs(hsm.env())
    .run()
    .assert_success()
    .assert_stdout_contains("created PKCS#11 key 'k'");
}

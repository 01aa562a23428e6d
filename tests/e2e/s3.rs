//! Sealed models in S3 through the real `sealgate` binary, against a moto server started by
//! the test (moto serves S3 and KMS at one endpoint): `publish` from a model team's data dir
//! (its artifacts sealed under an AWS KMS key), then `serve --models s3://...` from a
//! gateway's own data dir; what `publish` refuses (plaintext, other content under a published
//! version); Object Lock; a tampered or renamed object refused at start; S3 unreachable.
//!
//! Moto 5.2 enforces, and these tests check: `If-None-Match: *` on PutObject, and a
//! DeleteObject of a version in compliance-mode retention (AccessDenied). It does NOT
//! enforce compliance mode's other half: it lets `PutObjectRetention` weaken a compliance
//! lock to governance (real S3 refuses), so that rule is not tested here. An overwrite of a
//! locked key creates a new version in S3 as in moto (Object Lock protects versions, not
//! keys): `publish` refuses it, and `serve` refuses whatever else is written there. The
//! bucket policy of deploy/s3/ is not applied here: moto evaluates bucket policies but not
//! the S3 condition keys it uses, and refuses even a correct upload under it.

use std::path::Path;
use std::time::{Duration, Instant};

use sealgate_test_support::moto::Moto;
use sealgate_test_support::{
    CliOutput, EXAMPLE_LABELS, Gateway, GatewayOptions, assert_audit_intact, assert_no_plaintext, audit_entries,
    demo_model_path, example_request, labels, sealgate_command,
};

use crate::SEALGATE;

const CREDIT_RISK: &str = "credit-risk";
const BUCKET: &str = "sealed-models";
/// The secret access key every command gets: it must never appear in any output or log.
const CANARY_SECRET: &str = "canary-secret-4c1f9e0b7d";

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The AWS settings of the model team and the gateway: moto's, with the canary secret.
fn aws_env(moto: &Moto) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    for (key, value) in &mut env {
        if *key == "AWS_SECRET_ACCESS_KEY" {
            *value = CANARY_SECRET.into();
        }
    }
    env
}

/// Runs a boto3 script against moto's S3 (`s3` is the client, `BUCKET` the bucket) and
/// returns what it printed: the test's independent view of the bucket.
fn boto3(moto: &Moto, script: &str) -> String {
    let prelude = format!(
        "import boto3, datetime, json, sys\n\
         s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', \
         aws_secret_access_key='test')\n\
         BUCKET = '{BUCKET}'\n",
        moto.endpoint
    );
    let output = std::process::Command::new("python3").arg("-c").arg(prelude + script).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "boto3 failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The bucket, with Object Lock enabled at creation (which turns versioning on).
fn create_bucket(moto: &Moto) {
    boto3(moto, "s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)");
}

fn keys(moto: &Moto) -> Vec<String> {
    let out =
        boto3(moto, "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket=BUCKET).get('Contents', [])]))");
    serde_json::from_str(out.trim()).unwrap()
}

/// A model team's machine: a data dir, an AWS KMS key, and `sealgate` with the AWS settings.
struct Team<'a> {
    env: Vec<(&'static str, String)>,
    data: std::path::PathBuf,
    key_id: String,
    dir: &'a Path,
}

impl<'a> Team<'a> {
    fn new(moto: &Moto, dir: &'a Path) -> Self {
        let env = aws_env(moto);
        let data = dir.join("team-data");
        let mut team = Team { env, data, key_id: String::new(), dir };
        let created = team.run(vec!["kms", "--data-dir", utf8(&team.data), "create", "--provider", "aws-kms", "team"]);
        created.assert_success();
        team.key_id = created.stdout.trim().rsplit(' ').next().unwrap().to_owned();
        team
    }

    fn run(&self, args: Vec<&str>) -> CliOutput {
        let output = sealgate_command(SEALGATE, args).envs(self.env.iter().map(|(k, v)| (*k, v.as_str()))).run();
        assert!(!output.text().contains(CANARY_SECRET), "the secret key leaked: {}", output.text());
        output
    }

    /// `credit-risk` sealed as `version` under the team's AWS KMS key, as `file`.
    fn seal(&self, version: &str, file: &str) -> std::path::PathBuf {
        let out = self.dir.join(file);
        let input = demo_model_path(CREDIT_RISK);
        let data = utf8(&self.data);
        let args =
            ["seal", "--data-dir", data, "--model", CREDIT_RISK, "--version", version, "--kms", "aws-kms", "--key-id"];
        let mut args = args.to_vec();
        args.extend([self.key_id.as_str(), utf8(&input), "-o", utf8(&out)]);
        self.run(args).assert_success();
        out
    }

    fn publish(&self, artifact: &Path, destination: &str, extra: &[&str]) -> CliOutput {
        let mut args = vec!["publish", "--data-dir", utf8(&self.data), utf8(artifact), destination];
        args.extend_from_slice(extra);
        self.run(args)
    }
}

fn gateway_options(moto: &Moto, data: &Path, models: &str) -> GatewayOptions {
    let options = GatewayOptions::new(SEALGATE).data_dir(data).models(models).arg("--aws-kms");
    aws_env(moto).into_iter().fold(options, |o, (k, v)| o.env(k, v))
}

async fn assert_serves_credit_risk(gateway: &Gateway) {
    let response = gateway
        .client()
        .infer(CREDIT_RISK, &example_request(CREDIT_RISK))
        .await
        .unwrap_or_else(|e| panic!("inference failed: {e}\n{}", gateway.logs()));
    assert_eq!(labels(&response), EXAMPLE_LABELS);
}

fn entries(data: &Path, op: &str) -> Vec<serde_json::Value> {
    audit_entries(data).into_iter().filter(|e| e["op"] == op).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_serve_from_the_bucket() {
    let moto = Moto::start();
    create_bucket(&moto);
    let dir = tempfile::Builder::new().prefix("sealgate-s3-").tempdir().unwrap();
    let team = Team::new(&moto, dir.path());
    let sealed = team.seal("1", "credit-risk-1.sealed");
    let key = "team/credit-risk/1.sealed";

    // A plaintext model is refused before any byte is uploaded (or S3 is contacted).
    let plaintext = team.publish(&demo_model_path(CREDIT_RISK), "s3://sealed-models/team/", &[]);
    plaintext.assert_failure("not a sealed artifact");
    plaintext.assert_failure("plaintext ONNX model");
    assert!(keys(&moto).is_empty(), "nothing uploaded");

    let published = team.publish(&sealed, "s3://sealed-models/team/", &["--retain-days", "1"]);
    published.assert_success().assert_stdout_contains(&format!("published credit-risk@1 to s3://{BUCKET}/{key}"));
    published.assert_stdout_contains("Object Lock COMPLIANCE until ");
    assert_eq!(keys(&moto), [key]);
    let head = boto3(
        &moto,
        &format!(
            "h = s3.head_object(Bucket=BUCKET, Key='{key}')\n\
             print(json.dumps([h['ContentType'], h['Metadata'], h['ObjectLockMode'], h['VersionId'], h['ETag']]))"
        ),
    );
    let head: serde_json::Value = serde_json::from_str(head.trim()).unwrap();
    assert_eq!(head[0], "application/vnd.sealgate.sealed");
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&sealed).unwrap()));
    assert_eq!(head[1]["sealgate-sha256"], sha256.as_str());
    assert_eq!(head[2], "COMPLIANCE");
    let tags = boto3(&moto, &format!("print(json.dumps(s3.get_object_tagging(Bucket=BUCKET, Key='{key}')['TagSet']))"));
    let tags: serde_json::Value = serde_json::from_str(tags.trim()).unwrap();
    assert_eq!(
        tags,
        serde_json::json!([{"Key": "sealgate-artifact", "Value": "sealed"}]),
        "the tag the policy requires"
    );
    let (version_id, etag) =
        (head[3].as_str().unwrap().to_owned(), head[4].as_str().unwrap().trim_matches('"').to_owned());

    // The same bytes again: already published. Other content as the same version: refused,
    // and nothing is written.
    team.publish(&sealed, "s3://sealed-models/team", &[]).assert_success().assert_stdout_contains("already published");
    let other = team.seal("1", "credit-risk-1-other.sealed");
    team.publish(&other, "s3://sealed-models/team/", &[])
        .assert_failure(&format!("s3://{BUCKET}/{key} already holds credit-risk@1 with other content"));
    let versions = boto3(&moto, "print(len(s3.list_object_versions(Bucket=BUCKET)['Versions']))");
    assert_eq!(versions.trim(), "1", "the refused publish wrote nothing");

    // The lock: the version cannot be deleted (moto enforces this much, see the module doc).
    let delete = boto3(
        &moto,
        &format!(
            "try:\n    s3.delete_object(Bucket=BUCKET, Key='{key}', VersionId='{version_id}')\n    print('deleted')\n\
             except Exception as e:\n    print(e)"
        ),
    );
    assert!(delete.contains("AccessDenied"), "{delete}");

    let publishes = entries(&team.data, "s3-publish");
    let expected = format!("s3://{BUCKET}/{key} version={version_id} etag={etag}");
    assert!(publishes.iter().any(|e| e["key_id"] == expected.as_str() && e["result"] == "ok"), "{publishes:#?}");
    assert!(publishes.iter().any(|e| e["result"].as_str().unwrap().contains("other content")), "{publishes:#?}");

    // The gateway: its own data dir, the AWS KMS key through --aws-kms, the bucket.
    let gateway_data = dir.path().join("gateway-data");
    let gateway = Gateway::start(gateway_options(&moto, &gateway_data, "s3://sealed-models/team/"));
    assert_serves_credit_risk(&gateway).await;
    let logs = gateway.logs();
    gateway.stop();
    assert!(!logs.contains(CANARY_SECRET), "the secret key leaked into the gateway's logs");
    let downloads = entries(&gateway_data, "s3-download");
    assert!(
        downloads.iter().any(|e| e["key_id"] == expected.as_str() && e["artifact"] == "credit-risk@1"),
        "{downloads:#?}"
    );
    assert_audit_intact(SEALGATE, &team.data);
    assert_audit_intact(SEALGATE, &gateway_data);
    let onnx = std::fs::read(demo_model_path(CREDIT_RISK)).unwrap();
    assert_no_plaintext(dir.path(), &onnx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_renamed_object_is_refused_at_serve() {
    let moto = Moto::start();
    create_bucket(&moto);
    let dir = tempfile::Builder::new().prefix("sealgate-s3-").tempdir().unwrap();
    let team = Team::new(&moto, dir.path());
    let sealed = team.seal("1", "credit-risk-1.sealed");
    team.publish(&sealed, "s3://sealed-models/good/", &[]).assert_success();
    team.publish(&sealed, "s3://sealed-models/tampered/", &[]).assert_success();
    // Written past `publish`, as someone with write access to the bucket could: one byte of the
    // last frame changed (a new version of the key), and a copy under another model's name.
    boto3(
        &moto,
        "k = 'tampered/credit-risk/1.sealed'\n\
         body = bytearray(s3.get_object(Bucket=BUCKET, Key=k)['Body'].read())\n\
         body[-20] ^= 1\n\
         s3.put_object(Bucket=BUCKET, Key=k, Body=bytes(body))\n\
         s3.copy_object(Bucket=BUCKET, Key='renamed/fraud-score/1.sealed', \
         CopySource={'Bucket': BUCKET, 'Key': 'good/credit-risk/1.sealed'})",
    );
    let data = dir.path().join("gateway-data");
    let failed = Gateway::start_expecting_failure(gateway_options(&moto, &data, "s3://sealed-models/tampered/"));
    failed.assert_stderr_contains(&format!("refusing s3://{BUCKET}/tampered/credit-risk/1.sealed"));
    assert!(!failed.stderr.contains("loaded sealed model"), "{}", failed.text());
    let failed = Gateway::start_expecting_failure(gateway_options(&moto, &data, "s3://sealed-models/renamed/"));
    failed.assert_stderr_contains("a renamed artifact cannot pose as another model");
    failed.assert_stderr_contains("publish it as credit-risk/1.sealed");

    let gateway = Gateway::start(gateway_options(&moto, &data, "s3://sealed-models/good/"));
    assert_serves_credit_risk(&gateway).await;
    gateway.stop();
    let refused: Vec<_> = entries(&data, "load");
    assert!(refused.iter().any(|e| e["result"].as_str().unwrap().contains("renamed")), "{refused:#?}");
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert_audit_intact(SEALGATE, &data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_unreachable_after_start_and_at_start() {
    let mut moto = Moto::start();
    create_bucket(&moto);
    let dir = tempfile::Builder::new().prefix("sealgate-s3-").tempdir().unwrap();
    let team = Team::new(&moto, dir.path());
    let sealed = team.seal("1", "credit-risk-1.sealed");
    team.publish(&sealed, "s3://sealed-models/team/", &[]).assert_success();
    let data = dir.path().join("gateway-data");
    let gateway = Gateway::start(gateway_options(&moto, &data, "s3://sealed-models/team/"));
    assert_serves_credit_risk(&gateway).await;

    // After start: the models are in memory, serving continues.
    moto.stop();
    assert_serves_credit_risk(&gateway).await;
    gateway.stop();

    // At start: retried with backoff, then one clear line.
    let started = Instant::now();
    let failed = Gateway::start_expecting_failure(
        gateway_options(&moto, &data, "s3://sealed-models/team/").arg("--kms-retries").arg("1"),
    );
    failed.assert_stderr_contains("retry 1/1");
    failed.assert_stderr_contains(&format!("listing s3://{BUCKET}/team/: S3 stayed unreachable after 1 retries"));
    assert!(!failed.text().contains(CANARY_SECRET), "{}", failed.text());
    assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
    // Publishing while moto is gone: its KMS is gone too, so verification (before any upload)
    // is what fails.
    team.publish(&sealed, "s3://sealed-models/team/", &["--retries", "0"])
        .assert_failure("it failed verification: the KMS is unavailable");
}

/// Waits up to `timeout` for `needle` in the gateway's logs.
fn wait_for_log(gateway: &Gateway, needle: &str, timeout: Duration) {
    let started = Instant::now();
    while !gateway.logs().contains(needle) {
        assert!(started.elapsed() < timeout, "no '{needle}' after {timeout:?}:\n{}", gateway.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_refresh_serves_new_versions_and_survives_s3_going_away() {
    let mut moto = Moto::start();
    create_bucket(&moto);
    let dir = tempfile::Builder::new().prefix("sealgate-s3-").tempdir().unwrap();
    let team = Team::new(&moto, dir.path());
    team.publish(&team.seal("1", "credit-risk-1.sealed"), "s3://sealed-models/team/", &[]).assert_success();
    let data = dir.path().join("gateway-data");
    let gateway =
        Gateway::start(gateway_options(&moto, &data, "s3://sealed-models/team/").arg("--models-refresh").arg("1s"));
    assert_serves_credit_risk(&gateway).await;

    // A new version, published while the gateway runs, is served without a restart.
    team.publish(&team.seal("2", "credit-risk-2.sealed"), "s3://sealed-models/team/", &[]).assert_success();
    wait_for_log(&gateway, "serving a new model version from the bucket", Duration::from_secs(30));
    assert!(gateway.logs().contains("version=2"), "{}", gateway.logs());
    assert_serves_credit_risk(&gateway).await;
    let downloads = entries(&data, "s3-download");
    assert!(downloads.iter().any(|e| e["artifact"] == "credit-risk@2"), "{downloads:#?}");

    // S3 goes away: each look fails with one log line, serving continues.
    moto.stop();
    wait_for_log(&gateway, "models refresh failed; serving what was loaded", Duration::from_secs(30));
    assert_serves_credit_risk(&gateway).await;
    assert!(!gateway.logs().contains(CANARY_SECRET));
    gateway.stop();
    assert_audit_intact(SEALGATE, &data);
}

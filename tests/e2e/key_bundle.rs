//! Moving HPKE keys between replicas: `sealgate keys export` writes the key list and the
//! KMS-sealed key files into one bundle, `sealgate keys import` installs it on another
//! replica after unwrapping every key with that replica's KMS. A running gateway serves the
//! imported keys without a restart; a bundle this replica cannot unwrap, or one that was
//! edited, is refused whole, leaving the keys as they were, and the refusal is audited.

use std::path::Path;
use std::time::{Duration, Instant};

use sealgate_protocol::bhttp;
use sealgate_test_support::{
    Gateway, GatewayOptions, assert_audit_intact, audit_entries, copy_data_dir, example_request, inner_request,
    sealgate_command,
};

use crate::SEALGATE;

fn keys(data: &Path, args: &[&str]) -> sealgate_test_support::CliOutput {
    sealgate_command(SEALGATE, ["keys"]).args(args).arg("--data-dir").arg(data).run()
}

/// The key list's rows (`keys list` stdout without the header): ids, KEMs, states, SHA-256s.
fn key_rows(data: &Path) -> Vec<String> {
    let listed = keys(data, &["list"]);
    listed.assert_success();
    listed.stdout.lines().skip(1).map(str::to_owned).collect()
}

fn credit_risk_request(gateway: &Gateway) -> bhttp::Request {
    let body = serde_json::to_vec(&example_request("credit-risk")).unwrap();
    inner_request(gateway, "POST", "/v2/models/credit-risk/infer", body)
}

fn wait_for_key_set(gateway: &Gateway, ids: &str) {
    let wanted = format!("keys={ids}");
    let started = Instant::now();
    while !gateway.logs().lines().any(|l| l.contains("serving a new set of HPKE keys") && l.contains(&wanted)) {
        assert!(started.elapsed() < Duration::from_secs(20), "the gateway never served {wanted}:\n{}", gateway.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_exported_from_one_replica_is_served_by_another_without_a_restart() {
    let a = Gateway::start(GatewayOptions::new(SEALGATE));
    let copy = tempfile::tempdir().unwrap();
    let b_data = copy.path().join("b");
    copy_data_dir(&a.data_dir(), &b_data);
    let b = Gateway::start(GatewayOptions::new(SEALGATE).data_dir(&b_data));

    keys(&a.data_dir(), &["rotate", "--grace", "1h"]).assert_success();
    let bundle = copy.path().join("keys-bundle.json");
    let exported = keys(&a.data_dir(), &["export", "--out", bundle.to_str().unwrap()]);
    exported.assert_success();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(text.contains("\"format\": \"sealgate-keys-bundle\"") && text.contains("ciphertext_hex"), "{text}");

    let imported = keys(&b_data, &["import", bundle.to_str().unwrap()]);
    imported.assert_success();
    assert!(imported.stderr.contains("ohttp-key-import: key 3"), "{}", imported.text());
    assert_eq!(key_rows(&b_data), key_rows(&a.data_dir()), "the replicas list the same keys");
    wait_for_key_set(&b, "[3, 4, 1, 2]");

    // A client that fetched the new keys from one replica is answered by the other.
    let config = a.fetch_key_config().await;
    assert_eq!(config.key_id(), 3, "the new X25519 key is advertised first");
    let answer = b.exchange(&config, &credit_risk_request(&b)).await;
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));

    let ops: Vec<String> = audit_entries(&b_data).iter().map(|e| e["op"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ops.iter().filter(|o| *o == "ohttp-key-import").count(), 4, "{ops:?}");
    assert!(audit_entries(&a.data_dir()).iter().any(|e| e["op"] == "ohttp-key-export"));
    assert_audit_intact(SEALGATE, &b_data);

    // Standard input and output work too.
    let piped = sealgate_command(SEALGATE, ["keys", "export", "--data-dir"]).arg(a.data_dir()).run();
    piped.assert_success();
    let again = sealgate_command(SEALGATE, ["keys", "import", "-", "--data-dir"])
        .arg(&b_data)
        .stdin(piped.stdout.as_bytes().to_vec())
        .run();
    again.assert_success();
}

#[test]
fn a_bundle_that_does_not_unwrap_or_was_edited_changes_nothing() {
    let dirs = tempfile::tempdir().unwrap();
    let (source, target, other) = (dirs.path().join("source"), dirs.path().join("target"), dirs.path().join("other"));
    // The source and another data dir, each with its own keys and local keyring (made by
    // `serve`); the target shares the source's keyring but has rotated its own keys since.
    for data in [&source, &other] {
        Gateway::start(GatewayOptions::new(SEALGATE).data_dir(data)).stop();
    }
    copy_data_dir(&source, &target);
    keys(&target, &["rotate", "--grace", "1h"]).assert_success();
    let exported = keys(&source, &["export"]);
    exported.assert_success();
    let foreign = keys(&other, &["export"]);
    foreign.assert_success();
    let bundle: serde_json::Value = serde_json::from_str(&exported.stdout).unwrap();
    let keys_before = std::fs::read(target.join("keys/keys.json")).unwrap();
    let files_before = sealgate_test_support::list_files(&target.join("keys"));

    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut copy = bundle.clone();
        edit(&mut copy);
        serde_json::to_vec(&copy).unwrap()
    };
    let first_id = bundle["list"]["keys"][0]["key_id"].to_string();
    let second_id = bundle["list"]["keys"][1]["key_id"].to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // Sealed by the other data dir's local keyring, which this one does not hold.
        ("another keyring", foreign.stdout.clone().into_bytes(), "this replica's KMS must be able to unwrap"),
        ("not JSON", b"{ not a bundle".to_vec(), "is not a key bundle"),
        ("a plaintext key file", b"-----BEGIN PRIVATE KEY-----\n".to_vec(), "is not a key bundle"),
        ("another format", edited(&|b| b["format"] = "something-else".into()), "not a key bundle"),
        ("a newer version", edited(&|b| b["version"] = 2.into()), "version 2 is not supported"),
        (
            "a changed config hash",
            edited(&|b| b["list"]["keys"][0]["config_sha256"] = "00".repeat(32).into()),
            "is not the key the bundle's list names",
        ),
        (
            "key files swapped",
            edited(&|b| {
                let files = b["files"].as_object_mut().unwrap();
                let one = files[&first_id].clone();
                files.insert(first_id.clone(), files[&second_id].clone());
                files.insert(second_id.clone(), one);
            }),
            // Each file names its own key id, under which it unwraps: then it is not the key
            // its place in the list names.
            "is not the key the bundle's list names",
        ),
        (
            "a missing key file",
            edited(&|b| drop(b["files"].as_object_mut().unwrap().remove(&first_id))),
            "holds no key file",
        ),
        (
            "a key file the list does not name",
            edited(&|b| {
                let file = b["files"][&first_id].clone();
                b["files"].as_object_mut().unwrap().insert("77".into(), file);
            }),
            "key 77, which its list does not accept",
        ),
        (
            "a key listed twice",
            edited(&|b| {
                let first = b["list"]["keys"][0].clone();
                b["list"]["keys"].as_array_mut().unwrap().push(first);
            }),
            "is listed twice",
        ),
        ("an unknown field", edited(&|b| b["private_key"] = "x".into()), "unknown field"),
    ];
    for (case, bytes, says) in cases {
        let path = dirs.path().join("bundle.json");
        std::fs::write(&path, &bytes).unwrap();
        let refused = keys(&target, &["import", path.to_str().unwrap()]);
        refused.assert_failure(says);
        assert!(!refused.text().contains("ciphertext_hex"), "{case}: the error repeats the bundle: {}", refused.text());
        assert_eq!(std::fs::read(target.join("keys/keys.json")).unwrap(), keys_before, "{case}: the key list changed");
        assert_eq!(sealgate_test_support::list_files(&target.join("keys")), files_before, "{case}: key files changed");
    }
    // Refusals of bundles that parsed are audited (the others never reached the store).
    let refused = audit_entries(&target).iter().filter(|e| e["op"] == "ohttp-key-change").count();
    assert!(refused >= 6, "refused imports are audited: {refused}");
    assert_audit_intact(SEALGATE, &target);
    // The unedited bundle is accepted: the checks above refused the edits, not the bundle.
    keys(&target, &["import", "-"]).assert_failure("is not a key bundle");
    let accepted = sealgate_command(SEALGATE, ["keys", "import", "-", "--data-dir"])
        .arg(&target)
        .stdin(exported.stdout.as_bytes().to_vec())
        .run();
    accepted.assert_success();
    assert_eq!(key_rows(&target), key_rows(&source));
}

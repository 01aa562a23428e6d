//! The `aws-kms` provider against a real implementation of the AWS KMS protocol: a moto
//! server per test (`sealgate_test_support::moto`).
//!
//! Moto checks encryption contexts and ciphertexts like KMS does, which is what these tests
//! rely on. It does not enforce disabled or pending-deletion states, so those rules are
//! tested in the `local` provider, not here.

use std::time::{Duration, Instant};

use sealgate_models::kms::aws::{AwsKms, AwsKmsConfig};
use sealgate_models::kms::{DataKey, EncryptionContext, KeyState, KmsError, KmsProvider, WrappedKey};
use sealgate_test_support::moto::{Moto, free_port};
use zeroize::Zeroizing;

fn config(endpoint: &str) -> AwsKmsConfig {
    AwsKmsConfig {
        endpoint_url: Some(endpoint.to_owned()),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: Zeroizing::new("testing".into()),
        session_token: None,
    }
}

/// A moto server, a provider talking to it, and a fresh key.
fn setup() -> (Moto, AwsKms, String) {
    let moto = Moto::start();
    let kms = AwsKms::new(config(&moto.endpoint)).unwrap();
    let key_id = kms.create_key("sealgate test key").unwrap();
    (moto, kms, key_id)
}

fn context(version: &str) -> EncryptionContext {
    [("model".to_owned(), "credit-risk".to_owned()), ("version".to_owned(), version.to_owned())].into()
}

#[test]
fn generate_then_decrypt_round_trips() {
    let (_moto, kms, key_id) = setup();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    assert_eq!(generated.wrapped.provider, "aws-kms");
    // The ARN that KMS answers with, which names the key id.
    assert!(generated.wrapped.key_id.contains(&key_id), "{}", generated.wrapped.key_id);
    assert_ne!(generated.plaintext.expose(), &[0u8; 32]);

    let unwrapped = kms.decrypt_data_key(&generated.wrapped, &context("1")).unwrap();
    assert_eq!(unwrapped.expose(), generated.plaintext.expose());
}

#[test]
fn wrap_existing_key_then_decrypt() {
    let (_moto, kms, key_id) = setup();
    let key = DataKey::generate().unwrap();
    let wrapped = kms.wrap_data_key(&key_id, &key, &context("2")).unwrap();
    assert_eq!(kms.decrypt_data_key(&wrapped, &context("2")).unwrap().expose(), key.expose());

    // An empty context works too, and is not interchangeable with a non-empty one.
    let wrapped = kms.wrap_data_key(&key_id, &key, &EncryptionContext::new()).unwrap();
    assert_eq!(kms.decrypt_data_key(&wrapped, &EncryptionContext::new()).unwrap().expose(), key.expose());
    assert!(matches!(kms.decrypt_data_key(&wrapped, &context("2")), Err(KmsError::Unwrap)));
}

#[test]
fn decrypt_with_another_context_fails() {
    let (_moto, kms, key_id) = setup();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    let result = kms.decrypt_data_key(&generated.wrapped, &context("2"));
    assert!(matches!(result, Err(KmsError::Unwrap)), "{result:?}");
}

#[test]
fn tampered_ciphertext_fails() {
    let (_moto, kms, key_id) = setup();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    let mut tampered = generated.wrapped.clone();
    let last = tampered.ciphertext.last_mut().unwrap();
    *last ^= 0x01;
    let result = kms.decrypt_data_key(&tampered, &context("1"));
    assert!(matches!(result, Err(KmsError::Unwrap)), "{result:?}");
}

#[test]
fn ciphertext_of_another_key_fails() {
    let (_moto, kms, key_id) = setup();
    let other_key = kms.create_key("another key").unwrap();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    let moved = WrappedKey { key_id: other_key, ..generated.wrapped };
    let result = kms.decrypt_data_key(&moved, &context("1"));
    // AWS answers IncorrectKeyException (mapped to Unwrap); moto 5.2 answers
    // AccessDeniedException instead, which stays a Backend error since on AWS it means a
    // missing permission. Either way the key must not come back.
    assert!(matches!(result, Err(KmsError::Unwrap | KmsError::Backend(_))), "{result:?}");
}

#[test]
fn unknown_key_is_not_found() {
    let (_moto, kms, _key_id) = setup();
    let missing = "11111111-2222-3333-4444-555555555555";
    let result = kms.generate_data_key(missing, &context("1"));
    assert!(matches!(&result, Err(KmsError::KeyNotFound(id)) if id == missing), "{result:?}");
    let result = kms.describe_key(missing);
    assert!(matches!(&result, Err(KmsError::KeyNotFound(_))), "{result:?}");
    let wrapped = WrappedKey { provider: "aws-kms".into(), key_id: missing.into(), ciphertext: vec![1; 64] };
    let result = kms.decrypt_data_key(&wrapped, &context("1"));
    assert!(matches!(&result, Err(KmsError::KeyNotFound(_))), "{result:?}");
}

#[test]
fn unreachable_endpoint_is_unavailable_and_fails_fast() {
    // A port nothing listens on: connections are refused at once.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let kms = AwsKms::new(config(&endpoint)).unwrap();
    let started = Instant::now();
    let result = kms.generate_data_key("any-key", &context("1"));
    let elapsed = started.elapsed();
    let error = result.unwrap_err();
    assert!(matches!(error, KmsError::Unavailable(_)), "{error:?}");
    assert!(error.is_transient());
    assert!(error.to_string().contains(&endpoint), "{error}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn describe_created_key_is_enabled() {
    let (_moto, kms, key_id) = setup();
    let metadata = kms.describe_key(&key_id).unwrap();
    assert_eq!(metadata.provider, "aws-kms");
    assert!(metadata.key_id.contains(&key_id), "{}", metadata.key_id);
    assert_eq!(metadata.state, KeyState::Enabled);
    assert_eq!(metadata.versions, 1);
    assert_eq!(kms.name(), "aws-kms");
}

#[test]
fn error_texts_never_contain_the_data_key() {
    let (moto, kms, key_id) = setup();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    let key = generated.plaintext.expose();
    let forms = [hex::encode(key), hex::encode_upper(key), format!("{key:?}")];

    let mut tampered = generated.wrapped.clone();
    tampered.ciphertext[40] ^= 0xff;
    let unreachable = AwsKms::new(config(&format!("http://127.0.0.1:{}", free_port()))).unwrap();
    let errors = [
        kms.decrypt_data_key(&generated.wrapped, &context("2")).unwrap_err(),
        kms.decrypt_data_key(&tampered, &context("1")).unwrap_err(),
        kms.wrap_data_key("no-such-key", &generated.plaintext, &context("1")).unwrap_err(),
        unreachable.wrap_data_key(&key_id, &generated.plaintext, &context("1")).unwrap_err(),
        unreachable.decrypt_data_key(&generated.wrapped, &context("1")).unwrap_err(),
    ];
    drop(moto);
    for error in &errors {
        for text in [error.to_string(), format!("{error:?}")] {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "error text contains the key: {text}");
            }
        }
    }
    assert!(!format!("{:?}", generated.plaintext).contains(&forms[0]));
}

#[test]
fn works_when_called_from_inside_an_async_runtime() {
    let (_moto, kms, key_id) = setup();
    let kms = std::sync::Arc::new(kms);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        // The recommended way: a blocking thread of the caller's runtime.
        let (kms2, key2) = (kms.clone(), key_id.clone());
        let generated =
            tokio::task::spawn_blocking(move || kms2.generate_data_key(&key2, &context("1"))).await.unwrap().unwrap();
        // Directly from async code: blocks this worker for the call, but neither panics
        // nor deadlocks.
        let unwrapped = kms.decrypt_data_key(&generated.wrapped, &context("1")).unwrap();
        assert_eq!(unwrapped.expose(), generated.plaintext.expose());
    });
}

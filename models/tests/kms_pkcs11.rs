//! The `pkcs11` provider against a real PKCS#11 module: SoftHSM2 with tokens in a temporary
//! directory, one installation per test process (`SoftHsm::for_this_process`: the module
//! reads its configuration once per process). Each test uses key labels of its own, since
//! under `cargo test` the tests of this file share one token.

use sealgate_models::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use sealgate_models::kms::{DataKey, EncryptionContext, KeyState, KmsError, KmsProvider, WrappedKey};
use sealgate_test_support::softhsm::{SoftHsm, USER_PIN};
use zeroize::Zeroizing;

/// The token the tests keep their keys in.
const TOKEN: &str = "sealgate-test";

/// A second token, used only by the wrong-PIN test: PKCS#11 logins are per process and
/// token, so on a token where another test is logged in, any PIN would be accepted.
const PIN_TEST_TOKEN: &str = "sealgate-pin-test";

/// The configuration for `token` with `pin`, after installing this process's tokens.
fn config(token: &str, pin: &str) -> Pkcs11Config {
    SoftHsm::for_this_process(&[TOKEN, PIN_TEST_TOKEN]);
    Pkcs11Config::new(token, Zeroizing::new(pin.to_owned()))
}

/// A provider logged in to [`TOKEN`].
fn provider() -> Pkcs11Kms {
    Pkcs11Kms::new(config(TOKEN, USER_PIN)).unwrap()
}

fn context(version: &str) -> EncryptionContext {
    [("model".to_owned(), "credit-risk".to_owned()), ("version".to_owned(), version.to_owned())].into()
}

#[test]
fn create_key_then_wrap_and_unwrap() {
    let kms = provider();
    let key_id = kms.create_key("round-trip").unwrap();
    assert_eq!(key_id, "round-trip");
    assert_eq!(kms.name(), "pkcs11");

    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    assert_eq!(generated.wrapped.provider, "pkcs11");
    assert_eq!(generated.wrapped.key_id, key_id);
    // IV, encrypted key, tag.
    assert_eq!(generated.wrapped.ciphertext.len(), 12 + 32 + 16);
    let unwrapped = kms.decrypt_data_key(&generated.wrapped, &context("1")).unwrap();
    assert_eq!(unwrapped.expose(), generated.plaintext.expose());

    let key = DataKey::generate().unwrap();
    let first = kms.wrap_data_key(&key_id, &key, &EncryptionContext::new()).unwrap();
    let second = kms.wrap_data_key(&key_id, &key, &EncryptionContext::new()).unwrap();
    assert_ne!(first.ciphertext, second.ciphertext, "every wrap uses a fresh IV");
    assert_eq!(kms.decrypt_data_key(&second, &EncryptionContext::new()).unwrap().expose(), key.expose());
}

#[test]
fn wrong_context_fails() {
    let kms = provider();
    let key_id = kms.create_key("wrong-context").unwrap();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    for other in [context("2"), EncryptionContext::new()] {
        let result = kms.decrypt_data_key(&generated.wrapped, &other);
        assert!(matches!(result, Err(KmsError::Unwrap)), "{result:?}");
    }
}

#[test]
fn tampered_or_moved_ciphertext_fails() {
    let kms = provider();
    let key_id = kms.create_key("tampered").unwrap();
    let other_key = kms.create_key("tampered-other").unwrap();
    let generated = kms.generate_data_key(&key_id, &context("1")).unwrap();
    for index in [0, 11, 12, 43, 44, 59] {
        let mut tampered = generated.wrapped.clone();
        tampered.ciphertext[index] ^= 0x01;
        let result = kms.decrypt_data_key(&tampered, &context("1"));
        assert!(matches!(result, Err(KmsError::Unwrap)), "byte {index}: {result:?}");
    }
    let mut truncated = generated.wrapped.clone();
    truncated.ciphertext.pop();
    assert!(matches!(kms.decrypt_data_key(&truncated, &context("1")), Err(KmsError::Unwrap)));
    let moved = WrappedKey { key_id: other_key, ..generated.wrapped.clone() };
    assert!(matches!(kms.decrypt_data_key(&moved, &context("1")), Err(KmsError::Unwrap)));
    // And the untouched one still opens: the failures above left the session usable.
    assert!(kms.decrypt_data_key(&generated.wrapped, &context("1")).is_ok());
}

#[test]
fn unknown_label_is_not_found() {
    let kms = provider();
    assert!(matches!(kms.describe_key("no-such-key"), Err(KmsError::KeyNotFound(id)) if id == "no-such-key"));
    let key = DataKey::generate().unwrap();
    assert!(matches!(kms.wrap_data_key("no-such-key", &key, &context("1")), Err(KmsError::KeyNotFound(_))));
    let wrapped = WrappedKey { provider: "pkcs11".into(), key_id: "no-such-key".into(), ciphertext: vec![0; 60] };
    assert!(matches!(kms.decrypt_data_key(&wrapped, &context("1")), Err(KmsError::KeyNotFound(_))));
}

#[test]
fn describe_created_key_is_enabled() {
    let kms = provider();
    let key_id = kms.create_key("describe").unwrap();
    let metadata = kms.describe_key(&key_id).unwrap();
    assert_eq!(metadata.provider, "pkcs11");
    assert_eq!(metadata.key_id, key_id);
    assert_eq!(metadata.state, KeyState::Enabled);
    assert_eq!(metadata.versions, 1);
}

#[test]
fn wrong_pin_is_a_clear_error() {
    let error = Pkcs11Kms::new(config(PIN_TEST_TOKEN, "not-the-pin")).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("PIN is incorrect") && text.contains(PIN_TEST_TOKEN), "{text}");
    assert!(!text.contains("not-the-pin"), "{text}");
    // The right PIN still works afterwards (one wrong attempt does not lock the token).
    Pkcs11Kms::new(config(PIN_TEST_TOKEN, USER_PIN)).unwrap();
}

#[test]
fn unknown_token_is_a_clear_error() {
    let error = Pkcs11Kms::new(config("no-such-token", USER_PIN)).unwrap_err();
    assert!(error.to_string().contains("no PKCS#11 token is labelled 'no-such-token'"), "{error}");
}

#[test]
fn key_is_not_extractable() {
    let kms = provider();
    let key_id = kms.create_key("non-extractable").unwrap();
    let protection = kms.key_protection(&key_id).unwrap();
    assert!(protection.sensitive, "{protection:?}");
    assert!(!protection.extractable, "{protection:?}");
    assert!(protection.never_extractable, "{protection:?}");
    assert!(!protection.value_readable, "reading CKA_VALUE must fail: {protection:?}");
    assert!(protection.is_non_extractable());
}

#[test]
fn duplicate_label_is_refused() {
    let kms = provider();
    kms.create_key("duplicate").unwrap();
    let result = kms.create_key("duplicate");
    assert!(matches!(&result, Err(KmsError::InvalidRequest(text)) if text.contains("already exists")), "{result:?}");
    // The first key is still the only one, and works.
    let key = DataKey::generate().unwrap();
    let wrapped = kms.wrap_data_key("duplicate", &key, &context("1")).unwrap();
    assert_eq!(kms.decrypt_data_key(&wrapped, &context("1")).unwrap().expose(), key.expose());
    assert!(matches!(kms.create_key(""), Err(KmsError::InvalidRequest(_))));
}

#[test]
fn keys_survive_a_new_provider_and_are_shared_across_threads() {
    let kms = std::sync::Arc::new(provider());
    let key_id = kms.create_key("threads").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let kms = kms.clone();
            let key_id = key_id.clone();
            std::thread::spawn(move || {
                let generated = kms.generate_data_key(&key_id, &context(&i.to_string())).unwrap();
                let unwrapped = kms.decrypt_data_key(&generated.wrapped, &context(&i.to_string())).unwrap();
                assert_eq!(unwrapped.expose(), generated.plaintext.expose());
                generated
            })
        })
        .collect();
    let generated: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(kms);
    // A second provider (a restarted gateway, in effect) finds the token key by label.
    let again = provider();
    for (i, g) in generated.iter().enumerate() {
        assert_eq!(
            again.decrypt_data_key(&g.wrapped, &context(&i.to_string())).unwrap().expose(),
            g.plaintext.expose()
        );
    }
}

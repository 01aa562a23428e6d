//! The `local` provider: versioned key-encryption keys (KEKs) in a keyring file.
//!
//! The keyring lives at `DATA_DIR/kms/keyring.json`. Each key has versions; every version's
//! 256-bit KEK is stored encrypted (AES-256-GCM) under a *root key*, which comes from either
//!
//! - `DATA_DIR/kms/root.key`, 32 random bytes readable only by the gateway user (the
//!   embedded default), or
//! - a passphrase through Argon2id (`RootKey::Passphrase`), so a copied data dir alone
//!   yields nothing.
//!
//! Wrapping uses the newest version: `u32 version || nonce(12) || AES-256-GCM(kek, dek)`,
//! with the canonical encryption context and key name as associated data. Rotation adds a
//! version and keeps the old ones for unwrapping. Like AWS KMS, a key can be disabled and
//! enabled, and scheduled for deletion after 7 to 30 days (cancelling leaves it disabled);
//! a disabled or pending-deletion key refuses to wrap and unwrap. Past its deletion date a
//! key's material is destroyed the next time the keyring is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{DataKey, EncryptionContext, KeyMetadata, KeyState, KmsError, KmsProvider, WrappedKey, canonical_context};

/// Provider name in artifact headers.
pub const NAME: &str = "local";
/// Shortest and longest deletion waiting period, in days.
pub const DELETION_WINDOW_DAYS: std::ops::RangeInclusive<u32> = 7..=30;
const SECONDS_PER_DAY: u64 = 86_400;

/// Where the root key comes from.
pub enum RootKey {
    /// `DATA_DIR/kms/root.key`, created on first use with mode 0600.
    File,
    /// Derived from a passphrase with Argon2id; the salt is stored in the keyring.
    Passphrase(Zeroizing<String>),
}

#[derive(Serialize, Deserialize, Default)]
struct KeyringFile {
    format: u32,
    /// Present when the root key is passphrase-derived: hex salt for Argon2id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argon2id_salt: Option<String>,
    /// A value encrypted under the root key, to tell a wrong passphrase from corruption.
    #[serde(default)]
    root_check: String,
    keys: BTreeMap<String, StoredKey>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    created: u64,
    state: StoredState,
    versions: Vec<StoredVersion>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum StoredState {
    Enabled,
    Disabled,
    PendingDeletion { delete_after: u64 },
    Destroyed,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredVersion {
    version: u32,
    created: u64,
    /// Hex of `nonce || AES-256-GCM(root, kek)`, AAD = "sealgate local kek" || name || version.
    material: String,
}

/// A summary of one key, for `sealgate kms list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// Key name.
    pub name: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Number of versions.
    pub versions: u32,
    /// Creation time, Unix seconds.
    pub created: u64,
}

/// The local KMS of one data directory.
pub struct LocalKms {
    dir: PathBuf,
    root: Zeroizing<[u8; 32]>,
    /// Serializes read-modify-write of the keyring within this process; a file lock does the
    /// same across processes (the CLI and a running gateway).
    write_lock: Mutex<()>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn backend(context: &str, e: impl std::fmt::Display) -> KmsError {
    KmsError::Backend(format!("{context}: {e}"))
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM, key).map(LessSafeKey::new).map_err(|_| KmsError::Backend("AES key".into()))
}

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| backend("system RNG", e))?;
    let mut buf = plaintext.to_vec();
    aead_key(key)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
        .map_err(|_| KmsError::Backend("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    if sealed.len() < 12 + 16 {
        return Err(KmsError::Unwrap);
    }
    let (nonce, ct) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| KmsError::Unwrap)?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = aead_key(key)?
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| KmsError::Unwrap)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn kek_aad(name: &str, version: u32) -> Vec<u8> {
    let mut aad = b"sealgate local kek\0".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn dek_aad(name: &str, version: u32, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = kek_aad(name, version);
    aad.extend_from_slice(&canonical_context(context));
    aad
}

/// Key names appear in artifact headers and file paths: a safe alphabet only.
fn check_name(name: &str) -> Result<(), KmsError> {
    if (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        Ok(())
    } else {
        Err(KmsError::InvalidRequest(format!("'{name}' is not a valid key name ([A-Za-z0-9._-], 1-64 chars)")))
    }
}

impl LocalKms {
    /// Opens (creating if needed) the keyring of `data_dir`.
    pub fn open(data_dir: &Path, root: RootKey) -> Result<Self, KmsError> {
        let dir = data_dir.join("kms");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| backend("creating kms dir", e))?;
        let path = dir.join("keyring.json");
        let mut keyring =
            if path.exists() { Self::read_file(&path)? } else { KeyringFile { format: 1, ..Default::default() } };
        let root = match root {
            RootKey::File => {
                if keyring.argon2id_salt.is_some() {
                    return Err(KmsError::InvalidRequest(
                        "this keyring is protected by a passphrase (set SEALGATE_KMS_PASSPHRASE)".into(),
                    ));
                }
                Self::root_from_file(&dir.join("root.key"))?
            }
            RootKey::Passphrase(passphrase) => {
                let salt = match &keyring.argon2id_salt {
                    Some(salt) => hex::decode(salt).map_err(|e| backend("keyring salt", e))?,
                    None if keyring.keys.is_empty() && keyring.root_check.is_empty() => {
                        let mut salt = vec![0u8; 16];
                        getrandom::fill(&mut salt).map_err(|e| backend("system RNG", e))?;
                        keyring.argon2id_salt = Some(hex::encode(&salt));
                        salt
                    }
                    None => {
                        return Err(KmsError::InvalidRequest(
                            "this keyring is protected by its root.key file, not a passphrase".into(),
                        ));
                    }
                };
                let mut root = Zeroizing::new([0u8; 32]);
                argon2::Argon2::default()
                    .hash_password_into(passphrase.as_bytes(), &salt, root.as_mut())
                    .map_err(|e| backend("argon2id", e))?;
                root
            }
        };
        let kms = Self { dir, root, write_lock: Mutex::new(()) };
        if keyring.root_check.is_empty() {
            keyring.root_check = hex::encode(seal(&kms.root, b"sealgate root check", b"ok")?);
            kms.write_file(&keyring)?;
        } else {
            let check = hex::decode(&keyring.root_check).map_err(|e| backend("keyring", e))?;
            open(&kms.root, b"sealgate root check", &check)
                .map_err(|_| KmsError::InvalidRequest("wrong root key or passphrase for this keyring".into()))?;
        }
        Ok(kms)
    }

    fn root_from_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        if let Ok(bytes) = fs::read(path).map(Zeroizing::new) {
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| KmsError::Backend(format!("{} must hold exactly 32 bytes", path.display())))?;
            return Ok(Zeroizing::new(key));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| backend("system RNG", e))?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| backend(&format!("creating {}", path.display()), e))?;
        file.write_all(key.as_ref()).and_then(|()| file.sync_all()).map_err(|e| backend("writing root key", e))?;
        Ok(key)
    }

    fn keyring_path(&self) -> PathBuf {
        self.dir.join("keyring.json")
    }

    fn read_file(path: &Path) -> Result<KeyringFile, KmsError> {
        let text = fs::read(path).map_err(|e| backend(&format!("reading {}", path.display()), e))?;
        serde_json::from_slice(&text).map_err(|e| backend(&format!("{} is not a valid keyring", path.display()), e))
    }

    fn read(&self) -> Result<KeyringFile, KmsError> {
        Self::read_file(&self.keyring_path())
    }

    fn write_file(&self, keyring: &KeyringFile) -> Result<(), KmsError> {
        let json = serde_json::to_vec_pretty(keyring).map_err(|e| backend("keyring", e))?;
        crate::files::replace_file(&self.keyring_path(), &json, 0o600).map_err(|e| backend("writing keyring", e))
    }

    /// Read-modify-write of the keyring under the in-process mutex and a cross-process file
    /// lock; destroys material of keys past their deletion date on the way.
    fn update<T>(&self, change: impl FnOnce(&mut KeyringFile) -> Result<T, KmsError>) -> Result<T, KmsError> {
        let _guard = self.write_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join("keyring.lock"))
            .map_err(|e| backend("keyring lock", e))?;
        lock.lock().map_err(|e| backend("keyring lock", e))?;
        let mut keyring = self.read()?;
        let result = change(&mut keyring)?;
        let now = now();
        for key in keyring.keys.values_mut() {
            if matches!(key.state, StoredState::PendingDeletion { delete_after } if now >= delete_after) {
                key.state = StoredState::Destroyed;
                key.versions.clear();
            }
        }
        self.write_file(&keyring)?;
        Ok(result)
    }

    fn usable<'a>(keyring: &'a KeyringFile, name: &str) -> Result<&'a StoredKey, KmsError> {
        let key = keyring.keys.get(name).ok_or_else(|| KmsError::KeyNotFound(name.into()))?;
        match key.state {
            StoredState::Enabled => Ok(key),
            StoredState::Disabled => Err(KmsError::KeyDisabled(name.into())),
            StoredState::PendingDeletion { delete_after } if now() < delete_after => {
                Err(KmsError::KeyPendingDeletion(name.into()))
            }
            StoredState::PendingDeletion { .. } | StoredState::Destroyed => Err(KmsError::KeyNotFound(name.into())),
        }
    }

    fn kek(&self, name: &str, version: &StoredVersion) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let sealed = hex::decode(&version.material).map_err(|e| backend("keyring", e))?;
        let kek = open(&self.root, &kek_aad(name, version.version), &sealed).map_err(|_| {
            KmsError::Backend(format!("key '{name}' v{} cannot be decrypted with this root key", version.version))
        })?;
        let kek: [u8; 32] = kek.as_slice().try_into().map_err(|_| KmsError::Backend("keyring entry".into()))?;
        Ok(Zeroizing::new(kek))
    }

    fn new_version(&self, name: &str, version: u32) -> Result<StoredVersion, KmsError> {
        let kek = DataKey::generate()?;
        let material = hex::encode(seal(&self.root, &kek_aad(name, version), kek.expose())?);
        Ok(StoredVersion { version, created: now(), material })
    }

    /// Creates key `name` with one version.
    pub fn create_key(&self, name: &str) -> Result<(), KmsError> {
        check_name(name)?;
        let first = self.new_version(name, 1)?;
        self.update(|keyring| {
            if keyring.keys.contains_key(name) {
                return Err(KmsError::InvalidRequest(format!("key '{name}' already exists")));
            }
            keyring
                .keys
                .insert(name.into(), StoredKey { created: now(), state: StoredState::Enabled, versions: vec![first] });
            Ok(())
        })
    }

    /// Creates `name` unless it exists (the embedded default's `default` key).
    pub fn ensure_key(&self, name: &str) -> Result<(), KmsError> {
        if self.read()?.keys.contains_key(name) { Ok(()) } else { self.create_key(name) }
    }

    /// Adds a version; new wraps use it, old versions keep unwrapping. Returns the version.
    pub fn rotate(&self, name: &str) -> Result<u32, KmsError> {
        let current = Self::usable(&self.read()?, name)?.versions.len() as u32;
        let next = self.new_version(name, current + 1)?;
        self.update(|keyring| {
            let key = keyring.keys.get_mut(name).ok_or_else(|| KmsError::KeyNotFound(name.into()))?;
            if key.versions.len() as u32 != current {
                return Err(KmsError::Backend("the keyring changed during rotation; retry".into()));
            }
            key.versions.push(next);
            Ok(current + 1)
        })
    }

    /// Disables a key: it refuses every operation until enabled.
    pub fn disable(&self, name: &str) -> Result<(), KmsError> {
        self.set_state(name, |state| match state {
            StoredState::Enabled | StoredState::Disabled => Ok(StoredState::Disabled),
            _ => Err("a key pending deletion cannot be disabled; cancel the deletion first"),
        })
    }

    /// Enables a disabled key.
    pub fn enable(&self, name: &str) -> Result<(), KmsError> {
        self.set_state(name, |state| match state {
            StoredState::Enabled | StoredState::Disabled => Ok(StoredState::Enabled),
            _ => Err("a key pending deletion cannot be enabled; cancel the deletion first"),
        })
    }

    /// Schedules destruction after `days` (7 to 30); returns the deletion time.
    pub fn schedule_deletion(&self, name: &str, days: u32) -> Result<u64, KmsError> {
        if !DELETION_WINDOW_DAYS.contains(&days) {
            return Err(KmsError::InvalidRequest(format!(
                "the deletion waiting period must be 7 to 30 days, not {days}"
            )));
        }
        let delete_after = now() + u64::from(days) * SECONDS_PER_DAY;
        self.set_state(name, |state| match state {
            StoredState::Enabled | StoredState::Disabled => Ok(StoredState::PendingDeletion { delete_after }),
            StoredState::PendingDeletion { .. } => Err("the key is already pending deletion"),
            StoredState::Destroyed => Err("the key is destroyed"),
        })?;
        Ok(delete_after)
    }

    /// Cancels a scheduled deletion; the key is left disabled, as in AWS KMS.
    pub fn cancel_deletion(&self, name: &str) -> Result<(), KmsError> {
        self.set_state(name, |state| match state {
            StoredState::PendingDeletion { .. } => Ok(StoredState::Disabled),
            _ => Err("the key is not pending deletion"),
        })
    }

    fn set_state(
        &self,
        name: &str,
        next: impl FnOnce(&StoredState) -> Result<StoredState, &'static str>,
    ) -> Result<(), KmsError> {
        self.update(|keyring| {
            let key = keyring.keys.get_mut(name).ok_or_else(|| KmsError::KeyNotFound(name.into()))?;
            if matches!(key.state, StoredState::PendingDeletion { delete_after } if now() >= delete_after) {
                return Err(KmsError::KeyNotFound(name.into()));
            }
            key.state = next(&key.state).map_err(|e| KmsError::InvalidRequest(format!("key '{name}': {e}")))?;
            Ok(())
        })
    }

    /// Every key, sorted by name.
    pub fn list(&self) -> Result<Vec<KeySummary>, KmsError> {
        Ok(self
            .read()?
            .keys
            .iter()
            .map(|(name, key)| KeySummary {
                name: name.clone(),
                state: public_state(&key.state),
                versions: key.versions.len() as u32,
                created: key.created,
            })
            .collect())
    }
}

fn public_state(state: &StoredState) -> KeyState {
    match state {
        StoredState::Enabled => KeyState::Enabled,
        StoredState::Disabled => KeyState::Disabled,
        StoredState::PendingDeletion { delete_after } => KeyState::PendingDeletion { delete_after: *delete_after },
        StoredState::Destroyed => KeyState::PendingDeletion { delete_after: 0 },
    }
}

impl KmsProvider for LocalKms {
    fn name(&self) -> &str {
        NAME
    }

    fn wrap_data_key(&self, key_id: &str, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KmsError> {
        let keyring = self.read()?;
        let stored = Self::usable(&keyring, key_id)?;
        let version = stored.versions.last().ok_or_else(|| KmsError::KeyNotFound(key_id.into()))?;
        let kek = self.kek(key_id, version)?;
        let mut ciphertext = version.version.to_be_bytes().to_vec();
        ciphertext.extend_from_slice(&seal(&kek, &dek_aad(key_id, version.version, context), key.expose())?);
        Ok(WrappedKey { provider: NAME.into(), key_id: key_id.into(), ciphertext })
    }

    fn decrypt_data_key(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        let keyring = self.read()?;
        let stored = Self::usable(&keyring, &wrapped.key_id)?;
        let (version, sealed) = wrapped.ciphertext.split_at_checked(4).ok_or(KmsError::Unwrap)?;
        let version = u32::from_be_bytes(version.try_into().map_err(|_| KmsError::Unwrap)?);
        let stored_version = stored.versions.iter().find(|v| v.version == version).ok_or(KmsError::Unwrap)?;
        let kek = self.kek(&wrapped.key_id, stored_version)?;
        let dek = open(&kek, &dek_aad(&wrapped.key_id, version, context), sealed)?;
        DataKey::from_slice(&dek).map_err(|_| KmsError::Unwrap)
    }

    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        let keyring = self.read()?;
        let key = keyring.keys.get(key_id).ok_or_else(|| KmsError::KeyNotFound(key_id.into()))?;
        Ok(KeyMetadata {
            provider: NAME.into(),
            key_id: key_id.into(),
            state: public_state(&key.state),
            versions: key.versions.len() as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(model: &str) -> EncryptionContext {
        [("model".to_string(), model.to_string()), ("version".into(), "1".into())].into()
    }

    fn kms() -> (tempfile::TempDir, LocalKms) {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open(dir.path(), RootKey::File).unwrap();
        kms.create_key("default").unwrap();
        (dir, kms)
    }

    #[test]
    fn wrap_unwrap_and_context_binding() {
        let (_dir, kms) = kms();
        let generated = kms.generate_data_key("default", &context("a")).unwrap();
        let dek = kms.decrypt_data_key(&generated.wrapped, &context("a")).unwrap();
        assert_eq!(dek.expose(), generated.plaintext.expose());
        assert!(matches!(kms.decrypt_data_key(&generated.wrapped, &context("b")), Err(KmsError::Unwrap)));
        let mut tampered = generated.wrapped.clone();
        *tampered.ciphertext.last_mut().unwrap() ^= 1;
        assert!(matches!(kms.decrypt_data_key(&tampered, &context("a")), Err(KmsError::Unwrap)));
    }

    #[test]
    fn rotation_keeps_old_versions() {
        let (_dir, kms) = kms();
        let old = kms.generate_data_key("default", &context("a")).unwrap();
        assert_eq!(kms.rotate("default").unwrap(), 2);
        let new = kms.generate_data_key("default", &context("a")).unwrap();
        assert_eq!(&new.wrapped.ciphertext[..4], &2u32.to_be_bytes());
        assert_eq!(&old.wrapped.ciphertext[..4], &1u32.to_be_bytes());
        assert!(kms.decrypt_data_key(&old.wrapped, &context("a")).is_ok());
        assert!(kms.decrypt_data_key(&new.wrapped, &context("a")).is_ok());
        assert_eq!(kms.describe_key("default").unwrap().versions, 2);
    }

    #[test]
    fn lifecycle_states_refuse_use() {
        let (_dir, kms) = kms();
        let wrapped = kms.generate_data_key("default", &context("a")).unwrap().wrapped;
        kms.disable("default").unwrap();
        assert!(matches!(kms.decrypt_data_key(&wrapped, &context("a")), Err(KmsError::KeyDisabled(_))));
        assert!(matches!(kms.generate_data_key("default", &context("a")), Err(KmsError::KeyDisabled(_))));
        kms.enable("default").unwrap();
        assert!(kms.decrypt_data_key(&wrapped, &context("a")).is_ok());

        for bad in [0, 6, 31, 365] {
            assert!(matches!(kms.schedule_deletion("default", bad), Err(KmsError::InvalidRequest(_))), "{bad}");
        }
        let after = kms.schedule_deletion("default", 7).unwrap();
        assert!(after >= now() + 7 * SECONDS_PER_DAY - 5);
        assert!(matches!(kms.decrypt_data_key(&wrapped, &context("a")), Err(KmsError::KeyPendingDeletion(_))));
        assert!(matches!(kms.enable("default"), Err(KmsError::InvalidRequest(_))));
        kms.cancel_deletion("default").unwrap();
        assert_eq!(kms.describe_key("default").unwrap().state, KeyState::Disabled);
        kms.enable("default").unwrap();
        assert!(kms.decrypt_data_key(&wrapped, &context("a")).is_ok());
        assert!(matches!(kms.cancel_deletion("default"), Err(KmsError::InvalidRequest(_))));
    }

    #[test]
    fn keys_past_their_deletion_date_are_destroyed() {
        let (dir, kms) = kms();
        let wrapped = kms.generate_data_key("default", &context("a")).unwrap().wrapped;
        kms.schedule_deletion("default", 30).unwrap();
        // Simulate the waiting period elapsing by editing the stored date.
        let path = dir.path().join("kms/keyring.json");
        let mut keyring: KeyringFile = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        keyring.keys.get_mut("default").unwrap().state = StoredState::PendingDeletion { delete_after: 1 };
        kms.write_file(&keyring).unwrap();
        kms.create_key("other").unwrap(); // Any write purges expired material.
        assert!(matches!(kms.decrypt_data_key(&wrapped, &context("a")), Err(KmsError::KeyNotFound(_))));
        let stored: KeyringFile = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert!(stored.keys["default"].versions.is_empty());
    }

    #[test]
    fn passphrase_protects_the_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open(dir.path(), RootKey::Passphrase(Zeroizing::new("correct horse".into()))).unwrap();
        kms.create_key("k").unwrap();
        let wrapped = kms.generate_data_key("k", &context("a")).unwrap().wrapped;
        drop(kms);
        assert!(!dir.path().join("kms/root.key").exists());
        let wrong = LocalKms::open(dir.path(), RootKey::Passphrase(Zeroizing::new("wrong".into())));
        assert!(matches!(wrong, Err(KmsError::InvalidRequest(_))));
        assert!(matches!(LocalKms::open(dir.path(), RootKey::File), Err(KmsError::InvalidRequest(_))));
        let kms = LocalKms::open(dir.path(), RootKey::Passphrase(Zeroizing::new("correct horse".into()))).unwrap();
        assert!(kms.decrypt_data_key(&wrapped, &context("a")).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_names() {
        let (_dir, kms) = kms();
        assert!(matches!(kms.generate_data_key("nope", &context("a")), Err(KmsError::KeyNotFound(_))));
        assert!(matches!(kms.create_key("../etc"), Err(KmsError::InvalidRequest(_))));
        assert!(matches!(kms.create_key("default"), Err(KmsError::InvalidRequest(_))));
    }
}

//! The `pkcs11` provider: data keys wrapped by a non-extractable AES key inside an HSM token.
//!
//! The key-encryption key is an AES-256 secret-key object on the token, found by its label
//! (the provider's key id), created sensitive and non-extractable, so its bytes never exist
//! outside the token. Data keys are wrapped with AES-GCM computed by the token: a random
//! 12-byte IV, the canonical encryption context ([`canonical_context`]) as associated data,
//! and `iv || ciphertext || tag` as the stored ciphertext. A wrong context, a different key
//! or a changed byte fails the tag check inside the token.
//!
//! Speaks PKCS#11 through `cryptoki`; tested against SoftHSM2, and should work with any
//! token that offers `CKM_AES_KEY_GEN` and `CKM_AES_GCM`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::{Zeroize as _, Zeroizing};

use super::{DataKey, EncryptionContext, KeyMetadata, KeyState, KmsError, KmsProvider, WrappedKey, canonical_context};

/// The provider name stored in artifact headers.
pub const PROVIDER_NAME: &str = "pkcs11";

/// Where Debian's `softhsm2` package puts its PKCS#11 module.
pub const DEFAULT_LIBRARY: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// AES-GCM IV length: 96 bits, the length GCM is designed for.
const IV_LEN: usize = 12;

/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// A wrapped data key: IV, the 32 encrypted key bytes, and the tag.
const WRAPPED_LEN: usize = IV_LEN + 32 + TAG_LEN;

/// Every PKCS#11 module this process has loaded and initialized, by path.
///
/// `C_Initialize` may be called once per process and module: a second call fails with
/// `CKR_CRYPTOKI_ALREADY_INITIALIZED`, and a `C_Finalize` from one user would close the
/// sessions of every other. So each module is initialized the first time any provider asks
/// for it, shared by all providers after that, and never finalized (the process exit
/// releases it). A map rather than one value, because two configurations may name two
/// different HSM modules.
static LIBRARIES: Mutex<BTreeMap<PathBuf, Pkcs11>> = Mutex::new(BTreeMap::new());

/// Where the token is and how to log in.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (a shared library), such as [`DEFAULT_LIBRARY`].
    pub library: PathBuf,
    /// The token's label. Tokens are found by label because slot ids are assigned by the
    /// module and change when tokens are added or re-initialized.
    pub token_label: String,
    /// The user PIN; zeroized on drop and never printed.
    pub user_pin: Zeroizing<String>,
}

impl Pkcs11Config {
    /// A configuration for `token_label` in SoftHSM2 at [`DEFAULT_LIBRARY`].
    pub fn new(token_label: impl Into<String>, user_pin: Zeroizing<String>) -> Self {
        Self { library: PathBuf::from(DEFAULT_LIBRARY), token_label: token_label.into(), user_pin }
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("library", &self.library)
            .field("token_label", &self.token_label)
            .field("user_pin", &"<redacted>")
            .finish()
    }
}

/// What the token says about how well a key is protected: the answer to "can its bytes
/// ever leave the token?", for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_SENSITIVE`: the token refuses to reveal the value in plaintext.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key may be wrapped out of the token (under another key).
    pub extractable: bool,
    /// `CKA_NEVER_EXTRACTABLE`: the key has never been extractable since it was made.
    pub never_extractable: bool,
    /// Whether reading `CKA_VALUE` actually returned bytes (which are wiped at once).
    pub value_readable: bool,
}

impl KeyProtection {
    /// True when the key's bytes cannot leave the token by any PKCS#11 call.
    pub fn is_non_extractable(&self) -> bool {
        self.sensitive && !self.extractable && self.never_extractable && !self.value_readable
    }
}

/// The PKCS#11 provider.
///
/// Holds one logged-in read-write session, used by one operation at a time. PKCS#11 logs
/// in per application and token, not per session: while any session of this process is
/// logged in to the token, a second login (another provider for the same token) is accepted
/// without checking its PIN. A wrong PIN is therefore only caught by the first provider of a
/// process to log in to a token.
pub struct Pkcs11Kms {
    pkcs11: Pkcs11,
    token_label: String,
    user_pin: AuthPin,
    /// PKCS#11 sessions must not be used by two threads at once.
    session: Mutex<Session>,
}

/// A failure inside one session operation: either already decided, or a raw PKCS#11 error
/// that may mean the session was lost and the operation is worth one retry.
enum OpError {
    Kms(KmsError),
    Pkcs11 { call: &'static str, error: CkError },
}

impl From<KmsError> for OpError {
    fn from(error: KmsError) -> Self {
        OpError::Kms(error)
    }
}

impl OpError {
    fn call(call: &'static str) -> impl FnOnce(CkError) -> OpError {
        move |error| OpError::Pkcs11 { call, error }
    }
}

/// True for the errors after which the session (not the request) is at fault: the token
/// was removed or reset, or closed our session, or logged us out.
fn session_lost(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::TokenNotPresent
                | RvError::DeviceRemoved
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// A one-line description of a PKCS#11 error: the function and the `CKR_` name, without the
/// paragraph of specification text that `cryptoki`'s `Display` adds.
fn describe(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => format!("{function}: {rv:?}"),
        other => other.to_string(),
    }
}

impl Pkcs11Kms {
    /// Loads the module (once per process), finds the token by label and logs in.
    ///
    /// Fails with a clear [`KmsError::Backend`] when the module cannot be loaded, no token
    /// (or more than one) carries the label, or the PIN is wrong or locked.
    pub fn new(config: Pkcs11Config) -> Result<Self, KmsError> {
        let pkcs11 = library(&config.library)?;
        let user_pin = AuthPin::new(config.user_pin.as_str().into());
        let session = open_session(&pkcs11, &config.token_label, &user_pin)?;
        Ok(Self { pkcs11, token_label: config.token_label, user_pin, session: Mutex::new(session) })
    }

    /// Creates a token-resident AES-256 key labelled `label`: sensitive, non-extractable,
    /// usable only to encrypt and decrypt. Refuses a label that is already taken, since
    /// keys are found by label. Returns the key id (the label).
    pub fn create_key(&self, label: &str) -> Result<String, KmsError> {
        if label.is_empty() {
            return Err(KmsError::InvalidRequest("a PKCS#11 key label must not be empty".into()));
        }
        self.with_session(|session| {
            // Checked and created under the session lock, so this provider cannot race itself.
            if !find_keys(session, label)?.is_empty() {
                return Err(KmsError::InvalidRequest(format!("a key labelled '{label}' already exists")).into());
            }
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                // Only AES-GCM through encrypt/decrypt: no key wrapping (which could move
                // other keys in or out), no signing, no derivation.
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Derive(false),
            ];
            session.generate_key(&Mechanism::AesKeyGen, &template).map_err(OpError::call("creating the key"))?;
            Ok(label.to_owned())
        })
        .map_err(|e| self.kms_error(e))
    }

    /// Reads the protection attributes of key `key_id`, and tries to read its value.
    pub fn key_protection(&self, key_id: &str) -> Result<KeyProtection, KmsError> {
        self.with_session(|session| {
            let key = find_key(session, key_id)?;
            let flags = session
                .get_attributes(
                    key,
                    &[AttributeType::Sensitive, AttributeType::Extractable, AttributeType::NeverExtractable],
                )
                .map_err(OpError::call("reading key attributes"))?;
            let flag = |wanted: AttributeType| {
                flags.iter().any(|attribute| match (wanted, attribute) {
                    (AttributeType::Sensitive, Attribute::Sensitive(on))
                    | (AttributeType::Extractable, Attribute::Extractable(on))
                    | (AttributeType::NeverExtractable, Attribute::NeverExtractable(on)) => *on,
                    _ => false,
                })
            };
            // Asking for CKA_VALUE is the real test: a correct token answers "sensitive".
            let info = session
                .get_attribute_info(key, &[AttributeType::Value])
                .map_err(OpError::call("probing the key value"))?;
            let mut value_readable = matches!(info.first(), Some(AttributeInfo::Available(_)));
            if value_readable {
                // The token is misconfigured and hands out key bytes: confirm, then wipe them.
                let values = session.get_attributes(key, &[AttributeType::Value]).map_err(OpError::call("reading"))?;
                value_readable = false;
                for attribute in values {
                    if let Attribute::Value(mut bytes) = attribute {
                        value_readable |= !bytes.is_empty();
                        bytes.zeroize();
                    }
                }
            }
            Ok(KeyProtection {
                sensitive: flag(AttributeType::Sensitive),
                extractable: flag(AttributeType::Extractable),
                never_extractable: flag(AttributeType::NeverExtractable),
                value_readable,
            })
        })
        .map_err(|e| self.kms_error(e))
    }

    /// Runs `operation` on the session, reopening the session and retrying once if the
    /// token lost it (restarted, removed and re-inserted, logged us out).
    fn with_session<T>(&self, operation: impl Fn(&Session) -> Result<T, OpError>) -> Result<T, OpError> {
        // A panic while holding the lock cannot leave the session half-changed in a way the
        // next operation would trust: each operation starts from scratch.
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        match operation(&session) {
            Err(OpError::Pkcs11 { error, .. }) if session_lost(&error) => {
                *session = open_session(&self.pkcs11, &self.token_label, &self.user_pin)?;
                operation(&session)
            }
            other => other,
        }
    }

    /// The final form of an operation's error.
    fn kms_error(&self, error: OpError) -> KmsError {
        match error {
            OpError::Kms(error) => error,
            OpError::Pkcs11 { call, error } if session_lost(&error) => {
                KmsError::Unavailable(format!("PKCS#11 token '{}': {call}: {}", self.token_label, describe(&error)))
            }
            OpError::Pkcs11 { call, error } => {
                KmsError::Backend(format!("PKCS#11 token '{}': {call}: {}", self.token_label, describe(&error)))
            }
        }
    }
}

/// The initialized module at `path`, loading it the first time.
fn library(path: &Path) -> Result<Pkcs11, KmsError> {
    let mut libraries = LIBRARIES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pkcs11) = libraries.get(path) {
        return Ok(pkcs11.clone());
    }
    let pkcs11 = Pkcs11::new(path)
        .map_err(|e| KmsError::Backend(format!("loading the PKCS#11 module {}: {}", path.display(), describe(&e))))?;
    // OS locking: the module is shared by every thread of the process.
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Already initialized by other code in this process (through another path to the
        // same file, or another library): the module is ready, which is all we need.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KmsError::Backend(format!(
                "initializing the PKCS#11 module {}: {}",
                path.display(),
                describe(&e)
            )));
        }
    }
    libraries.insert(path.to_owned(), pkcs11.clone());
    Ok(pkcs11)
}

/// The slot holding the token labelled `label`.
fn find_slot(pkcs11: &Pkcs11, label: &str) -> Result<Slot, KmsError> {
    let slots = pkcs11
        .get_slots_with_token()
        .map_err(|e| KmsError::Backend(format!("listing PKCS#11 slots: {}", describe(&e))))?;
    let mut found = Vec::new();
    for slot in slots {
        // A slot whose token cannot be read is not the one we want; skip it.
        if let Ok(info) = pkcs11.get_token_info(slot)
            && info.label().trim_end() == label
        {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(KmsError::Backend(format!("no PKCS#11 token is labelled '{label}'"))),
        _ => Err(KmsError::Backend(format!(
            "{} PKCS#11 tokens are labelled '{label}'; labels must be unique",
            found.len()
        ))),
    }
}

/// Opens a read-write session on the token labelled `label` and logs the user in.
fn open_session(pkcs11: &Pkcs11, label: &str, pin: &AuthPin) -> Result<Session, KmsError> {
    let slot = find_slot(pkcs11, label)?;
    // Read-write: creating a token object needs it.
    let session = pkcs11
        .open_rw_session(slot)
        .map_err(|e| KmsError::Backend(format!("opening a session on PKCS#11 token '{label}': {}", describe(&e))))?;
    match session.login(UserType::User, Some(pin)) {
        // Another session of this process is logged in already; see `Pkcs11Kms`.
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            Err(KmsError::Backend(format!("PKCS#11 login to token '{label}' refused: the user PIN is incorrect")))
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(KmsError::Backend(format!(
            "PKCS#11 login to token '{label}' refused: the user PIN is locked after too many wrong attempts"
        ))),
        Err(e) => Err(KmsError::Backend(format!("PKCS#11 login to token '{label}' failed: {}", describe(&e)))),
    }
}

/// Every AES secret key labelled `label`.
fn find_keys(session: &Session, label: &str) -> Result<Vec<ObjectHandle>, OpError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    session.find_objects(&template).map_err(OpError::call("finding the key"))
}

/// The one AES secret key labelled `label`.
fn find_key(session: &Session, label: &str) -> Result<ObjectHandle, OpError> {
    match find_keys(session, label)?.as_slice() {
        [key] => Ok(*key),
        [] => Err(KmsError::KeyNotFound(label.to_owned()).into()),
        // `create_key` refuses duplicates, but another tool may have made one; using either
        // would be a guess.
        keys => {
            Err(KmsError::Backend(format!("{} keys are labelled '{label}'; labels must be unique", keys.len())).into())
        }
    }
}

impl KmsProvider for Pkcs11Kms {
    fn name(&self) -> &str {
        PROVIDER_NAME
    }

    /// AES-GCM inside the token under key `key_id`, with the canonical context as AAD.
    fn wrap_data_key(&self, key_id: &str, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KmsError> {
        let aad = canonical_context(context);
        self.with_session(|session| {
            let kek = find_key(session, key_id)?;
            // A fresh random IV per wrap: with at most a few thousand wraps per key, random
            // 96-bit IVs are far from colliding, and no counter state has to survive restarts.
            let mut iv = [0u8; IV_LEN];
            getrandom::fill(&mut iv).map_err(|e| KmsError::Backend(format!("system RNG: {e}")))?;
            let mut iv_for_token = iv;
            let params = GcmParams::new(&mut iv_for_token, &aad, (TAG_LEN as u64 * 8).into())
                .map_err(OpError::call("preparing AES-GCM"))?;
            let sealed = session
                .encrypt(&Mechanism::AesGcm(params), kek, key.expose())
                .map_err(OpError::call("wrapping the data key"))?;
            let mut ciphertext = Vec::with_capacity(WRAPPED_LEN);
            ciphertext.extend_from_slice(&iv);
            ciphertext.extend_from_slice(&sealed);
            if ciphertext.len() != WRAPPED_LEN {
                return Err(KmsError::Backend(format!(
                    "PKCS#11 token returned {} bytes of AES-GCM output, expected {}",
                    sealed.len(),
                    WRAPPED_LEN - IV_LEN
                ))
                .into());
            }
            Ok(WrappedKey { provider: PROVIDER_NAME.into(), key_id: key_id.to_owned(), ciphertext })
        })
        .map_err(|e| self.kms_error(e))
    }

    /// Opens the AES-GCM ciphertext inside the token. Every failure to open is
    /// [`KmsError::Unwrap`]: the token reports a bad tag as a general error, and telling
    /// causes apart would only help an attacker.
    fn decrypt_data_key(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        if wrapped.provider != PROVIDER_NAME {
            return Err(KmsError::UnknownProvider(wrapped.provider.clone()));
        }
        let (iv, sealed) = match wrapped.ciphertext.split_at_checked(IV_LEN) {
            Some((iv, sealed)) if wrapped.ciphertext.len() == WRAPPED_LEN => (iv, sealed),
            _ => return Err(KmsError::Unwrap),
        };
        let aad = canonical_context(context);
        self.with_session(|session| {
            let kek = find_key(session, &wrapped.key_id)?;
            let mut iv = iv.to_vec();
            let params = GcmParams::new(&mut iv, &aad, (TAG_LEN as u64 * 8).into())
                .map_err(OpError::call("preparing AES-GCM"))?;
            let plaintext =
                session.decrypt(&Mechanism::AesGcm(params), kek, sealed).map(Zeroizing::new).map_err(|error| {
                    // A lost session deserves the retry; anything else is a failed open.
                    if session_lost(&error) {
                        OpError::Pkcs11 { call: "unwrapping", error }
                    } else {
                        KmsError::Unwrap.into()
                    }
                })?;
            DataKey::from_slice(&plaintext).map_err(|_| KmsError::Unwrap.into())
        })
        .map_err(|e| self.kms_error(e))
    }

    /// PKCS#11 has no key states or versions: a key that exists is enabled, with one version.
    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.with_session(|session| find_key(session, key_id)).map_err(|e| self.kms_error(e)).map(|_| KeyMetadata {
            provider: PROVIDER_NAME.into(),
            key_id: key_id.to_owned(),
            state: KeyState::Enabled,
            versions: 1,
        })
    }
}

impl fmt::Debug for Pkcs11Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kms").field("token_label", &self.token_label).finish_non_exhaustive()
    }
}

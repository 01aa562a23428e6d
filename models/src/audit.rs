//! The key-use audit log: hash-chained JSON lines in `DATA_DIR/audit.log`.
//!
//! Every key operation — generate, wrap, unwrap, rotate, state changes, and refusals — is
//! appended as one JSON object: who, what operation, which provider and key, which artifact,
//! the result. Never key material, never plaintext. Each line carries the SHA-256 of the
//! previous line's hash and its own content, and `DATA_DIR/audit.head` (replaced durably on
//! every append) records the last sequence number and hash, so [`verify`] detects an edited,
//! removed, inserted or reordered line, a cut-off tail, and an emptied or deleted log. The
//! next sequence number is taken from the log itself, and an append to a log that disagrees
//! with its head is refused, so no writer papers over a cut. A log starts only from a head
//! at entry 0 ([`start_new_log`]: a new data dir, or the operator's `audit verify
//! --new-log`). Appends take an exclusive file lock, so the CLI and a running gateway can
//! share one log.
//!
//! The head is keyed: it carries an HMAC-SHA256, under the [`AuditKey`], of the sequence
//! number and hash it records. The audit key is a random 256-bit key that exists at rest
//! only wrapped by a KMS key (`DATA_DIR/audit.key`, bound to the context
//! `purpose=audit-head`), so someone who can write the data dir but not use that KMS key
//! cannot rewrite the log and write a matching head: every change to any line changes the
//! last hash, and a new head at entry 0 over a deleted log needs the key too. Keying the head
//! rather than each line gives the same protection (the chain ties every line to the last
//! hash) while a line stays checkable by anyone with `sha256sum`. What the key cannot stop:
//! rolling the log and head back together to an earlier state that was copied, and, with the
//! `local` KMS whose root key is in the data dir, an intruder who can read that root key.
//! docs/OPERATIONS.md says how to keep a copy of the head out of reach and to wrap the
//! audit key with a KMS outside the data dir.

use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::artifact::KmsSet;
use crate::kms::{DataKey, EncryptionContext, KeyMetadata, KmsError, KmsProvider, WrappedKey};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored. Field order is the serialization order the hash covers. An
/// unknown field is refused: the hash covers only the fields below, so an added one would
/// be text no check protects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// 1, 2, 3, ...
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// Who: the program and process, such as `sealgate serve (pid 123, uid 1000)`.
    pub actor: String,
    /// What: `generate`, `wrap`, `unwrap`, `rotate`, `create`, `disable`, ...
    pub op: String,
    /// The KMS provider.
    pub provider: String,
    /// The key identifier.
    pub key_id: String,
    /// The artifact (`model@version`) or other subject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// `ok`, or `refused: <reason>`.
    pub result: String,
    /// Hash of the previous entry (zeros for the first).
    pub prev: String,
    /// SHA-256 of `prev || this entry serialized without this field and `tag`, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// The audit key's MAC of `seq` and `hash`: the `audit.head` that covers this entry,
    /// written with it. When a process dies between the line and the head (SIGKILL, a
    /// crash), the log is one entry ahead of its head; this tag shows the entry was written
    /// by a holder of the key, so the next append (and `verify`) accepts it as an
    /// interrupted append instead of reporting tampering. Absent in older entries.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

impl Entry {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash.clear();
        unhashed.tag.clear();
        // Serializing a struct of strings and integers cannot fail.
        let body = serde_json::to_vec(&unhashed).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(&body);
        hex::encode(h.finalize())
    }
}

/// What happened, for [`AuditLog::record`].
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Operation name.
    pub op: &'a str,
    /// KMS provider.
    pub provider: &'a str,
    /// Key identifier.
    pub key_id: &'a str,
    /// Subject (artifact), if any.
    pub artifact: Option<&'a str>,
    /// Outcome: `Ok(())` or a refusal reason (a KMS error text, never key material).
    pub result: Result<(), String>,
}

/// An append-only, hash-chained audit log with a keyed head.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
    actor: String,
    key: AuditKey,
}

/// The key that authenticates `audit.head` (HMAC-SHA256). Zeroized when the last clone is
/// dropped, never printed; at rest only in `DATA_DIR/audit.key`, wrapped by a KMS key.
#[derive(Clone)]
pub struct AuditKey(Arc<Zeroizing<[u8; 32]>>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

/// The name of the wrapped audit key in a data dir.
pub const KEY_FILE: &str = "audit.key";

/// `DATA_DIR/audit.key`: the audit key as the KMS wrapped it. Unknown fields are refused.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// 1.
    version: u32,
    /// The KMS provider that wrapped it.
    provider: String,
    /// The key within that provider.
    key_id: String,
    /// The provider's ciphertext, hex.
    ciphertext: String,
}

impl AuditKey {
    /// The audit key with the bytes of `key`.
    pub fn new(key: &DataKey) -> Self {
        Self(Arc::new(Zeroizing::new(*key.expose())))
    }

    /// The encryption context the audit key is wrapped with: a wrapped HPKE or model key
    /// copied into `audit.key` does not unwrap as an audit key.
    pub fn context() -> EncryptionContext {
        EncryptionContext::from([("purpose".to_owned(), "audit-head".to_owned())])
    }

    /// Makes a new audit key, wraps it with `key_id` of `kms` and writes `DATA_DIR/audit.key`
    /// (mode 0600). Refused when the file exists: an audit key is never overwritten (the
    /// operator moves a lost one aside first, see `sealgate audit verify --rekey`).
    pub fn create(data_dir: &Path, kms: &dyn KmsProvider, key_id: &str) -> Result<Self, AuditError> {
        let path = data_dir.join(KEY_FILE);
        let key = DataKey::generate().map_err(|e| AuditError::Key(e.to_string()))?;
        let wrapped = kms
            .wrap_data_key(key_id, &key, &Self::context())
            .map_err(|e| AuditError::Key(format!("cannot wrap a new audit key with {}:{key_id}: {e}", kms.name())))?;
        let file = KeyFile {
            version: 1,
            provider: wrapped.provider,
            key_id: wrapped.key_id,
            ciphertext: hex::encode(&wrapped.ciphertext),
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| AuditError::Io(e.to_string()))?;
        text.push(b'\n');
        crate::files::create_file(&path, &text, 0o600).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                AuditError::Key(format!("{} exists; an audit key is never overwritten", path.display()))
            }
            _ => AuditError::Io(format!("{}: {e}", path.display())),
        })?;
        Ok(Self::new(&key))
    }

    /// Reads `DATA_DIR/audit.key` and unwraps it with the provider of `kms` it names.
    /// [`AuditError::NoKey`] when the file is missing.
    pub fn open(data_dir: &Path, kms: &(impl KmsSet + ?Sized)) -> Result<Self, AuditError> {
        let path = data_dir.join(KEY_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(AuditError::NoKey),
            Err(e) => return Err(AuditError::Io(format!("{}: {e}", path.display()))),
        };
        let malformed = || AuditError::Key(format!("{} is not a wrapped audit key", path.display()));
        let file: KeyFile = serde_json::from_slice(&text).map_err(|_| malformed())?;
        let ciphertext = hex::decode(&file.ciphertext).map_err(|_| malformed())?;
        if file.version != 1 {
            return Err(malformed());
        }
        let provider = kms.provider(&file.provider).ok_or_else(|| {
            AuditError::Key(format!(
                "{} is wrapped by the KMS provider '{}', which is not configured (give its flags, such as --aws-kms \
                 or --pkcs11-token)",
                path.display(),
                file.provider
            ))
        })?;
        let wrapped = WrappedKey { provider: file.provider.clone(), key_id: file.key_id.clone(), ciphertext };
        let key = provider.decrypt_data_key(&wrapped, &Self::context()).map_err(|e| {
            AuditError::Key(format!("cannot unwrap {} with {}:{}: {e}", path.display(), file.provider, file.key_id))
        })?;
        Ok(Self::new(&key))
    }

    /// Which KMS key wraps the audit key of `data_dir` (`provider:key`), for messages.
    pub fn wrapped_by(data_dir: &Path) -> Option<String> {
        let file: KeyFile = serde_json::from_slice(&fs::read(data_dir.join(KEY_FILE)).ok()?).ok()?;
        Some(format!("{}:{}", file.provider, file.key_id))
    }

    fn mac(&self, seq: u64, hash: &str) -> hmac::Hmac<Sha256> {
        // Any key length is valid for HMAC.
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(format!("sealgate audit.head v1\n{seq} {hash}").as_bytes());
        mac
    }

    /// The head's MAC, hex.
    fn sign(&self, seq: u64, hash: &str) -> String {
        hex::encode(self.mac(seq, hash).finalize().into_bytes())
    }

    /// True when `tag` (hex) is the head's MAC; compared in constant time.
    fn check(&self, seq: u64, hash: &str, tag: &str) -> bool {
        hex::decode(tag).is_ok_and(|tag| self.mac(seq, hash).verify_slice(&tag).is_ok())
    }
}

/// Why an audit log failed verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// The log could not be read.
    #[error("cannot read the audit log: {0}")]
    Io(String),
    /// Line `line` (1-based) breaks the chain; the text says how.
    #[error("audit log line {line}: {reason}")]
    Broken {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `audit.head` is missing: the log (and its head) were deleted or replaced, unless the
    /// operator starts a new log (`sealgate audit verify --new-log`).
    #[error(
        "audit.head is missing (the log has {entries} entries): the audit log was deleted or replaced; if this \
         data dir's log is new on purpose, accept it with `sealgate audit verify --new-log`"
    )]
    NoHead {
        /// Entries found in the log.
        entries: u64,
    },
    /// The log ends before the recorded head: lines were removed from the end, or the log
    /// was emptied or deleted.
    #[error(
        "the audit log ends at entry {found} but entry {expected} was written (lines removed, or the log emptied or deleted)"
    )]
    Truncated {
        /// Last sequence number found.
        found: u64,
        /// Last sequence number recorded in the head file.
        expected: u64,
    },
    /// `audit.head` does not carry the MAC of the audit key: it was written by someone
    /// without the key (the log and head rewritten together), or before heads were keyed.
    #[error(
        "audit.head is not authenticated by this data dir's audit key: the log and its head were rewritten by \
         someone without the key (or the head predates keyed heads); if the log is known to be intact, \
         `sealgate audit verify --rekey` authenticates it again"
    )]
    HeadNotAuthentic,
    /// `audit.key` is missing.
    #[error(
        "audit.key is missing: the audit log's key was deleted (or the data dir predates keyed audit logs); if the \
         log is known to be intact, `sealgate audit verify --rekey` makes a new key"
    )]
    NoKey,
    /// The audit key could not be made or used; the text says why (never key material).
    #[error("audit key: {0}")]
    Key(String),
}

/// The longest audit line [`AuditLog::record`] reads back (entries are a few hundred bytes).
const MAX_LINE: u64 = 64 * 1024;

impl AuditLog {
    /// The log of `data_dir`, written as `actor`, its head authenticated with `key`.
    pub fn new(data_dir: &Path, actor: impl Into<String>, key: AuditKey) -> Self {
        Self { path: data_dir.join("audit.log"), head: data_dir.join("audit.head"), actor: actor.into(), key }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`ensure_room`] for this log's data dir.
    pub fn ensure_room(&self) -> std::io::Result<()> {
        ensure_room(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// The key that authenticates the head.
    pub fn key(&self) -> &AuditKey {
        &self.key
    }

    /// Appends one entry. Failure to audit is an error the caller must not ignore: an
    /// unaudited key use is not allowed to succeed silently.
    ///
    /// The sequence number and previous hash come from the log's own last entry, and
    /// `audit.head` must agree with it: a log that was cut, emptied, deleted or replaced (or
    /// a head that was removed) is refused rather than continued, so a new, consistent head
    /// can never be written over the evidence. A new log starts only from a head at entry 0,
    /// which [`start_new_log`] writes (for a new data dir, or when the operator says so).
    pub fn record(&self, event: &Event<'_>) -> std::io::Result<()> {
        // Held from the log line to the head, so an exiting process never stops half-way.
        let _appending = APPENDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = fs::OpenOptions::new().create(true).read(true).append(true).mode(0o600).open(&self.path)?;
        file.lock()?;
        let last = last_entry(&mut file)?;
        let (seq, prev) = match &last {
            Some(entry) => (entry.seq, entry.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        match read_head(&self.head) {
            Ok(Some(head)) if (head.seq, head.hash.as_str()) == (seq, prev.as_str()) => {
                if !head.tag.as_deref().is_some_and(|tag| self.key.check(seq, &prev, tag)) {
                    return Err(std::io::Error::other(AuditError::HeadNotAuthentic.to_string()));
                }
            }
            // The last append stopped between its line and its head: complete it.
            Ok(Some(head)) if last.as_ref().is_some_and(|last| interrupted(&head, last, &self.key)) => {
                write_head(&self.head, &self.key, seq, &prev)?;
            }
            Ok(Some(Head { seq: head_seq, .. })) => {
                return Err(std::io::Error::other(format!(
                    "the audit log ends at entry {seq} but audit.head records entry {head_seq}: the log was \
                     changed; check it with `sealgate audit verify`"
                )));
            }
            Ok(None) => {
                return Err(std::io::Error::other(format!(
                    "{} is missing (the log has {seq} entries): the audit log was deleted or replaced; check it \
                     with `sealgate audit verify`",
                    self.head.display()
                )));
            }
            Err(reason) => return Err(std::io::Error::other(reason)),
        }
        let mut entry = Entry {
            seq: seq + 1,
            time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            actor: self.actor.clone(),
            op: event.op.into(),
            provider: event.provider.into(),
            key_id: event.key_id.into(),
            artifact: event.artifact.map(Into::into),
            result: match &event.result {
                Ok(()) => "ok".into(),
                Err(reason) => format!("refused: {reason}"),
            },
            prev,
            hash: String::new(),
            tag: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry.tag = self.key.sign(entry.seq, &entry.hash);
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()?;
        write_head(&self.head, &self.key, entry.seq, &entry.hash)
    }
}

/// The free space the audit log's file system must have before an audited change starts.
/// An entry is a few hundred bytes and a change writes a few small files; the margin makes
/// a change that was allowed to start very unlikely to run out of room half-way.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// Fails closed when the file system holding `data_dir`'s audit log is (nearly) full: a
/// change whose audit entry might not be written is not started, so nothing is changed
/// without a record of it. Serving requests writes no audit entries and is not affected.
/// Reading the log (`sealgate audit verify`) does not need room either.
pub fn ensure_room(data_dir: &Path) -> std::io::Result<()> {
    let stats = rustix::fs::statvfs(data_dir).map_err(std::io::Error::from)?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free < MIN_FREE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "the file system of the audit log ({}) has {free} bytes free, less than the {MIN_FREE_BYTES} an \
                 audited change needs: nothing was changed (free space, then run the command again)",
                data_dir.join("audit.log").display()
            ),
        ));
    }
    Ok(())
}

/// Held by every append in this process, from the log line to the head.
static APPENDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for an append in progress on another thread to finish and lets no other start, for
/// a process about to exit: a thread stopped between the log line and the head would leave a
/// log one entry ahead of its head, which `verify` rightly reports as tampering.
pub fn finish_appends() {
    std::mem::forget(APPENDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
}

/// Starts a new, empty audit log in `data_dir`: `audit.head` at entry 0, authenticated with
/// `key`. For a data dir being created, and for `sealgate audit verify --new-log`; refused
/// when the log has entries (a log with entries is never discarded).
pub fn start_new_log(data_dir: &Path, key: &AuditKey) -> Result<(), AuditError> {
    let log = AuditLog::new(data_dir, "", key.clone());
    match fs::metadata(&log.path) {
        Ok(meta) if meta.len() > 0 => {
            return Err(AuditError::Io(format!(
                "{} has entries; a new log starts only where there is none",
                log.path.display()
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AuditError::Io(e.to_string())),
    }
    write_head(&log.head, key, 0, GENESIS).map_err(|e| AuditError::Io(format!("audit.head: {e}")))
}

/// The last entry of the log `file` (read from its end), `None` when it is empty.
fn last_entry(file: &mut fs::File) -> std::io::Result<Option<Entry>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let start = len.saturating_sub(MAX_LINE);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    std::io::Read::by_ref(file).take(MAX_LINE).read_to_end(&mut tail)?;
    let broken = || {
        std::io::Error::other("the audit log's last line is not an audit entry; check it with `sealgate audit verify`")
    };
    let text = std::str::from_utf8(&tail).map_err(|_| broken())?;
    let text = text.strip_suffix('\n').ok_or_else(broken)?;
    let line = match text.rfind('\n') {
        Some(at) => &text[at + 1..],
        None if start == 0 => text,
        None => return Err(broken()),
    };
    let entry: Entry = serde_json::from_str(line).map_err(|_| broken())?;
    if entry.hash != entry.compute_hash() {
        return Err(broken());
    }
    Ok(Some(entry))
}

/// Whether `last`, one entry past `head`, is an append that stopped before its head was
/// written: it follows the head's entry, the head is authentic, and the entry carries the
/// key's tag (so it was written by a holder of the key, not added by hand).
fn interrupted(head: &Head, last: &Entry, key: &AuditKey) -> bool {
    head.seq.checked_add(1) == Some(last.seq)
        && head.hash == last.prev
        && head.tag.as_deref().is_some_and(|tag| key.check(head.seq, &head.hash, tag))
        && key.check(last.seq, &last.hash, &last.tag)
}

/// What `audit.head` records: `SEQ HASH TAG`, the tag being the audit key's MAC of the other
/// two (absent in heads written before heads were keyed).
struct Head {
    seq: u64,
    hash: String,
    tag: Option<String>,
}

/// `audit.head`: `Ok(None)` when missing.
fn read_head(path: &Path) -> Result<Option<Head>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("audit.head: {e}")),
    };
    let malformed = || "audit.head is malformed".to_owned();
    let hex64 = |text: &str| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = text.trim().split(' ');
    let (Some(seq), Some(hash), tag, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let seq = seq.parse::<u64>().map_err(|_| malformed())?;
    if !hex64(hash) || tag.is_some_and(|tag| !hex64(tag)) {
        return Err(malformed());
    }
    Ok(Some(Head { seq, hash: hash.to_owned(), tag: tag.map(str::to_owned) }))
}

/// Replaces `audit.head` durably (a new file, synced, renamed, the folder synced), with the
/// MAC of `key`.
fn write_head(path: &Path, key: &AuditKey, seq: u64, hash: &str) -> std::io::Result<()> {
    let tag = key.sign(seq, hash);
    crate::files::replace_file(path, format!("{seq} {hash} {tag}\n").as_bytes(), 0o600)
}

/// Checks the whole chain of `data_dir`'s audit log and that its head carries the MAC of
/// `key`; returns the number of entries.
///
/// A missing or empty log passes only when `audit.head` says the log is new (entry 0);
/// without a head, or with a head past entry 0, it was deleted, emptied or cut.
pub fn verify(data_dir: &Path, key: &AuditKey) -> Result<u64, AuditError> {
    check(data_dir, Some(key))
}

/// Authenticates the head of an intact log with a new `key`, for the operator's `sealgate
/// audit verify --rekey` (the audit key was lost, or the log predates keyed heads). Every
/// check of [`verify`] but the head's MAC must pass first; returns the number of entries.
pub fn rekey(data_dir: &Path, key: &AuditKey) -> Result<u64, AuditError> {
    let entries = check(data_dir, None)?;
    let head =
        read_head(&data_dir.join("audit.head")).map_err(AuditError::Io)?.ok_or(AuditError::NoHead { entries })?;
    write_head(&data_dir.join("audit.head"), key, head.seq, &head.hash)
        .map_err(|e| AuditError::Io(format!("audit.head: {e}")))?;
    Ok(entries)
}

/// Every check of [`verify`] but the head's MAC: what `--rekey` requires before it makes a
/// new key.
pub fn verify_chain(data_dir: &Path) -> Result<u64, AuditError> {
    check(data_dir, None)
}

/// [`verify`], the head's MAC checked only when a key is given.
fn check(data_dir: &Path, key: Option<&AuditKey>) -> Result<u64, AuditError> {
    let (path, head) = (data_dir.join("audit.log"), data_dir.join("audit.head"));
    let file = match fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(AuditError::Io(e.to_string())),
    };
    // Appends hold the exclusive lock from the log line to the head, so under a shared lock
    // the log and its head are read as one state even while a gateway writes.
    if let Some(file) = &file {
        file.lock_shared().map_err(|e| AuditError::Io(format!("locking the audit log: {e}")))?;
    }
    let head = read_head(&head).map_err(AuditError::Io)?;
    let mut prev = GENESIS.to_owned();
    let mut seq = 0u64;
    let mut last = None;
    for (i, line) in file.into_iter().flat_map(|f| std::io::BufReader::new(f).lines()).enumerate() {
        let line_no = i + 1;
        let broken = |reason: &str| AuditError::Broken { line: line_no, reason: reason.into() };
        let line = line.map_err(|e| AuditError::Io(e.to_string()))?;
        let entry: Entry = serde_json::from_str(&line).map_err(|_| broken("not a valid audit entry"))?;
        if entry.seq != seq + 1 {
            return Err(broken(&format!(
                "sequence {} where {} was expected (removed or reordered)",
                entry.seq,
                seq + 1
            )));
        }
        if entry.prev != prev {
            return Err(broken("does not follow the previous entry (removed, inserted or reordered)"));
        }
        if entry.hash != entry.compute_hash() {
            return Err(broken("content does not match its hash (edited)"));
        }
        prev.clone_from(&entry.hash);
        seq = entry.seq;
        last = Some(entry);
    }
    let Some(head) = head else {
        return Err(AuditError::NoHead { entries: seq });
    };
    // One entry past the head, written by a holder of the key: an append that stopped before
    // its head was written (the next append completes it).
    if let (Some(key), Some(last)) = (key, &last)
        && interrupted(&head, last, key)
    {
        return Ok(seq);
    }
    if head.seq < seq {
        return Err(AuditError::Broken {
            line: seq as usize,
            reason: format!(
                "entries past audit.head (entry {}) that no holder of the audit key wrote (added by hand)",
                head.seq
            ),
        });
    }
    if head.seq != seq {
        return Err(AuditError::Truncated { found: seq, expected: head.seq });
    }
    if head.hash != prev {
        return Err(AuditError::Broken { line: seq as usize, reason: "last entry does not match audit.head".into() });
    }
    if let Some(key) = key
        && !head.tag.is_some_and(|tag| key.check(head.seq, &head.hash, &tag))
    {
        return Err(AuditError::HeadNotAuthentic);
    }
    Ok(seq)
}

/// A [`KmsProvider`] that records every operation (and refusal) in an [`AuditLog`].
///
/// It owns the provider and a handle on the log (the log is a path and an actor; appends
/// lock the file), so a set of audited providers can be built once and kept as long as a
/// command or the gateway's start-up needs it, without borrowing from anything.
pub struct Audited<P> {
    inner: P,
    log: AuditLog,
    observer: Option<Observer>,
}

/// Told of every key use through an [`Audited`] provider: the provider's name, the
/// operation (`generate`, `wrap`, `unwrap`) and whether it succeeded. The gateway counts KMS
/// calls and failures for its metrics with it.
pub type Observer = fn(provider: &str, op: &str, ok: bool);

impl<P: KmsProvider> Audited<P> {
    /// Wraps `inner`; every key use through the wrapper is appended to `log`.
    pub fn new(inner: P, log: AuditLog) -> Self {
        Self { inner, log, observer: None }
    }

    /// Also tells `observer` of every key use.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The provider itself, for backend-specific key management (create, rotate, disable,
    /// ...). Nothing done through it is audited here: the caller records those operations.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    fn audit<T>(
        &self,
        op: &str,
        key_id: &str,
        context: Option<&EncryptionContext>,
        result: Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        if let Some(observe) = self.observer {
            observe(self.inner.name(), op, result.is_ok());
        }
        let artifact = context.map(subject);
        let event = Event {
            op,
            provider: self.inner.name(),
            key_id,
            artifact: artifact.as_deref(),
            result: result.as_ref().map(|_| ()).map_err(ToString::to_string),
        };
        self.log.record(&event).map_err(|e| KmsError::Backend(format!("cannot write the audit log: {e}")))?;
        result
    }
}

/// The audit subject of an encryption context: `model@version`, or its `purpose` entry.
pub fn subject(context: &EncryptionContext) -> String {
    match (context.get("model"), context.get("version"), context.get("purpose")) {
        (Some(m), Some(v), _) => format!("{m}@{v}"),
        (_, _, Some(p)) => p.clone(),
        _ => "-".into(),
    }
}

impl<P: KmsProvider> KmsProvider for Audited<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<crate::kms::GeneratedKey, KmsError> {
        let result = self.inner.generate_data_key(key_id, context);
        self.audit("generate", key_id, Some(context), result)
    }

    fn wrap_data_key(&self, key_id: &str, key: &DataKey, context: &EncryptionContext) -> Result<WrappedKey, KmsError> {
        let result = self.inner.wrap_data_key(key_id, key, context);
        self.audit("wrap", key_id, Some(context), result)
    }

    fn decrypt_data_key(&self, wrapped: &WrappedKey, context: &EncryptionContext) -> Result<DataKey, KmsError> {
        let result = self.inner.decrypt_data_key(wrapped, context);
        self.audit("unwrap", &wrapped.key_id, Some(context), result)
    }

    fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.inner.describe_key(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::new(&DataKey::from_bytes([7; 32]))
    }

    fn event(op: &str) -> Event<'_> {
        Event { op, provider: "local", key_id: "default", artifact: Some("m@1"), result: Ok(()) }
    }

    fn lines(dir: &Path) -> Vec<String> {
        fs::read_to_string(dir.join("audit.log")).unwrap().lines().map(String::from).collect()
    }

    fn write_lines(dir: &Path, lines: &[String]) {
        fs::write(dir.join("audit.log"), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }

    fn logged() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        start_new_log(dir.path(), &key()).unwrap();
        let log = AuditLog::new(dir.path(), "test", key());
        for op in ["create", "generate", "unwrap", "rotate"] {
            log.record(&event(op)).unwrap();
        }
        log.record(&Event { result: Err("key 'default' is disabled".into()), ..event("unwrap") }).unwrap();
        dir
    }

    #[test]
    fn an_intact_log_verifies() {
        let dir = logged();
        assert_eq!(verify(dir.path(), &key()), Ok(5));
        assert!(lines(dir.path())[4].contains("refused: key 'default' is disabled"));
    }

    #[test]
    fn an_edited_line_is_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l[2] = l[2].replace("\"unwrap\"", "\"wrap\"");
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path(), &key()), Err(AuditError::Broken { line: 3, .. })));
    }

    #[test]
    fn a_removed_line_is_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l.remove(1);
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path(), &key()), Err(AuditError::Broken { line: 2, .. })));
    }

    #[test]
    fn reordered_lines_are_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l.swap(1, 2);
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path(), &key()), Err(AuditError::Broken { line: 2, .. })));
    }

    #[test]
    fn a_cut_tail_is_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l.pop();
        write_lines(dir.path(), &l);
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::Truncated { found: 4, expected: 5 }));
    }

    #[test]
    fn an_append_stopped_before_its_head_is_completed_but_a_line_added_by_hand_is_not() {
        let dir = logged();
        let log = AuditLog::new(dir.path(), "test", key());
        // A process killed between the line and the head: the log is one entry ahead.
        let head = fs::read_to_string(dir.path().join("audit.head")).unwrap();
        log.record(&event("wrap")).unwrap();
        fs::write(dir.path().join("audit.head"), &head).unwrap();
        assert_eq!(verify(dir.path(), &key()), Ok(6), "the entry carries the key's tag");
        log.record(&event("unwrap")).unwrap();
        assert_eq!(verify(dir.path(), &key()), Ok(7));
        assert!(fs::read_to_string(dir.path().join("audit.head")).unwrap().starts_with("7 "));

        // The same shape made by someone without the key: an entry with a valid hash but no
        // (or a wrong) tag is not an interrupted append.
        let head = fs::read_to_string(dir.path().join("audit.head")).unwrap();
        log.record(&event("wrap")).unwrap();
        fs::write(dir.path().join("audit.head"), &head).unwrap();
        let mut l = lines(dir.path());
        let mut forged: Entry = serde_json::from_str(l.last().unwrap()).unwrap();
        forged.op = "forged".into();
        forged.hash = forged.compute_hash();
        for tag in [String::new(), AuditKey::new(&DataKey::from_bytes([8; 32])).sign(forged.seq, &forged.hash)] {
            forged.tag = tag;
            *l.last_mut().unwrap() = serde_json::to_string(&forged).unwrap();
            write_lines(dir.path(), &l);
            assert!(
                matches!(verify(dir.path(), &key()), Err(AuditError::Broken { line: 8, ref reason }) if reason.contains("added by hand"))
            );
            assert!(log.record(&event("wrap")).is_err(), "not continued");
        }
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let dir = logged();
        let mut l = lines(dir.path());
        l[1] = l[1].replacen('{', "{\"note\":\"x\",", 1);
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path(), &key()), Err(AuditError::Broken { line: 2, .. })));
    }

    #[test]
    fn an_emptied_or_deleted_log_is_detected() {
        let dir = logged();
        write_lines(dir.path(), &[]);
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::Truncated { found: 0, expected: 5 }));
        fs::remove_file(dir.path().join("audit.log")).unwrap();
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::Truncated { found: 0, expected: 5 }));
        fs::remove_file(dir.path().join("audit.head")).unwrap();
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::NoHead { entries: 0 }));
        // Only the operator's word starts a new log.
        start_new_log(dir.path(), &key()).unwrap();
        assert_eq!(verify(dir.path(), &key()), Ok(0));
    }

    #[test]
    fn a_log_with_entries_is_never_restarted() {
        let dir = logged();
        assert!(start_new_log(dir.path(), &key()).is_err());
        assert_eq!(verify(dir.path(), &key()), Ok(5));
    }

    #[test]
    fn appends_continue_from_the_log_and_refuse_a_log_that_disagrees_with_its_head() {
        let dir = logged();
        let log = AuditLog::new(dir.path(), "test", key());
        // The sequence comes from the log: a head edited to skip ahead is refused, not used.
        let head = fs::read_to_string(dir.path().join("audit.head")).unwrap();
        fs::write(dir.path().join("audit.head"), head.replacen("5 ", "9 ", 1)).unwrap();
        assert!(log.record(&event("wrap")).unwrap_err().to_string().contains("audit.head records entry 9"));
        fs::write(dir.path().join("audit.head"), &head).unwrap();
        log.record(&event("wrap")).unwrap();
        assert_eq!(verify(dir.path(), &key()), Ok(6));
        // A cut tail is not continued (which would write a matching head over it).
        let mut l = lines(dir.path());
        l.pop();
        write_lines(dir.path(), &l);
        assert!(log.record(&event("wrap")).is_err());
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::Truncated { found: 5, expected: 6 }));
        // Nor is a log whose head was removed.
        fs::remove_file(dir.path().join("audit.head")).unwrap();
        assert!(log.record(&event("wrap")).unwrap_err().to_string().contains("audit.head"));
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::NoHead { entries: 5 }));
    }

    /// What an intruder who can write the data dir but not use the audit key can do: edit a
    /// line and recompute every hash after it (the chain is plain SHA-256), then write a head
    /// that matches, with or without a made-up MAC. Each is refused by verify and by appends.
    #[test]
    fn a_rewritten_log_with_a_matching_head_is_not_authentic() {
        let dir = logged();
        let mut entries: Vec<Entry> = lines(dir.path()).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        entries[1].result = "refused: nothing happened here".into();
        let mut prev = GENESIS.to_owned();
        for entry in &mut entries {
            entry.prev = prev;
            entry.hash = entry.compute_hash();
            prev = entry.hash.clone();
        }
        write_lines(dir.path(), &entries.iter().map(|e| serde_json::to_string(e).unwrap()).collect::<Vec<_>>());
        let last = entries.last().unwrap();
        let forged_key = AuditKey::new(&DataKey::from_bytes([8; 32]));
        for head in [
            format!("{} {}\n", last.seq, last.hash),
            format!("{} {} {}\n", last.seq, last.hash, forged_key.sign(last.seq, &last.hash)),
            format!("{} {} {}\n", last.seq, last.hash, "0".repeat(64)),
        ] {
            fs::write(dir.path().join("audit.head"), &head).unwrap();
            assert_eq!(verify(dir.path(), &key()), Err(AuditError::HeadNotAuthentic), "{head}");
            let log = AuditLog::new(dir.path(), "test", key());
            assert!(log.record(&event("wrap")).unwrap_err().to_string().contains("not authenticated"), "{head}");
        }
        // A new log at entry 0 over a deleted one needs the key too.
        fs::remove_file(dir.path().join("audit.log")).unwrap();
        fs::write(dir.path().join("audit.head"), format!("0 {GENESIS}\n")).unwrap();
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::HeadNotAuthentic));
        fs::write(dir.path().join("audit.head"), format!("0 {GENESIS} {}\n", forged_key.sign(0, GENESIS))).unwrap();
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::HeadNotAuthentic));
        assert!(matches!(read_head(&dir.path().join("audit.head")), Ok(Some(Head { seq: 0, .. }))));
        fs::write(dir.path().join("audit.head"), format!("0 {GENESIS} zz\n")).unwrap();
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::Io("audit.head is malformed".into())));
    }

    #[test]
    fn rekey_authenticates_an_intact_log_only() {
        let dir = logged();
        let new_key = AuditKey::new(&DataKey::from_bytes([9; 32]));
        assert_eq!(verify(dir.path(), &new_key), Err(AuditError::HeadNotAuthentic));
        assert_eq!(rekey(dir.path(), &new_key), Ok(5));
        assert_eq!(verify(dir.path(), &new_key), Ok(5));
        assert_eq!(verify(dir.path(), &key()), Err(AuditError::HeadNotAuthentic), "the old key no longer fits");
        let mut l = lines(dir.path());
        l.pop();
        write_lines(dir.path(), &l);
        assert_eq!(rekey(dir.path(), &key()), Err(AuditError::Truncated { found: 4, expected: 5 }));
        assert_eq!(verify(dir.path(), &new_key), Err(AuditError::Truncated { found: 4, expected: 5 }));
    }

    #[test]
    fn the_audit_key_rests_wrapped_and_is_never_overwritten() {
        use crate::kms::local::{LocalKms, RootKey};
        let dir = tempfile::tempdir().unwrap();
        let kms = LocalKms::open(dir.path(), RootKey::File).unwrap();
        kms.ensure_key("default").unwrap();
        assert!(matches!(AuditKey::open(dir.path(), &[&kms as &dyn KmsProvider][..]), Err(AuditError::NoKey)));
        let made = AuditKey::create(dir.path(), &kms, "default").unwrap();
        let text = fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert!(!text.contains(&hex::encode(&made.0[..])), "the key is stored wrapped only");
        assert_eq!(AuditKey::wrapped_by(dir.path()).as_deref(), Some("local:default"));
        let opened = AuditKey::open(dir.path(), &[&kms as &dyn KmsProvider][..]).unwrap();
        assert_eq!(&opened.0[..], &made.0[..]);
        let again = AuditKey::create(dir.path(), &kms, "default").unwrap_err();
        assert!(again.to_string().contains("never overwritten"), "{again}");
        assert_eq!(fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(), text);
        // Without the provider that wrapped it, or with its ciphertext changed, it does not open.
        let none: &[&dyn KmsProvider] = &[];
        assert!(AuditKey::open(dir.path(), none).unwrap_err().to_string().contains("which is not configured"));
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ciphertext = file["ciphertext"].as_str().unwrap().to_owned();
        let flipped = if ciphertext.ends_with('0') { "1" } else { "0" };
        file["ciphertext"] = format!("{}{flipped}", &ciphertext[..ciphertext.len() - 1]).into();
        fs::write(dir.path().join(KEY_FILE), file.to_string()).unwrap();
        let refused = AuditKey::open(dir.path(), &[&kms as &dyn KmsProvider][..]).unwrap_err();
        assert!(refused.to_string().contains("cannot unwrap"), "{refused}");
        file["note"] = "x".into();
        fs::write(dir.path().join(KEY_FILE), file.to_string()).unwrap();
        let refused = AuditKey::open(dir.path(), &[&kms as &dyn KmsProvider][..]).unwrap_err();
        assert!(refused.to_string().contains("is not a wrapped audit key"), "{refused}");
        assert!(!format!("{made:?}").contains("7"), "Debug is redacted");
    }
}

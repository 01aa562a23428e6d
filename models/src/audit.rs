//! The key-use audit log: hash-chained JSON lines in `DATA_DIR/audit.log`.
//!
//! Every key operation — generate, wrap, unwrap, rotate, state changes, and refusals — is
//! appended as one JSON object: who, what operation, which provider and key, which artifact,
//! the result. Never key material, never plaintext. Each line carries the SHA-256 of the
//! previous line's hash and its own content, and `DATA_DIR/audit.head` records the last
//! sequence number and hash, so [`verify`] detects an edited, removed, inserted or reordered
//! line and a cut-off tail. Appends take an exclusive file lock, so the CLI and a running
//! gateway can share one log.

use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kms::{DataKey, EncryptionContext, KeyMetadata, KmsError, KmsProvider, WrappedKey};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored. Field order is the serialization order the hash covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    /// SHA-256 of `prev || this entry serialized without this field`, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

impl Entry {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash.clear();
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

/// An append-only, hash-chained audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
    actor: String,
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
    /// The log ends before the recorded head: lines were removed from the end.
    #[error("the audit log ends at entry {found} but entry {expected} was written (lines removed)")]
    Truncated {
        /// Last sequence number found.
        found: u64,
        /// Last sequence number recorded in the head file.
        expected: u64,
    },
}

impl AuditLog {
    /// The log of `data_dir`, written as `actor`.
    pub fn new(data_dir: &Path, actor: impl Into<String>) -> Self {
        Self { path: data_dir.join("audit.log"), head: data_dir.join("audit.head"), actor: actor.into() }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry. Failure to audit is an error the caller must not ignore: an
    /// unaudited key use is not allowed to succeed silently.
    pub fn record(&self, event: &Event<'_>) -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        file.lock()?;
        let (seq, prev) = match fs::read_to_string(&self.head) {
            Ok(text) => {
                let (seq, hash) = text.trim().split_once(' ').unwrap_or(("0", GENESIS));
                (seq.parse::<u64>().unwrap_or(0), hash.to_owned())
            }
            Err(_) => (0, GENESIS.to_owned()),
        };
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
        };
        entry.hash = entry.compute_hash();
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()?;
        let tmp = self.head.with_extension("tmp");
        fs::write(&tmp, format!("{} {}\n", entry.seq, entry.hash))?;
        fs::rename(&tmp, &self.head)?;
        Ok(())
    }
}

/// Checks the whole chain of `data_dir`'s audit log; returns the number of entries.
pub fn verify(data_dir: &Path) -> Result<u64, AuditError> {
    let log = AuditLog::new(data_dir, "");
    let file = match fs::File::open(&log.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !log.head.exists() => return Ok(0),
        Err(e) => return Err(AuditError::Io(e.to_string())),
    };
    let mut prev = GENESIS.to_owned();
    let mut seq = 0u64;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
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
        prev = entry.hash;
        seq = entry.seq;
    }
    let head = fs::read_to_string(&log.head).map_err(|e| AuditError::Io(format!("audit.head: {e}")))?;
    let (head_seq, head_hash) = head.trim().split_once(' ').unwrap_or(("0", ""));
    let head_seq: u64 = head_seq.parse().map_err(|_| AuditError::Io("audit.head is malformed".into()))?;
    if head_seq != seq {
        return Err(AuditError::Truncated { found: seq, expected: head_seq });
    }
    if head_hash != prev {
        return Err(AuditError::Broken { line: seq as usize, reason: "last entry does not match audit.head".into() });
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
        let log = AuditLog::new(dir.path(), "test");
        for op in ["create", "generate", "unwrap", "rotate"] {
            log.record(&event(op)).unwrap();
        }
        log.record(&Event { result: Err("key 'default' is disabled".into()), ..event("unwrap") }).unwrap();
        dir
    }

    #[test]
    fn an_intact_log_verifies() {
        let dir = logged();
        assert_eq!(verify(dir.path()), Ok(5));
        assert!(lines(dir.path())[4].contains("refused: key 'default' is disabled"));
    }

    #[test]
    fn an_edited_line_is_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l[2] = l[2].replace("\"unwrap\"", "\"wrap\"");
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path()), Err(AuditError::Broken { line: 3, .. })));
    }

    #[test]
    fn a_removed_line_is_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l.remove(1);
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path()), Err(AuditError::Broken { line: 2, .. })));
    }

    #[test]
    fn reordered_lines_are_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l.swap(1, 2);
        write_lines(dir.path(), &l);
        assert!(matches!(verify(dir.path()), Err(AuditError::Broken { line: 2, .. })));
    }

    #[test]
    fn a_cut_tail_is_detected() {
        let dir = logged();
        let mut l = lines(dir.path());
        l.pop();
        write_lines(dir.path(), &l);
        assert_eq!(verify(dir.path()), Err(AuditError::Truncated { found: 4, expected: 5 }));
    }
}

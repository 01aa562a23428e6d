//! Choosing and building KMS providers from the command line.
//!
//! The `local` provider of the data dir is always available (its root key comes from
//! `DATA_DIR/kms/root.key`, or from Argon2id over `SEALGATE_KMS_PASSPHRASE` when set). The
//! others are enabled by flags: `--aws-kms` (credentials and endpoint from the standard
//! `AWS_*` variables), `--pkcs11-token LABEL` (PIN from `SEALGATE_PKCS11_PIN`) and
//! `--customer-key FILE|-`. Every provider is wrapped in the audit log, so each key use is
//! recorded whoever asked for it.
//!
//! [`Providers`] is built once per command and owns the audited providers and the log; it is
//! the provider set the artifact functions take ([`KmsSet`]). Who writes the audit entry of a
//! refused artifact is decided here too: [`Refusal`] knows whether the audited provider
//! already recorded it, and [`Providers::audit_refusal`] records the rest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sealgate_models::artifact::{ArtifactError, KmsSet};
use sealgate_models::audit::{AuditError, AuditKey, AuditLog, Audited, Event};
use sealgate_models::kms::aws::{AwsKms, AwsKmsConfig};
use sealgate_models::kms::customer::CustomerKey;
use sealgate_models::kms::local::{LocalKms, RootKey};
use sealgate_models::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use sealgate_models::kms::{KmsProvider, aws, customer, local, pkcs11};
use zeroize::Zeroizing;

use crate::data_dir::DataDir;

/// Flags that configure KMS providers, shared by every command that uses keys.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KmsArgs {
    /// Enable the AWS KMS provider (configured by AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
    #[arg(long, global = true)]
    pub aws_kms: bool,
    /// Enable the PKCS#11 provider with the token of this label (PIN from SEALGATE_PKCS11_PIN).
    #[arg(long, env = "SEALGATE_PKCS11_TOKEN", global = true)]
    pub pkcs11_token: Option<String>,
    /// The PKCS#11 module.
    #[arg(long, env = "SEALGATE_PKCS11_LIBRARY", default_value = pkcs11::DEFAULT_LIBRARY, global = true)]
    pub pkcs11_library: PathBuf,
    /// Enable the customer-provided provider with the 256-bit key in this file (raw or hex),
    /// or `-` for stdin. The key is never written anywhere.
    #[arg(long, global = true)]
    pub customer_key: Option<String>,
    /// KMS key that wraps the audit log's key when a data dir is created (or the operator
    /// makes a new one with `sealgate audit verify --rekey`); default `local:default`. Choose
    /// one outside the data dir (AWS KMS, PKCS#11) so whoever can write the data dir cannot
    /// authenticate a rewritten log.
    #[arg(long, global = true, value_name = "PROVIDER:KEY")]
    pub audit_key_kms: Option<KeyRef>,
}

/// How [`Providers::open_with`] comes by the audit log's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKeyUse {
    /// Unwrap `DATA_DIR/audit.key` (and audit that); a data dir created by this process gets
    /// a new key and a new log instead.
    Existing,
    /// Unwrap it without writing anything: `sealgate audit verify`, which must not change
    /// the log it checks.
    ReadOnly,
    /// Make a new key wrapped by `--audit-key-kms` (`audit.key` must not exist): the operator's
    /// `--new-log` or `--rekey`, which record the event themselves once the head is keyed.
    New,
}

/// A KMS key named on the command line as `PROVIDER:KEY`, such as `local:default` or
/// `aws-kms:alias/sealgate` (the key part may itself hold colons, as ARNs do). Parsed by clap,
/// so no command splits the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// The provider's name: `local`, `aws-kms`, `pkcs11` or `customer-provided`.
    pub provider: String,
    /// The key within it.
    pub key_id: String,
}

impl std::str::FromStr for KeyRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((provider, key_id)) if !provider.is_empty() && !key_id.is_empty() => {
                Ok(Self { provider: provider.to_owned(), key_id: key_id.to_owned() })
            }
            _ => Err(format!("'{text}': expected PROVIDER:KEY, such as local:default")),
        }
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.key_id)
    }
}

/// The configured providers, each wrapped in the audit log, and the log itself: the provider
/// set of one command, built once by [`Providers::open`].
pub struct Providers {
    local: Audited<LocalKms>,
    aws: Option<Audited<AwsKms>>,
    pkcs11: Option<Audited<Pkcs11Kms>>,
    customer: Option<Audited<CustomerKey>>,
    log: AuditLog,
    /// The audit log's key; `Some` only when this process made it.
    made_audit_key: Option<KeyRef>,
}

/// Counts one KMS call in the process's metrics.
fn kms_observed(provider: &str, op: &str, ok: bool) {
    sealgate_server::metrics::global().kms_call(provider, op, ok);
}

/// The actor recorded in the audit log for this process.
pub fn actor(command: &str) -> String {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(u32::MAX);
    format!("sealgate {command} (pid {}, uid {uid})", std::process::id())
}

impl Providers {
    /// Builds the providers `args` enable, plus `required` (the provider a command is about to
    /// use), for the data dir `data`, with the audit log's key unwrapped.
    pub fn open(data: &DataDir, args: &KmsArgs, required: Option<&str>, command: &str) -> Result<Self> {
        Self::open_with(data, args, required, command, AuditKeyUse::Existing)
    }

    /// [`Providers::open`], the audit log's key obtained as `key_use` says.
    pub fn open_with(
        data: &DataDir,
        args: &KmsArgs,
        required: Option<&str>,
        command: &str,
        key_use: AuditKeyUse,
    ) -> Result<Self> {
        let root = match std::env::var("SEALGATE_KMS_PASSPHRASE") {
            Ok(p) if !p.is_empty() => RootKey::Passphrase(Zeroizing::new(p)),
            _ => RootKey::File,
        };
        let data_dir = data.root();
        if key_use != AuditKeyUse::ReadOnly {
            // Every command opened this way may change something it must audit: fail closed
            // before anything changes when the audit log has no room.
            sealgate_models::audit::ensure_room(data_dir)?;
        }
        let local = LocalKms::open(data_dir, root).context("opening the local KMS keyring")?;
        let aws = if args.aws_kms || required == Some(aws::PROVIDER_NAME) {
            Some(AwsKms::new(AwsKmsConfig::from_env()?).context("configuring AWS KMS")?)
        } else {
            None
        };
        let pkcs11 = match (&args.pkcs11_token, required == Some(pkcs11::PROVIDER_NAME)) {
            (Some(label), _) => {
                let pin = std::env::var("SEALGATE_PKCS11_PIN")
                    .context("the PKCS#11 provider needs the user PIN in SEALGATE_PKCS11_PIN")?;
                let config = Pkcs11Config {
                    library: args.pkcs11_library.clone(),
                    token_label: label.clone(),
                    user_pin: Zeroizing::new(pin),
                };
                Some(Pkcs11Kms::new(config).context("opening the PKCS#11 token")?)
            }
            (None, true) => bail!("--kms pkcs11 needs --pkcs11-token LABEL"),
            (None, false) => None,
        };
        let customer = match (&args.customer_key, required == Some(customer::NAME)) {
            (Some(source), _) => Some(CustomerKey::read(source)?),
            (None, true) => bail!("--kms customer-provided needs --customer-key FILE (or - for stdin)"),
            (None, false) => None,
        };
        let (key, made_audit_key) = {
            let mut raw: Vec<&dyn KmsProvider> = vec![&local];
            raw.extend(aws.as_ref().map(|p| p as &dyn KmsProvider));
            raw.extend(pkcs11.as_ref().map(|p| p as &dyn KmsProvider));
            raw.extend(customer.as_ref().map(|p| p as &dyn KmsProvider));
            audit_key(data, args, &local, &raw, key_use)?
        };
        let log = AuditLog::new(data_dir, actor(command), key.clone());
        let providers = Self {
            // Every key use is also counted for the gateway's metrics (`sealgate_kms_calls_total`).
            local: Audited::new(local, log.clone()).with_observer(kms_observed),
            aws: aws.map(|p| Audited::new(p, log.clone()).with_observer(kms_observed)),
            pkcs11: pkcs11.map(|p| Audited::new(p, log.clone()).with_observer(kms_observed)),
            customer: customer.map(|p| Audited::new(p, log.clone()).with_observer(kms_observed)),
            log,
            made_audit_key,
        };
        match (key_use, &providers.made_audit_key) {
            // A new data dir: its log starts here, its first entry the key that keys it.
            (AuditKeyUse::Existing, Some(made)) => {
                sealgate_models::audit::start_new_log(data_dir, &key).context("starting the audit log")?;
                providers.record_audit_key("generate", made)?;
            }
            (AuditKeyUse::Existing, None) => {
                let wrapped_by = AuditKey::wrapped_by(data_dir).unwrap_or_default();
                let made: KeyRef = wrapped_by.parse().map_err(anyhow::Error::msg)?;
                providers.record_audit_key("unwrap", &made)?;
            }
            _ => {}
        }
        if let Some(name) =
            required.filter(|n| ![local::NAME, aws::PROVIDER_NAME, pkcs11::PROVIDER_NAME, customer::NAME].contains(n))
        {
            let reason =
                format!("unknown KMS provider '{name}' (expected local, aws-kms, pkcs11 or customer-provided)");
            let event = Event { op: command, provider: name, key_id: "-", artifact: None, result: Err(reason.clone()) };
            providers.log.record(&event).context("writing the audit log")?;
            bail!(reason);
        }
        Ok(providers)
    }

    /// Records a use of the audit log's key (`generate`, `unwrap`, `rekey`, ...) by `kms`.
    pub fn record_audit_key(&self, op: &str, kms: &KeyRef) -> Result<()> {
        kms_observed(&kms.provider, if op == "generate" { "wrap" } else { "unwrap" }, true);
        let event =
            Event { op, provider: &kms.provider, key_id: &kms.key_id, artifact: Some("audit-head"), result: Ok(()) };
        self.log.record(&event).context("writing the audit log")
    }

    /// Records `op` (`s3-publish`, `s3-download`) on the object version `object` (`s3://BUCKET/KEY
    /// version=V etag=E`) holding the artifact `subject` (`model@version`).
    pub fn record_object(&self, op: &str, object: &str, subject: &str, result: Result<(), String>) -> Result<()> {
        let event = Event { op, provider: "s3", key_id: object, artifact: Some(subject), result };
        self.log.record(&event).context("writing the audit log")
    }

    /// The audit log's key, for checking the log (`sealgate audit verify`).
    pub fn log_key(&self) -> AuditKey {
        self.log.key().clone()
    }

    /// The KMS key that wraps the audit key this process made, if it made one.
    pub fn made_audit_key(&self) -> Option<&KeyRef> {
        self.made_audit_key.as_ref()
    }

    /// Drops every provider but `local` and those named in `keep`, returning the names of the
    /// dropped ones: a gateway past start-up holds only the credentials it still needs (a
    /// PKCS#11 session logs out, AWS credentials and a customer key are zeroized).
    pub fn keep_only(&mut self, keep: &[&str]) -> Vec<&'static str> {
        let mut dropped = Vec::new();
        if !keep.contains(&aws::PROVIDER_NAME) && self.aws.take().is_some() {
            dropped.push(aws::PROVIDER_NAME);
        }
        if !keep.contains(&pkcs11::PROVIDER_NAME) && self.pkcs11.take().is_some() {
            dropped.push(pkcs11::PROVIDER_NAME);
        }
        if !keep.contains(&customer::NAME) && self.customer.take().is_some() {
            dropped.push(customer::NAME);
        }
        dropped
    }

    /// The names of the providers held.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = vec![local::NAME];
        names.extend(self.aws.as_ref().map(|_| aws::PROVIDER_NAME));
        names.extend(self.pkcs11.as_ref().map(|_| pkcs11::PROVIDER_NAME));
        names.extend(self.customer.as_ref().map(|_| customer::NAME));
        names
    }

    /// The local provider itself, for key management (`sealgate kms`, the embedded default's
    /// key); the caller audits what it does with it.
    pub fn local(&self) -> &LocalKms {
        self.local.inner()
    }

    /// The AWS provider itself, if enabled (for `sealgate kms create`).
    pub fn aws(&self) -> Option<&AwsKms> {
        self.aws.as_ref().map(Audited::inner)
    }

    /// The PKCS#11 provider itself, if enabled (for `sealgate kms create`).
    pub fn pkcs11(&self) -> Option<&Pkcs11Kms> {
        self.pkcs11.as_ref().map(Audited::inner)
    }

    /// The audit log.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Settles `result` for the audit log: a [`Refusal`] the audited provider did not record
    /// (everything past the KMS: header, commitment, MAC, frames, identity, immutability) is
    /// recorded as `op` on the artifact at `path`; one it did record is not recorded twice.
    /// The subject is `model@version` from the header when it parses, else the path.
    pub fn audit_refusal<T>(&self, op: &str, path: &Path, result: Result<T, Refusal>) -> Result<T> {
        self.audit_refusal_of(op, || artifact_subject(path), result)
    }

    /// [`Providers::audit_refusal`] for an artifact that is not a file (an object downloaded
    /// into memory): `subject` names it in the entry.
    pub fn audit_refusal_of<T>(
        &self,
        op: &str,
        subject: impl FnOnce() -> String,
        result: Result<T, Refusal>,
    ) -> Result<T> {
        let refusal = match result {
            Ok(value) => return Ok(value),
            Err(refusal) => refusal,
        };
        if refusal.origin == Origin::Artifact {
            let subject = subject();
            let reason = format!("{:#}", refusal.error);
            let event = Event { op, provider: "-", key_id: "-", artifact: Some(&subject), result: Err(reason) };
            self.log.record(&event).context("writing the audit log")?;
        }
        Err(refusal.error)
    }

    /// The provider named `name`, audited; an error names what is missing.
    pub fn get(&self, name: &str) -> Result<&dyn KmsProvider> {
        match self.provider(name) {
            Some(p) => Ok(p),
            None => bail!("KMS provider '{name}' is not configured (see `sealgate seal --help`)"),
        }
    }
}

/// The audit log's key of `data`, as `key_use` says (see [`AuditKeyUse`]), and the KMS key
/// that wraps it when this call made it.
fn audit_key(
    data: &DataDir,
    args: &KmsArgs,
    local: &LocalKms,
    raw: &[&dyn KmsProvider],
    key_use: AuditKeyUse,
) -> Result<(AuditKey, Option<KeyRef>)> {
    let make = || -> Result<(AuditKey, Option<KeyRef>)> {
        let wrap_with = args
            .audit_key_kms
            .clone()
            .unwrap_or_else(|| KeyRef { provider: local::NAME.into(), key_id: "default".into() });
        if wrap_with.provider == local::NAME {
            local
                .ensure_key(&wrap_with.key_id)
                .with_context(|| format!("creating the local KMS key '{}'", wrap_with.key_id))?;
        }
        let Some(kms) = raw.iter().copied().find(|p| p.name() == wrap_with.provider) else {
            bail!("--audit-key-kms {wrap_with}: the KMS provider '{}' is not configured", wrap_with.provider);
        };
        let key = AuditKey::create(data.root(), kms, &wrap_with.key_id).context("making the audit log's key")?;
        Ok((key, Some(wrap_with)))
    };
    match key_use {
        AuditKeyUse::New => make(),
        AuditKeyUse::Existing | AuditKeyUse::ReadOnly => match AuditKey::open(data.root(), raw) {
            Ok(key) => Ok((key, None)),
            // Only a data dir this process created has no key yet; anywhere else a missing key
            // was deleted, and making a new one would authenticate whatever the log now says.
            Err(AuditError::NoKey) if key_use == AuditKeyUse::Existing && data.is_new() => make(),
            Err(e) => Err(anyhow::Error::new(e).context(format!("opening the audit log of {}", data.root().display()))),
        },
    }
}

/// The audited providers are the set artifacts are sealed, opened and re-wrapped with.
impl KmsSet for Providers {
    fn provider(&self, name: &str) -> Option<&dyn KmsProvider> {
        match name {
            local::NAME => Some(&self.local),
            aws::PROVIDER_NAME => self.aws.as_ref().map(|p| p as &dyn KmsProvider),
            pkcs11::PROVIDER_NAME => self.pkcs11.as_ref().map(|p| p as &dyn KmsProvider),
            customer::NAME => self.customer.as_ref().map(|p| p as &dyn KmsProvider),
            _ => None,
        }
    }
}

/// Why an artifact was refused, and whether the audit log already holds the refusal.
///
/// A refusal by the KMS itself (no wrapped key could be unwrapped, the KMS unreachable or
/// refusing) was recorded by the audited provider that made the call; every other refusal
/// still needs an entry, which [`Providers::audit_refusal`] writes.
#[derive(Debug)]
pub struct Refusal {
    error: anyhow::Error,
    origin: Origin,
}

/// Where a refusal came from, which says who audits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The KMS could not be reached; the audited provider recorded each attempt.
    KmsUnreachable,
    /// The KMS refused; the audited provider recorded it.
    Kms,
    /// Past the KMS (the file, header, commitment, MAC, frames, identity, immutability); not
    /// recorded yet.
    Artifact,
}

impl Refusal {
    /// A refusal past the KMS (the file, the artifact's identity, a published version's
    /// digest, ...): not in the audit log yet.
    pub fn new(error: anyhow::Error) -> Self {
        Self { error, origin: Origin::Artifact }
    }

    /// True when the KMS could not be reached: worth retrying.
    pub fn is_transient(&self) -> bool {
        self.origin == Origin::KmsUnreachable
    }

    /// The error.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// The same refusal with its error reworded, such as with the file it concerns.
    pub fn map(self, reword: impl FnOnce(anyhow::Error) -> anyhow::Error) -> Self {
        Self { error: reword(self.error), origin: self.origin }
    }
}

impl From<ArtifactError> for Refusal {
    fn from(error: ArtifactError) -> Self {
        let origin = match error {
            ArtifactError::KmsUnavailable(_) => Origin::KmsUnreachable,
            ArtifactError::NoUsableKey(_) | ArtifactError::KmsRefused(_) => Origin::Kms,
            _ => Origin::Artifact,
        };
        Self { error: error.into(), origin }
    }
}

/// `model@version` of an artifact's (unauthenticated) header, or the path if it does not parse.
fn artifact_subject(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut prefix = Vec::new();
    match std::fs::File::open(path).and_then(|f| f.take(64 << 10).read_to_end(&mut prefix)) {
        Ok(_) => subject_of(&prefix, &path.display().to_string()),
        Err(_) => path.display().to_string(),
    }
}

/// `model@version` of the (unauthenticated) header at the start of `bytes`, or `fallback`
/// if it does not parse.
pub fn subject_of(bytes: &[u8], fallback: &str) -> String {
    match sealgate_models::artifact::Header::parse(bytes) {
        Ok((header, _)) => sealgate_models::audit::subject(&header.context),
        Err(_) => fallback.to_owned(),
    }
}

#[cfg(test)]
mod key_ref_tests {
    use super::KeyRef;

    #[test]
    fn key_refs_parse_provider_and_key() {
        let r: KeyRef = "aws-kms:arn:aws:kms:eu-west-1:1:key/x".parse().unwrap();
        assert_eq!((r.provider.as_str(), r.key_id.as_str()), ("aws-kms", "arn:aws:kms:eu-west-1:1:key/x"));
        assert_eq!(r.to_string(), "aws-kms:arn:aws:kms:eu-west-1:1:key/x");
        for bad in ["local", ":key", "local:", ""] {
            assert!(bad.parse::<KeyRef>().unwrap_err().contains("PROVIDER:KEY"), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use sealgate_models::kms::KmsError;

    fn entries(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("audit.log")).map_or(0, |text| text.lines().count())
    }

    #[test]
    fn only_refusals_past_the_kms_are_recorded_here() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let providers = Providers::open(&data, &KmsArgs::default(), None, "test").unwrap();
        let path = dir.path().join("missing.sealed");
        let refusals = [
            (Refusal::from(ArtifactError::KmsUnavailable(KmsError::Unavailable("down".into()))), 0),
            (Refusal::from(ArtifactError::NoUsableKey(vec!["local key 'k': disabled".into()])), 0),
            (Refusal::from(ArtifactError::KmsRefused(KmsError::KeyNotFound("k".into()))), 0),
            (Refusal::from(ArtifactError::HeaderMac), 1),
            (Refusal::new(anyhow::anyhow!("renamed")).map(|e| e.context("refusing x")), 1),
        ];
        for (refusal, recorded) in refusals {
            let before = entries(dir.path());
            let text = format!("{:#}", refusal.error());
            let error = providers.audit_refusal::<()>("load", &path, Err(refusal)).unwrap_err();
            assert_eq!(format!("{error:#}"), text, "the error is handed back unchanged");
            assert_eq!(entries(dir.path()) - before, recorded, "{text}");
        }
        let log = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert!(log.contains("refusing x: renamed"), "{log}");
        let key = providers.log_key();
        // The audit key's creation, then the two refusals.
        assert_eq!(sealgate_models::audit::verify(dir.path(), &key), Ok(3));
    }

    #[test]
    fn only_an_unreachable_kms_is_worth_retrying() {
        assert!(Refusal::from(ArtifactError::KmsUnavailable(KmsError::Unavailable("down".into()))).is_transient());
        assert!(!Refusal::from(ArtifactError::Truncated).is_transient());
        assert!(!Refusal::new(anyhow::anyhow!("x")).is_transient());
    }
}

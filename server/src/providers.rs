//! Choosing and building KMS providers from the command line.
//!
//! The `local` provider of the data dir is always available (its root key comes from
//! `DATA_DIR/kms/root.key`, or from Argon2id over `SEALGATE_KMS_PASSPHRASE` when set). The
//! others are enabled by flags: `--aws-kms` (credentials and endpoint from the standard
//! `AWS_*` variables), `--pkcs11-token LABEL` (PIN from `SEALGATE_PKCS11_PIN`) and
//! `--customer-key FILE|-`. Every provider is wrapped in the audit log, so each key use is
//! recorded whoever asked for it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sealgate_models::audit::{AuditLog, Audited, Event};
use sealgate_models::kms::aws::{AwsKms, AwsKmsConfig};
use sealgate_models::kms::customer::CustomerKey;
use sealgate_models::kms::local::{LocalKms, RootKey};
use sealgate_models::kms::pkcs11::{Pkcs11Config, Pkcs11Kms};
use sealgate_models::kms::{KmsProvider, aws, customer, local, pkcs11};
use zeroize::Zeroizing;

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

/// The configured providers, each audited.
pub struct Providers {
    local: LocalKms,
    aws: Option<AwsKms>,
    pkcs11: Option<Pkcs11Kms>,
    customer: Option<CustomerKey>,
    log: AuditLog,
}

/// The actor recorded in the audit log for this process.
pub fn actor(command: &str) -> String {
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(u32::MAX);
    format!("sealgate {command} (pid {}, uid {uid})", std::process::id())
}

impl Providers {
    /// Builds the providers `args` enable, plus `required` (the provider a command is about to
    /// use), for the data dir `data_dir`.
    pub fn open(data_dir: &Path, args: &KmsArgs, required: Option<&str>, command: &str) -> Result<Self> {
        let root = match std::env::var("SEALGATE_KMS_PASSPHRASE") {
            Ok(p) if !p.is_empty() => RootKey::Passphrase(Zeroizing::new(p)),
            _ => RootKey::File,
        };
        crate::data_dir::DataDir::open(data_dir)?;
        let log = AuditLog::new(data_dir, actor(command));
        if let Some(name) =
            required.filter(|n| ![local::NAME, aws::PROVIDER_NAME, pkcs11::PROVIDER_NAME, customer::NAME].contains(n))
        {
            let reason =
                format!("unknown KMS provider '{name}' (expected local, aws-kms, pkcs11 or customer-provided)");
            let event = Event { op: command, provider: name, key_id: "-", artifact: None, result: Err(reason.clone()) };
            log.record(&event).context("writing the audit log")?;
            bail!(reason);
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
        Ok(Self { local, aws, pkcs11, customer, log })
    }

    /// The local provider (for `sealgate kms`).
    pub fn local(&self) -> &LocalKms {
        &self.local
    }

    /// The AWS provider, if enabled.
    pub fn aws(&self) -> Option<&AwsKms> {
        self.aws.as_ref()
    }

    /// The PKCS#11 provider, if enabled.
    pub fn pkcs11(&self) -> Option<&Pkcs11Kms> {
        self.pkcs11.as_ref()
    }

    /// The audit log.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Records that the artifact at `path` was refused for `reason`, so refusals that happen
    /// past the KMS (commitment, MAC, frames, identity, immutability) are audited like the
    /// KMS's own. The subject is `model@version` from the header when it parses, else the path.
    pub fn record_refusal(&self, op: &str, path: &std::path::Path, reason: &anyhow::Error) -> Result<()> {
        let subject = artifact_subject(path);
        let event =
            Event { op, provider: "-", key_id: "-", artifact: Some(&subject), result: Err(format!("{reason:#}")) };
        self.log.record(&event).context("writing the audit log")
    }

    fn raw(&self, name: &str) -> Option<&dyn KmsProvider> {
        match name {
            local::NAME => Some(&self.local),
            aws::PROVIDER_NAME => self.aws.as_ref().map(|p| p as &dyn KmsProvider),
            pkcs11::PROVIDER_NAME => self.pkcs11.as_ref().map(|p| p as &dyn KmsProvider),
            customer::NAME => self.customer.as_ref().map(|p| p as &dyn KmsProvider),
            _ => None,
        }
    }

    /// Every enabled provider, audited.
    pub fn audited(&self) -> Vec<Audited<'_>> {
        [local::NAME, aws::PROVIDER_NAME, pkcs11::PROVIDER_NAME, customer::NAME]
            .into_iter()
            .filter_map(|name| self.raw(name))
            .map(|p| Audited::new(p, &self.log))
            .collect()
    }

    /// The provider named `name`, audited; an error names what is missing.
    pub fn get(&self, name: &str) -> Result<Audited<'_>> {
        match self.raw(name) {
            Some(p) => Ok(Audited::new(p, &self.log)),
            None => bail!("KMS provider '{name}' is not configured (see `sealgate seal --help`)"),
        }
    }
}

/// `model@version` of an artifact's (unauthenticated) header, or the path if it does not parse.
fn artifact_subject(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut prefix = Vec::new();
    let parsed = std::fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut prefix))
        .ok()
        .and_then(|_| sealgate_models::artifact::Header::parse(&prefix).ok());
    match parsed {
        Some((header, _)) => sealgate_models::audit::subject(&header.context),
        None => path.display().to_string(),
    }
}

/// True when the KMS itself refused (and so already audited the refusal).
pub fn refused_by_kms(e: &sealgate_models::artifact::ArtifactError) -> bool {
    use sealgate_models::artifact::ArtifactError as E;
    matches!(e, E::NoUsableKey(_) | E::KmsUnavailable(_) | E::KmsRefused(_))
}

/// Lets `&[Audited]` serve as the provider set of artifact functions.
pub fn as_set<'a>(audited: &'a [Audited<'a>]) -> Vec<&'a dyn KmsProvider> {
    audited.iter().map(|a| a as &dyn KmsProvider).collect()
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

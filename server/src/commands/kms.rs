//! `sealgate kms ...`: managing the keys of the `local` provider (and creating keys in the
//! other providers' backends). Every operation, successful or refused, is audited.

use std::path::PathBuf;

use anyhow::Result;
use sealgate_models::audit::Event;
use sealgate_models::kms::{KeyState, KmsError, local};

use crate::providers::{KmsArgs, Providers};

/// `sealgate kms ...`.
#[derive(clap::Args)]
pub struct KmsCommandArgs {
    /// Data directory.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: KmsCommand,
    #[command(flatten)]
    providers: KmsArgs,
}

/// A key operation.
#[derive(clap::Subcommand)]
pub enum KmsCommand {
    /// Create a key (local by default; `--provider aws-kms` or `pkcs11` creates it there).
    Create {
        /// Key name (local: the name; pkcs11: the label; aws-kms: the description).
        name: String,
        /// Where to create it.
        #[arg(long, default_value = "local")]
        provider: String,
    },
    /// List the local keys.
    List,
    /// Add a version to a local key; old versions still decrypt.
    Rotate {
        /// Key name.
        name: String,
    },
    /// Disable a local key: it refuses every operation until enabled.
    Disable {
        /// Key name.
        name: String,
    },
    /// Enable a disabled local key.
    Enable {
        /// Key name.
        name: String,
    },
    /// Schedule a local key's destruction after a waiting period of 7 to 30 days.
    ScheduleDeletion {
        /// Key name.
        name: String,
        /// Waiting period in days (7 to 30).
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Cancel a scheduled deletion; the key is left disabled.
    CancelDeletion {
        /// Key name.
        name: String,
    },
}

/// Runs a `sealgate kms` command.
pub fn run(args: KmsCommandArgs) -> Result<()> {
    let required = match &args.command {
        KmsCommand::Create { provider, .. } => Some(provider.as_str()),
        _ => None,
    };
    let data = crate::data_dir::DataDir::open(&args.data_dir)?;
    let providers = Providers::open(&data, &args.providers, required, "kms")?;
    let kms = providers.local();
    let (op, provider, name, result): (&str, &str, String, Result<String, KmsError>) = match args.command {
        KmsCommand::Create { name, provider } => {
            let result = match provider.as_str() {
                local::NAME => kms.create_key(&name).map(|()| format!("created local key '{name}'")),
                "aws-kms" => match providers.aws() {
                    Some(aws) => aws.create_key(&name).map(|id| format!("created AWS KMS key {id}")),
                    None => Err(KmsError::UnknownProvider(provider.clone())),
                },
                "pkcs11" => match providers.pkcs11() {
                    Some(hsm) => hsm.create_key(&name).map(|id| format!("created PKCS#11 key '{id}'")),
                    None => Err(KmsError::UnknownProvider(provider.clone())),
                },
                other => Err(KmsError::UnknownProvider(other.into())),
            };
            let provider: &str = match provider.as_str() {
                "aws-kms" => "aws-kms",
                "pkcs11" => "pkcs11",
                _ => local::NAME,
            };
            let name = match &result {
                Ok(text) if provider != local::NAME => {
                    text.rsplit(' ').next().unwrap_or(&name).trim_matches('\'').to_owned()
                }
                _ => name,
            };
            ("create", provider, name, result)
        }
        KmsCommand::List => {
            for key in kms.list()? {
                let state = match key.state {
                    KeyState::Enabled => "enabled".to_string(),
                    KeyState::Disabled => "disabled".to_string(),
                    KeyState::PendingDeletion { delete_after: 0 } => "destroyed".to_string(),
                    KeyState::PendingDeletion { delete_after } => format!("pending deletion (after {delete_after})"),
                };
                println!("{}\t{} version(s)\t{state}", key.name, key.versions);
            }
            return Ok(());
        }
        KmsCommand::Rotate { name } => {
            let r = kms.rotate(&name).map(|v| format!("rotated '{name}': version {v} now wraps new keys"));
            ("rotate", local::NAME, name, r)
        }
        KmsCommand::Disable { name } => {
            let r = kms.disable(&name).map(|()| format!("disabled '{name}'"));
            ("disable", local::NAME, name, r)
        }
        KmsCommand::Enable { name } => {
            let r = kms.enable(&name).map(|()| format!("enabled '{name}'"));
            ("enable", local::NAME, name, r)
        }
        KmsCommand::ScheduleDeletion { name, days } => {
            let r = kms
                .schedule_deletion(&name, days)
                .map(|at| format!("'{name}' will be destroyed after {at} (Unix time); cancel with cancel-deletion"));
            ("schedule-deletion", local::NAME, name, r)
        }
        KmsCommand::CancelDeletion { name } => {
            let r = kms.cancel_deletion(&name).map(|()| format!("deletion of '{name}' cancelled; the key is disabled"));
            ("cancel-deletion", local::NAME, name, r)
        }
    };
    let event = Event {
        op,
        provider,
        key_id: &name,
        artifact: None,
        result: result.as_ref().map(|_| ()).map_err(ToString::to_string),
    };
    providers.log().record(&event)?;
    println!("{}", result?);
    Ok(())
}

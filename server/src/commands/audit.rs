//! `sealgate audit verify`: check the key-use audit log (its hash chain, and the head's MAC
//! under the audit key the KMS unwraps), and the operator's explicit word that a log is new
//! (`--new-log`) or that an intact log gets a new audit key (`--rekey`).
//!
//! Verifying never writes: the audit key is unwrapped without an audit entry, so a broken
//! log is reported as it is. `--new-log` and `--rekey` are the only ways to a head that
//! passes after the log or its key is gone, and each leaves an entry saying so.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use sealgate_models::audit::{self, AuditError, KEY_FILE};

use crate::data_dir::DataDir;
use crate::providers::{AuditKeyUse, KmsArgs, Providers};

/// `sealgate audit ...`.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no line of the audit log was edited, removed, inserted or reordered, that
    /// the log was not emptied or deleted, and that its head carries the audit key's MAC.
    Verify {
        /// Data directory.
        #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
        data_dir: PathBuf,
        /// The log is new on purpose (the data dir's log and audit.head are gone, and that is
        /// known): start a new log at entry 0. Refused when the log has entries.
        #[arg(long, conflicts_with = "rekey")]
        new_log: bool,
        /// The log is intact but its audit key is lost (its KMS key was deleted, or
        /// audit.key removed), or the log predates keyed heads: make a new audit key, wrapped
        /// by --audit-key-kms, and authenticate the head with it. Refused unless every line
        /// and the head's sequence and hash check out; the old audit.key is kept beside it.
        #[arg(long)]
        rekey: bool,
        #[command(flatten)]
        providers: KmsArgs,
    },
}

/// Runs an audit command.
pub fn run(command: AuditCommand) -> Result<()> {
    let AuditCommand::Verify { data_dir, new_log, rekey, providers } = command;
    if !data_dir.is_dir() {
        bail!("{} is not a data directory (it does not exist)", data_dir.display());
    }
    let data = DataDir::open(&data_dir)?;
    let key_file = data_dir.join(KEY_FILE);
    if rekey {
        let entries = audit::verify_chain(&data_dir).context("--rekey needs an intact log")?;
        if key_file.exists() {
            let aside = data_dir.join(format!("{KEY_FILE}.replaced-{}", crate::commands::tenants::unix_now()));
            std::fs::rename(&key_file, &aside)
                .with_context(|| format!("moving {} aside to {}", key_file.display(), aside.display()))?;
            eprintln!("the previous audit key is kept as {}", aside.display());
        }
        let kms = Providers::open_with(&data, &providers, None, "audit", AuditKeyUse::New)?;
        let made = kms.made_audit_key().context("a new audit key")?.clone();
        audit::rekey(&data_dir, &kms.log_key())?;
        kms.record_audit_key("rekey", &made)?;
        println!(
            "ok: audit log intact, {entries} entries; its head is now authenticated by a new key wrapped by {made}"
        );
        return Ok(());
    }
    if new_log {
        let key_use = if key_file.exists() { AuditKeyUse::ReadOnly } else { AuditKeyUse::New };
        let kms = Providers::open_with(&data, &providers, None, "audit", key_use)?;
        let key = kms.log_key();
        let before = audit::verify(&data_dir, &key);
        audit::start_new_log(&data_dir, &key)?;
        if let Some(made) = kms.made_audit_key() {
            kms.record_audit_key("generate", made)?;
        }
        match before {
            Ok(_) => println!("ok: audit log intact, 0 entries (already new)"),
            Err(e) => println!("ok: a new audit log starts at entry 0 (the old one: {e})"),
        }
        return Ok(());
    }
    let kms = match Providers::open_with(&data, &providers, None, "audit", AuditKeyUse::ReadOnly) {
        Ok(kms) => kms,
        Err(e) if e.downcast_ref::<AuditError>() == Some(&AuditError::NoKey) => return Err(e),
        Err(e) => return Err(e.context("the audit log cannot be checked without its key")),
    };
    let entries = audit::verify(&data_dir, &kms.log_key())?;
    println!("ok: audit log intact, {entries} entries");
    Ok(())
}

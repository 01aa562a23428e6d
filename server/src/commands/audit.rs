//! `sealgate audit verify`: check the hash chain of the key-use audit log, and the
//! operator's explicit word that a log is new (`--new-log`).

use std::path::PathBuf;

use anyhow::Result;

/// `sealgate audit ...`.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no line of the audit log was edited, removed, inserted or reordered, and
    /// that the log was not emptied or deleted.
    Verify {
        /// Data directory.
        #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
        data_dir: PathBuf,
        /// The log is new on purpose (the data dir's log and audit.head are gone, and that is
        /// known): start a new log at entry 0. Refused when the log has entries.
        #[arg(long)]
        new_log: bool,
    },
}

/// Runs an audit command.
pub fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify { data_dir, new_log } => {
            if new_log {
                let before = sealgate_models::audit::verify(&data_dir);
                sealgate_models::audit::start_new_log(&data_dir)?;
                match before {
                    Ok(_) => println!("ok: audit log intact, 0 entries (already new)"),
                    Err(e) => println!("ok: a new audit log starts at entry 0 (the old one: {e})"),
                }
                return Ok(());
            }
            let entries = sealgate_models::audit::verify(&data_dir)?;
            println!("ok: audit log intact, {entries} entries");
            Ok(())
        }
    }
}

//! `sealgate audit verify`: check the hash chain of the key-use audit log.

use std::path::PathBuf;

use anyhow::Result;

/// `sealgate audit ...`.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check that no line of the audit log was edited, removed, inserted or reordered.
    Verify {
        /// Data directory.
        #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
        data_dir: PathBuf,
    },
}

/// Runs an audit command.
pub fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => {
            let entries = sealgate_models::audit::verify(&data_dir)?;
            println!("ok: audit log intact, {entries} entries");
            Ok(())
        }
    }
}

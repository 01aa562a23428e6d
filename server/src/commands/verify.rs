//! `sealgate verify`: decrypt an artifact in memory and check everything, without serving.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sealgate_models::artifact::{self, DigestCheck};

use crate::data_dir::DataDir;
use crate::providers::{KmsArgs, Providers, Refusal};

/// `sealgate verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Data directory.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
    data_dir: PathBuf,
    /// The artifact.
    file: PathBuf,
    /// Also require this model name.
    #[arg(long)]
    model: Option<String>,
    /// Also require this version.
    #[arg(long)]
    version: Option<String>,
    #[command(flatten)]
    providers: KmsArgs,
}

/// Runs `sealgate verify`: exit 0 and a summary, or an error.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let data = DataDir::open(&args.data_dir)?;
    let providers = Providers::open(&data, &args.providers, None, "verify")?;
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let opened = artifact::open_file(&file, &providers, DigestCheck::Recompute)
        .map_err(|e| Refusal::from(e).map(|e| e.context(format!("{} failed verification", args.file.display()))));
    let opened = providers.audit_refusal("verify", &args.file, opened)?;
    let context = &opened.header.context;
    let get = |k: &str| context.get(k).map(String::as_str).unwrap_or("-");
    for (flag, key, wanted) in
        [("--model", artifact::CONTEXT_MODEL, &args.model), ("--version", artifact::CONTEXT_VERSION, &args.version)]
    {
        if let Some(wanted) = wanted.as_ref().filter(|w| get(key) != w.as_str()) {
            let e = anyhow::anyhow!("{} holds {key} '{}', not '{wanted}' ({flag})", args.file.display(), get(key));
            return providers.audit_refusal("verify", &args.file, Err(Refusal::new(e)));
        }
    }
    println!(
        "ok: {} is {}@{} ({} bytes, sha256 {}), opened with {}:{}",
        args.file.display(),
        get(artifact::CONTEXT_MODEL),
        get(artifact::CONTEXT_VERSION),
        opened.plaintext.as_slice().len(),
        get(artifact::CONTEXT_SHA256),
        opened.opened_with.0,
        opened.opened_with.1
    );
    Ok(())
}

//! `sealgate verify`: decrypt an artifact in memory and check everything, without serving.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sealgate_models::artifact::{self, DigestCheck};

use crate::data_dir::DataDir;
use crate::progress::Progress;
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
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::new("verifying", &args.file.display().to_string(), size);
    let opened = artifact::open_file_with_progress(&file, &providers, DigestCheck::Recompute, &|n| progress.add(n));
    let (elapsed, rate) = progress.finish();
    let opened =
        opened.map_err(|e| Refusal::from(e).map(|e| e.context(format!("{} failed verification", args.file.display()))));
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
    let files = opened.header.files.len().max(1);
    println!(
        "ok: {} is {}@{} (format {}, {files} file(s), {} bytes, sha256 {}), opened with {}:{} in {:.1}s ({rate:.0} MB/s)",
        args.file.display(),
        get(artifact::CONTEXT_MODEL),
        get(artifact::CONTEXT_VERSION),
        opened.header.version,
        opened.plaintext.as_slice().len(),
        get(artifact::CONTEXT_SHA256),
        opened.opened_with.0,
        opened.opened_with.1,
        elapsed.as_secs_f64()
    );
    // Every file was checked against its SHA-256 in the authenticated header.
    for file in &opened.header.files {
        println!("  {} {} bytes sha256 {}", file.name, file.size, hex::encode(file.sha256));
    }
    Ok(())
}

//! `sealgate seal` and `sealgate rewrap`: making and re-keying sealed artifacts.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use sealgate_models::artifact::{self, SealRequest};

use crate::data_dir::DataDir;
use crate::providers::{KeyRef, KmsArgs, Providers};

/// `sealgate seal`.
#[derive(clap::Args)]
pub struct SealArgs {
    /// Data directory (its local keyring and audit log are used).
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
    data_dir: PathBuf,
    /// KMS provider that wraps the data key: local, aws-kms, pkcs11, customer-provided.
    #[arg(long, default_value = "local")]
    kms: String,
    /// The provider's key: a local key name (default `default`), an AWS key id/ARN/alias, a
    /// PKCS#11 key label; ignored for customer-provided.
    #[arg(long)]
    key_id: Option<String>,
    /// Also wrap the data key with PROVIDER:KEY (a recovery path); repeatable.
    #[arg(long = "recovery", value_name = "PROVIDER:KEY")]
    recovery: Vec<KeyRef>,
    /// Model name recorded in the artifact.
    #[arg(long)]
    model: String,
    /// Model version recorded in the artifact.
    #[arg(long)]
    version: String,
    /// Plaintext bytes per frame.
    #[arg(long, default_value_t = artifact::DEFAULT_FRAME_SIZE)]
    frame_size: u32,
    /// The ONNX model to seal.
    input: PathBuf,
    /// Where to write the sealed artifact.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    providers: KmsArgs,
}

fn default_key(provider: &str, key_id: Option<String>) -> String {
    key_id.unwrap_or_else(|| if provider == "local" { "default".into() } else { String::new() })
}

/// Runs `sealgate seal`.
pub fn seal(args: SealArgs) -> Result<()> {
    anyhow::ensure!(sealgate_models::is_valid_name(&args.model), "--model: use [A-Za-z0-9._-], 1-64 characters");
    anyhow::ensure!(sealgate_models::is_valid_name(&args.version), "--version: use [A-Za-z0-9._-], 1-64 characters");
    anyhow::ensure!(!args.output.exists(), "{} exists; sealed artifacts are never overwritten", args.output.display());
    let data = DataDir::open(&args.data_dir)?;
    let providers = Providers::open(&data, &args.providers, Some(&args.kms), "seal")?;
    let key_id = default_key(&args.kms, args.key_id);
    let primary = providers.get(&args.kms)?;
    let recovery_providers = args.recovery.iter().map(|r| providers.get(&r.provider)).collect::<Result<Vec<_>>>()?;

    let plaintext = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let total = plaintext.len() as u64;
    let request = SealRequest {
        model: &args.model,
        version: &args.version,
        primary: (primary, &key_id),
        recovery: recovery_providers.iter().zip(&args.recovery).map(|(p, r)| (*p, r.key_id.as_str())).collect(),
        frame_size: args.frame_size,
    };
    let tmp = args.output.with_extension("sealed.partial");
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    let show = std::io::stderr().is_terminal() && total > 8 << 20;
    let mut shown = 0;
    let header = artifact::seal(&request, &plaintext, &mut out, |done| {
        let percent = done * 100 / total.max(1);
        if show && percent >= shown + 2 {
            shown = percent;
            eprint!("\rsealing {}: {percent:>3}%", args.input.display());
        }
    });
    drop(out);
    let header = match header {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).context("sealing failed");
        }
    };
    if show {
        eprintln!();
    }
    std::fs::rename(&tmp, &args.output)?;
    println!(
        "sealed {} as {}@{} -> {} (sha256 {}, wrapped by {})",
        args.input.display(),
        args.model,
        args.version,
        args.output.display(),
        header.context.get(artifact::CONTEXT_SHA256).map(String::as_str).unwrap_or("-"),
        header.wrapped_keys.iter().map(|k| format!("{}:{}", k.provider, k.key_id)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// `sealgate rewrap`.
#[derive(clap::Args)]
pub struct RewrapArgs {
    /// Data directory.
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
    data_dir: PathBuf,
    /// The artifact to re-key.
    input: PathBuf,
    /// Where to write the re-keyed artifact.
    #[arg(short, long)]
    output: PathBuf,
    /// Provider of the new wrapped key.
    #[arg(long, default_value = "local")]
    kms: String,
    /// The new key (for `local`, the newest version of this key is used).
    #[arg(long)]
    key_id: Option<String>,
    /// Keep the existing wrapped keys and add the new one (a recovery key) instead of
    /// replacing them.
    #[arg(long)]
    add: bool,
    #[command(flatten)]
    providers: KmsArgs,
}

/// Runs `sealgate rewrap`.
pub fn rewrap(args: RewrapArgs) -> Result<()> {
    anyhow::ensure!(
        !args.output.exists(),
        "{} exists; write the re-keyed artifact to a new file",
        args.output.display()
    );
    let data = DataDir::open(&args.data_dir)?;
    let providers = Providers::open(&data, &args.providers, Some(&args.kms), "rewrap")?;
    let target = providers.get(&args.kms)?;
    let key_id = default_key(&args.kms, args.key_id);
    let mut reader = std::io::BufReader::new(
        std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?,
    );
    let tmp = args.output.with_extension("sealed.partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let result = artifact::rewrap(&mut reader, &providers, &[(target, key_id.as_str())], args.add, &mut out);
    drop(out);
    let header = match result {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("re-keying {}", args.input.display()));
        }
    };
    std::fs::rename(&tmp, &args.output)?;
    println!(
        "{} -> {}: wrapped by {}",
        args.input.display(),
        args.output.display(),
        header.wrapped_keys.iter().map(|k| format!("{}:{}", k.provider, k.key_id)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

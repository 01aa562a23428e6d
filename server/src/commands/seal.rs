//! `sealgate seal` and `sealgate rewrap`: making and re-keying sealed artifacts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sealgate_models::artifact::{self, PlainFile, SealRequest, format};

use crate::data_dir::DataDir;
use crate::progress::Progress;
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
    /// Artifact format: 2 (default: the model and every external data file it references,
    /// in one artifact) or 1 (one self-contained ONNX file, for gateways older than format 2).
    #[arg(long, default_value_t = format::VERSION, value_parser = clap::value_parser!(u8).range(1..=2))]
    format_version: u8,
    /// The ONNX model to seal. External data files it references are found next to it (by
    /// each initializer's `location`) and sealed with it.
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
    // Before the data dir and any KMS is touched: a model that cannot be sealed uses no key.
    let files = sealgate_models::onnx_scan::read_with_external_files(&args.input).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        files.len() == 1 || args.format_version >= format::VERSION_2,
        "{} references {} external data file(s), which a version-1 artifact cannot hold: seal it as version 2 \
         (the default)",
        args.input.display(),
        files.len() - 1
    );
    let plain: Vec<PlainFile<'_>> = files.iter().map(|(name, bytes)| PlainFile { name, bytes }).collect();
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();

    let data = DataDir::open(&args.data_dir)?;
    let providers = Providers::open(&data, &args.providers, Some(&args.kms), "seal")?;
    let key_id = default_key(&args.kms, args.key_id);
    let primary = providers.get(&args.kms)?;
    let recovery_providers = args.recovery.iter().map(|r| providers.get(&r.provider)).collect::<Result<Vec<_>>>()?;
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
    let progress = Progress::new("sealing", &args.input.display().to_string(), total);
    let header = artifact::seal_files(&request, args.format_version, &plain, &mut out, |done| progress.set(done))
        .and_then(|h| out.into_inner().map_err(|e| e.into_error())?.sync_all().map(|()| h).map_err(Into::into));
    let (elapsed, rate) = progress.finish();
    let header = match header {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).context("sealing failed");
        }
    };
    std::fs::rename(&tmp, &args.output)?;
    let external = match files.len() {
        1 => String::new(),
        n => format!(" with {} external data file(s)", n - 1),
    };
    println!(
        "sealed {}{external} as {}@{} -> {} (format {}, {total} bytes in {:.1}s, {rate:.0} MB/s, sha256 {}, wrapped by {})",
        args.input.display(),
        args.model,
        args.version,
        args.output.display(),
        header.version,
        elapsed.as_secs_f64(),
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

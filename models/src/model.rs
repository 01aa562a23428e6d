//! A loaded model: its KServe metadata and a bounded pool of ONNX Runtime sessions.
//!
//! `Session::run` takes `&mut self`, so concurrent requests need several sessions. The pool
//! hands each caller a whole session and blocks when all are busy; the gateway bounds the
//! number of callers per model to the pool size with an async semaphore, so the blocking
//! wait is a safety net, not the normal path. Each session uses one intra-op thread:
//! default thread pools on a 2-core machine made latency six times worse.

use std::sync::{Condvar, Mutex, PoisonError};

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use sealgate_protocol::inference::{InferenceRequest, InferenceResponse, ModelMetadata, TensorMetadata};

use crate::error::{ModelError, Result};
use crate::tensor;

/// One servable model.
pub struct Model {
    name: String,
    version: String,
    sha256: [u8; 32],
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
    sessions: Mutex<Vec<Session>>,
    returned: Condvar,
    pool_size: usize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("sha256", &hex::encode(self.sha256))
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Builds `pool_size` sessions from ONNX bytes held in memory. The caller may wipe
    /// `onnx` as soon as this returns: ONNX Runtime keeps its own copy of the weights.
    pub fn from_onnx_bytes(
        env: &Environment,
        name: &str,
        version: &str,
        onnx: &[u8],
        pool_size: usize,
    ) -> Result<Self> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, onnx);
        let sha256: [u8; 32] = digest.as_ref().try_into().map_err(|_| ModelError::Runtime("SHA-256 length".into()))?;
        Self::from_onnx_bytes_with_digest(env, name, version, onnx, pool_size, sha256)
    }

    /// Like [`Model::from_onnx_bytes`] with the SHA-256 of `onnx` already known and
    /// trusted — the digest in a sealed artifact's authenticated header, which the AEAD and
    /// key commitment tie to these exact bytes — so a model-sized hash is not computed twice.
    pub fn from_onnx_bytes_with_digest(
        env: &Environment,
        name: &str,
        version: &str,
        onnx: &[u8],
        pool_size: usize,
        sha256: [u8; 32],
    ) -> Result<Self> {
        let pool_size = pool_size.max(1);
        match crate::onnx_scan::scan(onnx) {
            Ok(crate::onnx_scan::Scan::SelfContained) => {}
            Ok(crate::onnx_scan::Scan::ExternalData) => {
                return Err(ModelError::Unsupported {
                    model: name.to_owned(),
                    reason: "the model references external data files; only self-contained models are served \
                             (ONNX Runtime would read those files from disk, unencrypted)"
                        .into(),
                });
            }
            Err(e) => return Err(ModelError::Unsupported { model: name.to_owned(), reason: e.to_string() }),
        }
        let mut sessions = Vec::with_capacity(pool_size);
        for _ in 0..pool_size {
            let session =
                Session::builder(env)?.with_intra_threads(1)?.with_inter_threads(1)?.commit_from_memory(onnx)?;
            sessions.push(session);
        }
        let first = sessions.first().ok_or_else(|| ModelError::Runtime("no session was built".into()))?;
        let describe = |outlets: &[ort::value::Outlet], what: &str| -> Result<Vec<TensorMetadata>> {
            outlets
                .iter()
                .map(|o| {
                    tensor::metadata_of(o.name(), o.dtype()).ok_or_else(|| ModelError::Unsupported {
                        model: name.to_owned(),
                        reason: format!(
                            "{what} '{}' is not a FP32/FP64/INT32/INT64/BOOL tensor",
                            tensor::echo(o.name())
                        ),
                    })
                })
                .collect()
        };
        let inputs = describe(first.inputs(), "input")?;
        let outputs = describe(first.outputs(), "output")?;
        Ok(Self {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256,
            inputs,
            outputs,
            sessions: Mutex::new(sessions),
            returned: Condvar::new(),
            pool_size,
        })
    }

    /// The model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// SHA-256 of the ONNX bytes the sessions were built from.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// How many requests may run at once.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// KServe V2 metadata from the ONNX signature.
    pub fn metadata(&self) -> ModelMetadata {
        ModelMetadata {
            name: self.name.clone(),
            versions: vec![self.version.clone()],
            platform: "onnxruntime".into(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
        }
    }

    /// Runs one request. Blocking: call it off the async runtime.
    pub fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        let values = self.check_inputs(request)?;
        let wanted: Vec<&str> = match &request.outputs {
            None => self.outputs.iter().map(|o| o.name.as_str()).collect(),
            Some(list) => {
                let mut names = Vec::with_capacity(list.len());
                for o in list {
                    if !self.outputs.iter().any(|m| m.name == o.name) {
                        return Err(ModelError::InvalidInput(format!(
                            "the model has no output '{}'",
                            tensor::echo(&o.name)
                        )));
                    }
                    names.push(o.name.as_str());
                }
                names
            }
        };

        let mut session = self.checkout();
        let result = (|| {
            let outputs = session.run(values)?;
            wanted
                .iter()
                .map(|name| {
                    let value = outputs
                        .get(name)
                        .ok_or_else(|| ModelError::Runtime(format!("output '{}' missing", tensor::echo(name))))?;
                    tensor::from_value(name, value)
                })
                .collect::<Result<Vec<_>>>()
        })();
        self.checkin(session);
        Ok(InferenceResponse {
            model_name: self.name.clone(),
            model_version: Some(self.version.clone()),
            id: request.id.clone(),
            outputs: result?,
        })
    }

    fn check_inputs(&self, request: &InferenceRequest) -> Result<Vec<(String, SessionInputValue<'static>)>> {
        for (i, input) in request.inputs.iter().enumerate() {
            if !self.inputs.iter().any(|m| m.name == input.name) {
                return Err(ModelError::InvalidInput(format!(
                    "the model has no input '{}'; its inputs are {:?}",
                    tensor::echo(&input.name),
                    self.inputs.iter().map(|m| m.name.as_str()).collect::<Vec<_>>()
                )));
            }
            if request.inputs.iter().skip(i + 1).any(|other| other.name == input.name) {
                return Err(ModelError::InvalidInput(format!("input '{}' is given twice", tensor::echo(&input.name))));
            }
        }
        self.inputs
            .iter()
            .map(|spec| {
                let input =
                    request.inputs.iter().find(|i| i.name == spec.name).ok_or_else(|| {
                        ModelError::InvalidInput(format!("missing input '{}'", tensor::echo(&spec.name)))
                    })?;
                Ok((spec.name.clone(), tensor::to_value(input, spec)?))
            })
            .collect()
    }

    fn checkout(&self) -> Session {
        // A poisoned lock only means another thread panicked while holding it; the vector of
        // idle sessions is still consistent, so recover it rather than propagate the panic.
        let mut idle = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(session) = idle.pop() {
                return session;
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn checkin(&self, session: Session) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).push(session);
        self.returned.notify_one();
    }
}

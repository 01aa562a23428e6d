//! A loaded model: its KServe metadata and a bounded pool of ONNX Runtime sessions.
//!
//! `Session::run` takes `&mut self`, so concurrent requests need several sessions: a
//! [`Pool`] hands each caller a whole session and takes it back through a drop guard. Each
//! session uses one intra-op thread: default thread pools on a 2-core machine made latency
//! six times worse.
//!
//! An answer is bounded before it is built: outputs may not be named twice, and the total
//! number of output elements is checked against a limit before any value is copied out of
//! ONNX Runtime. ONNX Runtime's own error texts can quote input values (index operators
//! do), so an inference failure carries only its error class, never the runtime's message.

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use sealgate_protocol::inference::check::check_request;
use sealgate_protocol::inference::{
    DataType, InferenceRequest, InferenceResponse, ModelMetadata, OutputTensor, TensorData, TensorMetadata,
};

use crate::error::{ModelError, Result};
use crate::pool::Pool;
use crate::tensor;

/// The default most output elements one answer may hold ([`Model::infer`]); the gateway
/// derives its own limit from its largest answer in bytes.
pub const MAX_OUTPUT_ELEMENTS: u64 = 8 * 1024 * 1024;

/// One servable model.
pub struct Model {
    name: String,
    version: String,
    sha256: [u8; 32],
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
    sessions: Pool<Session>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("sha256", &hex::encode(self.sha256))
            .field("pool_size", &self.sessions.size())
            .finish_non_exhaustive()
    }
}

/// What a model's sessions are built from, all in memory.
#[derive(Clone, Copy)]
pub struct ModelFiles<'a> {
    /// The ONNX model.
    pub onnx: &'a [u8],
    /// Its external data files, by the exact `location` its initializers give (a version-2
    /// sealed artifact's files 1..). Every reference must be among them and every file
    /// referenced ([`crate::onnx_scan::References::check_against`]).
    pub external: &'a [(&'a str, &'a [u8])],
    /// An empty directory, given to ONNX Runtime as the folder it resolves external data
    /// against, so that a reference the scan missed fails instead of reading a file.
    pub empty_dir: Option<&'a std::path::Path>,
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
        let files = ModelFiles { onnx, external: &[], empty_dir: None };
        Self::from_files(env, name, version, &files, pool_size, sha256)
    }

    /// Builds `pool_size` sessions from a model and its external data files held in memory
    /// (`sha256` as in [`Model::from_onnx_bytes_with_digest`]). ONNX Runtime copies what it
    /// needs while each session is built: the caller may wipe every buffer once this returns.
    pub fn from_files(
        env: &Environment,
        name: &str,
        version: &str,
        files: &ModelFiles<'_>,
        pool_size: usize,
        sha256: [u8; 32],
    ) -> Result<Self> {
        let pool_size = pool_size.max(1);
        let unsupported = |reason: String| ModelError::Unsupported { model: name.to_owned(), reason };
        let refs = crate::onnx_scan::references(files.onnx).map_err(|e| unsupported(e.to_string()))?;
        if files.external.is_empty() && !refs.is_empty() {
            return Err(unsupported(
                "the model references external data files, which only a version-2 sealed artifact carries \
                 (`sealgate seal` includes them); ONNX Runtime would otherwise read them from disk, unencrypted"
                    .into(),
            ));
        }
        let sizes: Vec<(&str, u64)> = files.external.iter().map(|(n, b)| (*n, b.len() as u64)).collect();
        refs.check_against(&sizes).map_err(unsupported)?;
        let mut sessions = Vec::with_capacity(pool_size);
        for _ in 0..pool_size {
            let mut builder = Session::builder(env)?.with_intra_threads(1)?.with_inter_threads(1)?;
            if let Some(dir) = files.empty_dir {
                builder =
                    builder.with_config_entry(crate::external::EXTERNAL_DATA_FOLDER_KEY, dir.to_string_lossy())?;
            }
            let session =
                crate::external::with_files_in_memory(builder, files.external)?.commit_from_memory(files.onnx)?;
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
            sessions: Pool::new(sessions),
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
        self.sessions.size()
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

    /// Runs one request with the default output limit ([`MAX_OUTPUT_ELEMENTS`]).
    /// Blocking: call it off the async runtime.
    pub fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        self.infer_limited(request, MAX_OUTPUT_ELEMENTS)
    }

    /// Runs one request whose outputs together may hold at most `max_output_elements`
    /// values; a larger answer is refused ([`ModelError::TooLarge`]) before any value is
    /// copied. Blocking: call it off the async runtime.
    pub fn infer_limited(&self, request: &InferenceRequest, max_output_elements: u64) -> Result<InferenceResponse> {
        let values = self.check_inputs(request)?;
        let wanted = self.wanted_outputs(request)?;

        let mut session = self.sessions.checkout();
        let outputs = session.run(values).map_err(|e| {
            let integer: Vec<&str> = self
                .inputs
                .iter()
                .filter(|i| matches!(i.datatype, DataType::Int32 | DataType::Int64))
                .map(|i| i.name.as_str())
                .collect();
            ModelError::run_failed(e, &integer)
        })?;
        let mut found = Vec::with_capacity(wanted.len());
        let mut elements = 0u64;
        for name in &wanted {
            let value = outputs
                .get(name)
                .ok_or_else(|| ModelError::Runtime(format!("output '{}' missing", tensor::echo(name))))?;
            elements = elements.saturating_add(tensor::element_count(value));
            found.push((name, value));
        }
        if elements > max_output_elements {
            return Err(ModelError::TooLarge(format!(
                "the answer would hold {elements} output values, more than this gateway returns at once \
                 ({max_output_elements}); send fewer rows or ask for fewer outputs"
            )));
        }
        let outputs = found
            .into_iter()
            .map(|(name, value)| tensor::from_value(name, value))
            .collect::<Result<Vec<_>>>()
            .map_err(ModelError::hide_runtime_text)?;
        Ok(InferenceResponse {
            model_name: self.name.clone(),
            model_version: Some(self.version.clone()),
            id: request.id.clone(),
            outputs,
        })
    }

    /// Runs several requests with one call into the runtime when they can be stacked: the
    /// same inputs in the same order, each with the same type and the same shape past its
    /// first (row) dimension, the same outputs asked for, and a model whose every input and
    /// output has a free first dimension. Their rows are concatenated, run once, and each
    /// output split back by rows, so each request gets the answer it would get alone (row-wise
    /// models compute each row on its own). Anything else, or a stacked run that fails (one
    /// request's values may be what the runtime refuses), runs the requests one by one, so
    /// every error belongs to the request that caused it. One answer per request, in order;
    /// `max_output_elements` bounds each answer, as in [`Model::infer_limited`].
    pub fn infer_batch(
        &self,
        requests: &[InferenceRequest],
        max_output_elements: u64,
    ) -> Vec<Result<InferenceResponse>> {
        let one_by_one = || requests.iter().map(|r| self.infer_limited(r, max_output_elements)).collect();
        let Some((stacked, rows)) = stack(&self.inputs, &self.outputs, requests) else { return one_by_one() };
        let total = max_output_elements.saturating_mul(requests.len() as u64);
        match self.infer_limited(&stacked, total).ok().and_then(|answer| split(answer, requests, &rows)) {
            Some(answers) => answers
                .into_iter()
                .map(|answer| {
                    let elements: u64 = answer.outputs.iter().map(|o| o.data.len() as u64).sum();
                    if elements > max_output_elements {
                        Err(ModelError::TooLarge(format!(
                            "the answer would hold {elements} output values, more than this gateway returns at once \
                             ({max_output_elements}); send fewer rows or ask for fewer outputs"
                        )))
                    } else {
                        Ok(answer)
                    }
                })
                .collect(),
            None => one_by_one(),
        }
    }

    /// True when [`Model::infer_batch`] would run `requests` as one stacked run.
    pub fn stacks(&self, requests: &[InferenceRequest]) -> bool {
        stack(&self.inputs, &self.outputs, requests).is_some()
    }

    /// The outputs a request asks for (all when it names none); unknown and repeated names
    /// are refused.
    fn wanted_outputs<'r>(&'r self, request: &'r InferenceRequest) -> Result<Vec<&'r str>> {
        let Some(list) = &request.outputs else {
            return Ok(self.outputs.iter().map(|o| o.name.as_str()).collect());
        };
        let mut names: Vec<&str> = Vec::with_capacity(list.len().min(self.outputs.len()));
        for o in list {
            if !self.outputs.iter().any(|m| m.name == o.name) {
                return Err(ModelError::InvalidInput(format!("the model has no output '{}'", tensor::echo(&o.name))));
            }
            // The model's outputs are few, so this scan is short whatever the request holds.
            if names.contains(&o.name.as_str()) {
                return Err(ModelError::InvalidInput(format!(
                    "output '{}' is requested more than once",
                    tensor::echo(&o.name)
                )));
            }
            names.push(o.name.as_str());
        }
        Ok(names)
    }

    /// The request's inputs, checked against the signature (`check_request`, shared with the
    /// load tool) and converted, in the model's order.
    fn check_inputs(&self, request: &InferenceRequest) -> Result<Vec<(String, SessionInputValue<'static>)>> {
        check_request(request, &self.name, &self.inputs, tensor::MAX_ELEMENTS)?
            .into_iter()
            .map(|(spec, input)| {
                Ok((spec.name.clone(), tensor::to_value(input).map_err(ModelError::hide_runtime_text)?))
            })
            .collect()
    }
}

/// The requests to a model with these `inputs` and `outputs` as one, and the rows each
/// brought; `None` when they cannot be stacked ([`Model::infer_batch`]). Crate-visible for
/// the `kserve` fuzz target.
pub(crate) fn stack(
    inputs: &[TensorMetadata],
    outputs: &[TensorMetadata],
    requests: &[InferenceRequest],
) -> Option<(InferenceRequest, Vec<u64>)> {
    let free_rows = |specs: &[TensorMetadata]| specs.iter().all(|s| s.shape.first() == Some(&-1));
    if requests.len() < 2 || !free_rows(inputs) || !free_rows(outputs) {
        return None;
    }
    let first = &requests[0];
    let mut rows = Vec::with_capacity(requests.len());
    let mut stacked = first.clone();
    stacked.id = None;
    for (i, request) in requests.iter().enumerate() {
        if request.inputs.len() != first.inputs.len() || request.outputs != first.outputs {
            return None;
        }
        let mut count = None;
        for (input, model) in request.inputs.iter().zip(&first.inputs) {
            let same = input.name == model.name
                && input.datatype == model.datatype
                && input.shape.len() == model.shape.len()
                && input.shape.get(1..) == model.shape.get(1..)
                && std::mem::discriminant(&input.data) == std::mem::discriminant(&model.data);
            let n = *input.shape.first()?;
            if !same || count.is_some_and(|c| c != n) {
                return None;
            }
            count = Some(n);
        }
        rows.push(count?);
        if i > 0 {
            for (into, input) in stacked.inputs.iter_mut().zip(&request.inputs) {
                into.shape[0] = into.shape[0].checked_add(input.shape[0])?;
                match (&mut into.data, &input.data) {
                    (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
                    (TensorData::Int(a), TensorData::Int(b)) => a.extend_from_slice(b),
                    (TensorData::Float(a), TensorData::Float(b)) => a.extend_from_slice(b),
                    _ => return None,
                }
            }
        }
    }
    Some((stacked, rows))
}

/// Splits the answer of stacked requests back into one answer per request by `rows`; `None`
/// when an output does not have one row per stacked row (then the caller runs them alone).
fn split(answer: InferenceResponse, requests: &[InferenceRequest], rows: &[u64]) -> Option<Vec<InferenceResponse>> {
    let total: u64 = rows.iter().sum();
    let mut answers: Vec<InferenceResponse> = requests
        .iter()
        .map(|r| InferenceResponse {
            model_name: answer.model_name.clone(),
            model_version: answer.model_version.clone(),
            id: r.id.clone(),
            outputs: Vec::with_capacity(answer.outputs.len()),
        })
        .collect();
    for output in answer.outputs {
        if output.shape.first() != Some(&total) {
            return None;
        }
        let per_row: usize = output.shape[1..].iter().product::<u64>().try_into().ok()?;
        let mut start = 0usize;
        for (into, &n) in answers.iter_mut().zip(rows) {
            let end = start.checked_add(usize::try_from(n).ok()?.checked_mul(per_row)?)?;
            let data = match &output.data {
                TensorData::Bool(v) => TensorData::Bool(v.get(start..end)?.to_vec()),
                TensorData::Int(v) => TensorData::Int(v.get(start..end)?.to_vec()),
                TensorData::Float(v) => TensorData::Float(v.get(start..end)?.to_vec()),
            };
            let mut shape = output.shape.clone();
            shape[0] = n;
            into.outputs.push(OutputTensor { name: output.name.clone(), shape, datatype: output.datatype, data });
            start = end;
        }
        if start != output.data.len() {
            return None;
        }
    }
    Some(answers)
}

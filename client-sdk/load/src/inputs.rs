//! What `sealgate-load` sends: the user's KServe V2 request file, checked against the
//! model's metadata, or random requests generated from that metadata.
//!
//! Bodies are serialized once, before the run, so the load loop measures the gateway and
//! the client's HPKE work rather than JSON encoding. Generated requests are a small pool of
//! different random tensors used in turn, so a model or cache cannot answer the same input
//! every time. A request file is checked by the gateway's own check
//! (`sealgate_protocol::inference::check::check_request`, with the gateway's element cap), so
//! a wrong file fails before the run with the message the gateway would give, naming the
//! tensor and the rule, instead of as thousands of identical inference errors.

use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use sealgate_client::inference::check::{MAX_ELEMENTS, check_request, element_count};
use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, ModelMetadata, TensorData};

/// How many different generated requests are cycled through.
pub const GENERATED_POOL: usize = 16;

/// Elements per generated tensor beyond which generation is refused (the gateway's own cap
/// is 64 Mi elements; a load test of that size is a mistake).
const MAX_GENERATED_ELEMENTS: u64 = 1 << 24;

/// Reads `path` as a KServe V2 inference request and checks it against `metadata`.
pub fn from_file(path: &Path, metadata: &ModelMetadata) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("--input {}", path.display()))?;
    let request: InferenceRequest = serde_json::from_slice(&bytes)
        .with_context(|| format!("--input {} is not a KServe V2 inference request", path.display()))?;
    check(&request, metadata).with_context(|| format!("--input {}", path.display()))?;
    Ok(bytes)
}

/// Checks a request against the model's inputs the way the gateway does.
pub fn check(request: &InferenceRequest, metadata: &ModelMetadata) -> Result<()> {
    check_request(request, &metadata.name, &metadata.inputs, MAX_ELEMENTS)?;
    Ok(())
}

/// Generates [`GENERATED_POOL`] request bodies for `metadata` with `batch` rows each.
pub fn generate(metadata: &ModelMetadata, batch: u64) -> Result<Vec<Vec<u8>>> {
    ensure!(!metadata.inputs.is_empty(), "model '{}' declares no inputs to generate", metadata.name);
    let mut rng = SplitMix64::from_os()?;
    (0..GENERATED_POOL)
        .map(|_| {
            let inputs = metadata
                .inputs
                .iter()
                .map(|spec| {
                    // The batch dimension is the first one when it is free; other free
                    // dimensions get 1, the smallest valid size.
                    let shape: Vec<u64> = spec
                        .shape
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| {
                            if d >= 0 {
                                d.unsigned_abs()
                            } else if i == 0 {
                                batch
                            } else {
                                1
                            }
                        })
                        .collect();
                    let elements =
                        element_count(&shape).filter(|&n| n <= MAX_GENERATED_ELEMENTS).with_context(|| {
                            format!("input '{}' of shape {shape:?} is too large to generate", spec.name)
                        })?;
                    let data = random_data(spec.datatype, elements as usize, &mut rng)
                        .with_context(|| format!("input '{}'", spec.name))?;
                    Ok(InputTensor { name: spec.name.clone(), shape, datatype: spec.datatype, data })
                })
                .collect::<Result<Vec<_>>>()?;
            let request = InferenceRequest { id: None, inputs, outputs: None };
            serde_json::to_vec(&request).context("serializing a generated request")
        })
        .collect()
}

/// Random finite values of `datatype`: floats in [-1, 1) (safe for every model input we
/// serve, and exactly representable ranges for FP32), small integers, fair booleans.
fn random_data(datatype: DataType, n: usize, rng: &mut SplitMix64) -> Result<TensorData> {
    Ok(match datatype {
        DataType::Fp32 | DataType::Fp64 => TensorData::Float((0..n).map(|_| rng.unit() * 2.0 - 1.0).collect()),
        DataType::Int32 | DataType::Int64 => TensorData::Int((0..n).map(|_| (rng.next() % 10) as i64).collect()),
        DataType::Bool => TensorData::Bool((0..n).map(|_| rng.next() & 1 == 1).collect()),
        other => bail!("cannot generate values of datatype {}; pass --input", other.name()),
    })
}

/// SplitMix64: a tiny, fast generator for test data (not for keys: those come from the
/// SDK's system RNG). Seeded from the OS so runs differ.
struct SplitMix64(u64);

impl SplitMix64 {
    fn from_os() -> Result<Self> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("the system RNG: {e}"))?;
        Ok(Self(u64::from_le_bytes(seed)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use sealgate_client::inference::TensorMetadata;

    use super::*;

    fn metadata() -> ModelMetadata {
        serde_json::from_value(serde_json::json!({
            "name": "m", "versions": ["1"], "platform": "onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]},
                       {"name": "flags", "datatype": "BOOL", "shape": [-1, -1]}],
            "outputs": []
        }))
        .unwrap()
    }

    fn request(json: serde_json::Value) -> InferenceRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn generated_requests_match_the_metadata() {
        let meta = metadata();
        let bodies = generate(&meta, 4).unwrap();
        assert_eq!(bodies.len(), GENERATED_POOL);
        let first: InferenceRequest = serde_json::from_slice(&bodies[0]).unwrap();
        check(&first, &meta).unwrap();
        assert_eq!(first.inputs[0].shape, vec![4, 3]);
        assert_eq!(first.inputs[1].shape, vec![4, 1]);
        let values = first.inputs[0].data.as_f64().unwrap();
        assert!(values.iter().all(|v| v.is_finite() && (-1.0..1.0).contains(v)));
        assert_ne!(bodies[0], bodies[1], "the pool holds different requests");
    }

    #[test]
    fn wrong_requests_are_named() {
        let meta = metadata();
        let flags = serde_json::json!({"name": "flags", "datatype": "BOOL", "shape": [1, 1], "data": [true]});
        let cases = [
            (
                serde_json::json!({"name": "nope", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}),
                "no input 'nope'",
            ),
            (
                serde_json::json!({"name": "input", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]}),
                "datatype INT64",
            ),
            (
                serde_json::json!({"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}),
                "shape [1, 4]",
            ),
            (serde_json::json!({"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2]}), "has 2 values"),
        ];
        for (input, needle) in cases {
            let e = check(&request(serde_json::json!({"inputs": [input, flags.clone()]})), &meta).unwrap_err();
            assert!(e.to_string().contains(needle), "{e} / {needle}");
        }
        // What the gateway refuses and the load tool once let through: a repeated input.
        let twice = check(&request(serde_json::json!({"inputs": [flags.clone(), flags.clone()]})), &meta).unwrap_err();
        assert!(twice.to_string().contains("input 'flags' is given twice"), "{twice}");
        let missing = check(&request(serde_json::json!({"inputs": [flags]})), &meta).unwrap_err();
        assert!(missing.to_string().contains("missing input 'input'"), "{missing}");
    }

    #[test]
    fn files_that_are_not_requests_are_refused() {
        let dir = std::env::temp_dir().join(format!("sealgate-load-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let meta = metadata();
        assert!(from_file(&dir.join("missing.json"), &meta).is_err());
        let not_json = dir.join("not.json");
        std::fs::write(&not_json, "not json").unwrap();
        let e = from_file(&not_json, &meta).unwrap_err();
        assert!(format!("{e:#}").contains("is not a KServe V2 inference request"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsupported_shapes_are_refused() {
        let mut meta = metadata();
        meta.inputs = vec![TensorMetadata { name: "huge".into(), datatype: DataType::Fp32, shape: vec![-1, 1 << 30] }];
        assert!(generate(&meta, 1).is_err());
    }
}

//! The inference API carried inside the encryption: Open Inference Protocol / KServe V2
//! JSON bodies, shared by the gateway, the Rust SDK and the browser client so all three
//! agree on one schema. [`check`] holds the rules a request must follow, beside the types
//! they are about, so that every program that checks a request checks it the same way.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

pub mod check;

/// A tensor element type, named as in KServe V2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DataType {
    /// 32-bit float.
    #[serde(rename = "FP32")]
    Fp32,
    /// 64-bit float.
    #[serde(rename = "FP64")]
    Fp64,
    /// 32-bit signed integer.
    #[serde(rename = "INT32")]
    Int32,
    /// 64-bit signed integer.
    #[serde(rename = "INT64")]
    Int64,
    /// Boolean.
    #[serde(rename = "BOOL")]
    Bool,
}

impl DataType {
    /// Every datatype, in the order the KServe V2 specification lists them.
    pub const ALL: [DataType; 5] = [DataType::Fp32, DataType::Fp64, DataType::Int32, DataType::Int64, DataType::Bool];

    /// The datatype whose KServe V2 name is `name` (case-sensitive, as in the JSON).
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The KServe V2 name, such as `FP32`.
    pub const fn name(self) -> &'static str {
        match self {
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Bool => "BOOL",
        }
    }
}

/// Tensor contents, flattened in row-major order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TensorData {
    /// Booleans (`BOOL`).
    Bool(Vec<bool>),
    /// Integers (`INT32`, `INT64`; also accepted for float tensors).
    Int(Vec<i64>),
    /// Numbers (`FP32`, `FP64`).
    Float(Vec<f64>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Int(v) => v.len(),
            TensorData::Float(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `f64`, when they are numbers.
    pub fn as_f64(&self) -> Option<Vec<f64>> {
        match self {
            TensorData::Bool(_) => None,
            TensorData::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            TensorData::Float(v) => Some(v.clone()),
        }
    }

    /// The elements as `i64`, when they are integers.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            TensorData::Int(v) => Some(v),
            _ => None,
        }
    }
}

/// One input tensor of an inference request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputTensor {
    /// The model input it feeds.
    pub name: String,
    /// Dimensions; their product must equal the number of elements.
    pub shape: Vec<u64>,
    /// Element type.
    pub datatype: DataType,
    /// Elements, row-major.
    pub data: TensorData,
}

/// An output the client asks for by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedOutput {
    /// The model output's name.
    pub name: String,
}

/// `POST /v2/models/{name}/infer` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// Optional request identifier, echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Input tensors.
    pub inputs: Vec<InputTensor>,
    /// Outputs to return; all outputs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One output tensor of an inference response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputTensor {
    /// The model output's name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Element type.
    pub datatype: DataType,
    /// Elements, row-major.
    pub data: TensorData,
}

impl OutputTensor {
    /// The elements as `f64` (numbers only).
    pub fn as_f64(&self) -> Option<Vec<f64>> {
        self.data.as_f64()
    }
}

/// `POST /v2/models/{name}/infer` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The request identifier, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Output tensors.
    pub outputs: Vec<OutputTensor>,
}

impl InferenceResponse {
    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<&OutputTensor> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// Name, type and shape of a model input or output; `-1` marks a variable dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorMetadata {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, `-1` where any size is accepted.
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{name}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Available versions.
    pub versions: Vec<String>,
    /// Runtime, `onnxruntime`.
    pub platform: String,
    /// Inputs.
    pub inputs: Vec<TensorMetadata>,
    /// Outputs.
    pub outputs: Vec<TensorMetadata>,
}

/// One entry of `GET /v2/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Available versions.
    pub versions: Vec<String>,
}

/// `GET /v2/models` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// The models this tenant may use.
    pub models: Vec<ModelSummary>,
}

/// The KServe V2 error body: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A short, human-readable message. Never contains request data.
    pub error: String,
}

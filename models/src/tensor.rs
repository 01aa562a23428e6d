//! Checking KServe V2 tensors against a model's signature and converting them to and from
//! ONNX Runtime values.
//!
//! Every check happens before ONNX Runtime sees the data, so a malformed request costs a
//! few comparisons and produces a message that names the tensor and the rule it broke.
//! Messages never quote tensor values.

use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use sealgate_protocol::inference::{DataType, InputTensor, OutputTensor, TensorData, TensorMetadata};

use crate::error::{ModelError, Result};

/// The most elements one input tensor may hold (64 Mi, 256 MiB of FP32); larger requests
/// are refused before any allocation of that size.
pub const MAX_ELEMENTS: u64 = 64 * 1024 * 1024;

/// Longest tensor name echoed in an error message.
const MAX_ECHOED_NAME: usize = 64;

/// Maps an ONNX element type to its KServe name, if the gateway serves it.
pub fn datatype_of(ty: TensorElementType) -> Option<DataType> {
    match ty {
        TensorElementType::Float32 => Some(DataType::Fp32),
        TensorElementType::Float64 => Some(DataType::Fp64),
        TensorElementType::Int32 => Some(DataType::Int32),
        TensorElementType::Int64 => Some(DataType::Int64),
        TensorElementType::Bool => Some(DataType::Bool),
        _ => None,
    }
}

/// Describes a session input or output as KServe metadata, or `None` for types the gateway
/// does not serve (maps, sequences, strings, half floats).
pub fn metadata_of(name: &str, ty: &ValueType) -> Option<TensorMetadata> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Some(TensorMetadata {
            name: name.to_owned(),
            datatype: datatype_of(*ty)?,
            shape: shape.iter().copied().collect(),
        }),
        _ => None,
    }
}

/// A tensor name safe to echo: truncated, control characters replaced.
pub fn echo(name: &str) -> String {
    name.chars().take(MAX_ECHOED_NAME).map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn invalid(msg: String) -> ModelError {
    ModelError::InvalidInput(msg)
}

/// Checks one input against the model's declaration and builds the ONNX Runtime value.
pub(crate) fn to_value(input: &InputTensor, spec: &TensorMetadata) -> Result<SessionInputValue<'static>> {
    let name = echo(&input.name);
    if input.datatype != spec.datatype {
        return Err(invalid(format!(
            "input '{name}' must have datatype {}, got {}",
            spec.datatype.name(),
            input.datatype.name()
        )));
    }
    if input.shape.len() != spec.shape.len()
        || input.shape.iter().zip(&spec.shape).any(|(&got, &want)| want >= 0 && got != want as u64)
    {
        return Err(invalid(format!(
            "input '{name}' has shape {:?}, the model expects {:?} (-1 = any)",
            input.shape, spec.shape
        )));
    }
    if input.shape.contains(&0) {
        return Err(invalid(format!("input '{name}' has an empty dimension in shape {:?}", input.shape)));
    }
    let elements = input.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS);
    let Some(elements) = elements else {
        return Err(invalid(format!("input '{name}' is too large: at most {MAX_ELEMENTS} elements per tensor")));
    };
    if input.data.len() as u64 != elements {
        return Err(invalid(format!(
            "input '{name}' has {} values but shape {:?} needs {elements}",
            input.data.len(),
            input.shape
        )));
    }
    let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
    let wrong_kind = || invalid(format!("input '{name}' data does not match datatype {}", spec.datatype.name()));
    let value: SessionInputValue<'static> = match spec.datatype {
        DataType::Fp32 => {
            let data = input.data.as_f64().ok_or_else(wrong_kind)?;
            let mut out = Vec::with_capacity(data.len());
            for x in data {
                let y = x as f32;
                if !y.is_finite() {
                    return Err(invalid(format!("input '{name}' holds a value outside the FP32 range")));
                }
                out.push(y);
            }
            Tensor::from_array((shape, out))?.into()
        }
        DataType::Fp64 => {
            let data = input.data.as_f64().ok_or_else(wrong_kind)?;
            if data.iter().any(|x| !x.is_finite()) {
                return Err(invalid(format!("input '{name}' holds a non-finite value")));
            }
            Tensor::from_array((shape, data))?.into()
        }
        DataType::Int32 => {
            let data = input.data.as_i64().ok_or_else(wrong_kind)?;
            let out: Option<Vec<i32>> = data.iter().map(|&x| i32::try_from(x).ok()).collect();
            let out = out.ok_or_else(|| invalid(format!("input '{name}' holds a value outside the INT32 range")))?;
            Tensor::from_array((shape, out))?.into()
        }
        DataType::Int64 => {
            let data = input.data.as_i64().ok_or_else(wrong_kind)?;
            Tensor::from_array((shape, data.to_vec()))?.into()
        }
        DataType::Bool => match &input.data {
            TensorData::Bool(v) => Tensor::from_array((shape, v.clone()))?.into(),
            _ => return Err(wrong_kind()),
        },
        _ => return Err(wrong_kind()),
    };
    Ok(value)
}

/// How many values an ONNX Runtime output holds (0 for what is not a tensor), read from its
/// shape without touching the data.
pub(crate) fn element_count(value: &DynValue) -> u64 {
    match value.dtype() {
        ValueType::Tensor { shape, .. } => {
            shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d.max(0) as u64)).unwrap_or(u64::MAX)
        }
        _ => 0,
    }
}

/// Converts one ONNX Runtime output into a KServe tensor.
pub(crate) fn from_value(name: &str, value: &DynValue) -> Result<OutputTensor> {
    let unsupported = || ModelError::Runtime(format!("output '{}' has a type the gateway cannot return", echo(name)));
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(unsupported());
    };
    let datatype = datatype_of(*ty).ok_or_else(unsupported)?;
    macro_rules! extract {
        ($t:ty, $wrap:expr) => {{
            let (shape, data) = value.try_extract_tensor::<$t>()?;
            (shape.iter().map(|&d| d.max(0) as u64).collect::<Vec<_>>(), $wrap(data))
        }};
    }
    let (shape, data) = match datatype {
        DataType::Fp32 => extract!(f32, |d: &[f32]| TensorData::Float(d.iter().map(|&x| f64::from(x)).collect())),
        DataType::Fp64 => extract!(f64, |d: &[f64]| TensorData::Float(d.to_vec())),
        DataType::Int32 => extract!(i32, |d: &[i32]| TensorData::Int(d.iter().map(|&x| i64::from(x)).collect())),
        DataType::Int64 => extract!(i64, |d: &[i64]| TensorData::Int(d.to_vec())),
        DataType::Bool => extract!(bool, |d: &[bool]| TensorData::Bool(d.to_vec())),
        _ => return Err(unsupported()),
    };
    Ok(OutputTensor { name: name.to_owned(), shape, datatype, data })
}

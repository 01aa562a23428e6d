//! Converting KServe V2 tensors to and from ONNX Runtime values, after the request has passed
//! the shared checks of `sealgate_protocol::inference::check` (name, datatype, shape, element
//! count, [`MAX_ELEMENTS`], element ranges).
//!
//! Every check happens before ONNX Runtime sees the data, so a malformed request costs a
//! few comparisons and produces a message that names the tensor and the rule it broke.
//! Messages never quote tensor values.

use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use sealgate_protocol::inference::check::{InputRef, InvalidInput};
use sealgate_protocol::inference::{DataType, InputTensor, OutputTensor, TensorData, TensorMetadata};

use crate::error::{ModelError, Result};

/// The most elements one input tensor may hold (64 Mi, 256 MiB of FP32); larger requests
/// are refused before any allocation of that size. The cap is the protocol's, so the load
/// tool refuses the same requests before a run.
pub use sealgate_protocol::inference::check::MAX_ELEMENTS;
/// A name safe to echo: truncated, control characters replaced.
pub use sealgate_protocol::inference::check::echo;

/// A refused request is the client's mistake (400); the message is the shared check's.
impl From<InvalidInput> for ModelError {
    fn from(e: InvalidInput) -> Self {
        ModelError::InvalidInput(e.to_string())
    }
}

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

/// Builds the ONNX Runtime value of an input that `check_request` has accepted: its
/// dimensions are at most [`MAX_ELEMENTS`] each, so they fit an `i64`, and its elements fit
/// the datatype, so the casts below are exact (FP32 rounds to the nearest float).
pub(crate) fn to_value(input: &InputTensor) -> Result<SessionInputValue<'static>> {
    let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
    // Unreachable after the check; kept so that a caller that skipped it gets a 400, not a
    // wrong tensor.
    let unchecked =
        || ModelError::from(InvalidInput::DataKind { input: InputRef::named(&input.name), datatype: input.datatype });
    let value: SessionInputValue<'static> = match (input.datatype, &input.data) {
        (DataType::Fp32, data) => {
            let data = data.as_f64().ok_or_else(unchecked)?;
            Tensor::from_array((shape, data.into_iter().map(|x| x as f32).collect::<Vec<_>>()))?.into()
        }
        (DataType::Fp64, data) => Tensor::from_array((shape, data.as_f64().ok_or_else(unchecked)?))?.into(),
        (DataType::Int32, TensorData::Int(v)) => {
            Tensor::from_array((shape, v.iter().map(|&x| x as i32).collect::<Vec<_>>()))?.into()
        }
        (DataType::Int64, TensorData::Int(v)) => Tensor::from_array((shape, v.clone()))?.into(),
        (DataType::Bool, TensorData::Bool(v)) => Tensor::from_array((shape, v.clone()))?.into(),
        _ => return Err(unchecked()),
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

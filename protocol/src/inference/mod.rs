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
///
/// In JSON, a flat array: all booleans, or all numbers (integers while every element is one,
/// floats as soon as one is not). It is read in one pass, element by element, without
/// buffering the array first as an untagged enum would (the array is most of a request).
#[derive(Debug, Clone, PartialEq, Serialize)]
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

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(TensorDataVisitor)
    }
}

/// Reads a [`TensorData`] array: the first element decides booleans or numbers; integers
/// turn into floats when a float (or an integer beyond `i64`) follows.
struct TensorDataVisitor;

impl<'de> serde::de::Visitor<'de> for TensorDataVisitor {
    type Value = TensorData;

    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("an array of booleans or of numbers")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TensorData, A::Error> {
        // A hint from the input, capped so that a lying length cannot reserve memory.
        let capacity = seq.size_hint().unwrap_or(0).min(4096);
        match seq.next_element::<Element>()? {
            // An empty array: no type to tell, the same value the untagged form gave.
            None => Ok(TensorData::Bool(Vec::new())),
            Some(Element::Bool(first)) => {
                let mut out = Vec::with_capacity(capacity);
                out.push(first);
                while let Some(value) = seq.next_element::<bool>()? {
                    out.push(value);
                }
                Ok(TensorData::Bool(out))
            }
            Some(Element::Float(first)) => {
                let mut out = Vec::with_capacity(capacity);
                out.push(first);
                read_floats(&mut seq, out)
            }
            Some(Element::Int(first)) => {
                let mut out = Vec::with_capacity(capacity);
                out.push(first);
                while let Some(element) = seq.next_element::<Element>()? {
                    match element {
                        Element::Int(value) => out.push(value),
                        Element::Float(value) => {
                            let mut floats: Vec<f64> = out.iter().map(|&x| x as f64).collect();
                            floats.push(value);
                            return read_floats(&mut seq, floats);
                        }
                        Element::Bool(_) => return Err(mixed()),
                    }
                }
                Ok(TensorData::Int(out))
            }
        }
    }
}

fn read_floats<'de, A: serde::de::SeqAccess<'de>>(seq: &mut A, mut out: Vec<f64>) -> Result<TensorData, A::Error> {
    while let Some(value) = seq.next_element::<Element>()? {
        match value {
            Element::Float(x) => out.push(x),
            Element::Int(x) => out.push(x as f64),
            Element::Bool(_) => return Err(mixed()),
        }
    }
    Ok(TensorData::Float(out))
}

fn mixed<E: serde::de::Error>() -> E {
    E::custom("tensor data mixes booleans and numbers")
}

/// One element of a tensor's data array.
enum Element {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl serde::de::Visitor<'_> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str("a boolean or a number")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Element, E> {
        Ok(Element::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Element, E> {
        Ok(Element::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Element, E> {
        Ok(i64::try_from(v).map_or(Element::Float(v as f64), Element::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Element, E> {
        Ok(Element::Float(v))
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

#[cfg(test)]
mod tests {
    use alloc::string::{String, ToString};
    use alloc::vec;
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::TensorData;

    /// What `TensorData` read before it had its own reader: the derived untagged form.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(untagged)]
    enum Untagged {
        Bool(Vec<bool>),
        Int(Vec<i64>),
        Float(Vec<f64>),
    }

    fn read(json: &str) -> Result<TensorData, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_is_read_and_integers_turn_into_floats_when_a_float_follows() {
        assert_eq!(read("[true, false]"), Ok(TensorData::Bool(vec![true, false])));
        assert_eq!(read("[1, -2, 3]"), Ok(TensorData::Int(vec![1, -2, 3])));
        assert_eq!(read("[1.5, 2]"), Ok(TensorData::Float(vec![1.5, 2.0])));
        assert_eq!(read("[1, 2, 3.5]"), Ok(TensorData::Float(vec![1.0, 2.0, 3.5])));
        assert_eq!(read("[1, 18446744073709551615]"), Ok(TensorData::Float(vec![1.0, u64::MAX as f64])));
        assert_eq!(read("[]"), Ok(TensorData::Bool(vec![])));
    }

    #[test]
    fn anything_but_a_flat_array_of_one_kind_is_refused_with_a_clear_error() {
        for (json, says) in [
            ("[true, 1]", "invalid type: integer `1`, expected a boolean"),
            ("[1, true]", "mixes booleans and numbers"),
            ("[1.5, false]", "mixes booleans and numbers"),
            ("[[1, 2], [3, 4]]", "expected a boolean or a number"),
            ("[\"1\"]", "expected a boolean or a number"),
            ("[null]", "expected a boolean or a number"),
            ("{\"a\": 1}", "expected an array of booleans or of numbers"),
            ("3", "expected an array of booleans or of numbers"),
            ("[1, 2", "EOF"),
        ] {
            let error = read(json).expect_err(json);
            assert!(error.contains(says), "{json}: {error}");
        }
    }

    fn element() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|u| u.to_string()),
            (-1e12f64..1e12).prop_map(|f| alloc::format!("{f:?}")),
            Just("null".to_string()),
        ]
    }

    proptest! {
        /// The one-pass reader accepts exactly what the untagged form accepted, with the
        /// same values.
        #[test]
        fn reads_what_the_untagged_form_read(elements in prop::collection::vec(element(), 0..12)) {
            let json = alloc::format!("[{}]", elements.join(","));
            let ours: Result<TensorData, _> = serde_json::from_str(&json);
            let theirs: Result<Untagged, _> = serde_json::from_str(&json);
            match (ours, theirs) {
                (Ok(TensorData::Bool(a)), Ok(Untagged::Bool(b))) => prop_assert_eq!(a, b),
                (Ok(TensorData::Int(a)), Ok(Untagged::Int(b))) => prop_assert_eq!(a, b),
                (Ok(TensorData::Float(a)), Ok(Untagged::Float(b))) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "{}: ours {:?}, untagged {:?}", json, ours, theirs),
            }
        }
    }
}

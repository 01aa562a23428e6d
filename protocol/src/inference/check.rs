//! The rules a KServe V2 inference request must follow, written once for every program that
//! checks one: the gateway before ONNX Runtime sees a tensor, `sealgate-load` before a run,
//! the browser client before anything is encrypted, and the SDK for the model name it puts in
//! the inner path.
//!
//! Everything here is pure: values in, a verdict out, no I/O and no conversion. Each caller
//! keeps only its own glue (the gateway builds ONNX Runtime values from the checked tensors,
//! the browser first reads JS values into [`Elements`]), so the rule and the message a user
//! reads cannot drift between copies. Messages ([`InvalidInput`]'s `Display`) name the model,
//! the tensor, an element's position and the rule, never an element's value: requests carry
//! patient and financial data, and these texts travel back to clients and into logs.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::{DataType, InferenceRequest, InputTensor, TensorData, TensorMetadata};

/// The most elements one input tensor may hold in a request to the gateway (64 Mi, 256 MiB
/// of FP32): larger requests are refused before any allocation of that size. Clients that
/// check against a model's metadata use the same cap, so they refuse what the gateway would.
pub const MAX_ELEMENTS: u64 = 64 * 1024 * 1024;

/// The largest integer a JS number (an IEEE 754 double) holds exactly,
/// `Number.MAX_SAFE_INTEGER`.
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// The longest model name: it travels as one segment of the inner path.
const MAX_MODEL_NAME: usize = 128;

/// Longest name quoted in a message; longer ones are cut.
const MAX_QUOTED_NAME: usize = 64;

/// A name safe to quote in a message or a log line: at most 64 characters, control
/// characters replaced by `?`. Request tensor names are chosen by the client and could
/// otherwise fill a log or forge its lines.
pub fn echo(name: &str) -> String {
    name.chars().take(MAX_QUOTED_NAME).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Which input of a request an [`InvalidInput`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRef {
    /// By position in `inputs`: what a client that checks a request before knowing the
    /// model (the browser) can name. Shown as `inputs[3]`.
    Index(usize),
    /// By name, already cut by [`echo`]: what checks against a model's signature name.
    /// Shown as `input 'name'`.
    Name(String),
}

impl InputRef {
    /// The input named `name`, cut to a length safe to quote.
    pub fn named(name: &str) -> InputRef {
        InputRef::Name(echo(name))
    }
}

impl fmt::Display for InputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputRef::Index(index) => write!(f, "inputs[{index}]"),
            InputRef::Name(name) => write!(f, "input '{name}'"),
        }
    }
}

/// What one element of a tensor must be, as [`InvalidInput::Element`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElementRule {
    /// FP32: finite once rounded to 32 bits.
    Fp32,
    /// FP64: finite (JSON cannot carry NaN or infinities, a JS array can).
    Finite,
    /// INT32: a whole number in the 32-bit range.
    Int32,
    /// INT64 sent from JS numbers: a whole number within ±(2^53 - 1), the range a double
    /// holds exactly; a larger one has already lost its low digits.
    SafeInt64,
    /// BOOL: a boolean, for clients that read elements from untyped values.
    Boolean,
    /// Numeric datatypes: a number, for clients that read elements from untyped values.
    Number,
}

impl fmt::Display for ElementRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElementRule::Fp32 => "a finite number in the FP32 range",
            ElementRule::Finite => "a finite number",
            ElementRule::Int32 => "an INT32 integer",
            ElementRule::SafeInt64 => "a safe INT64 integer",
            ElementRule::Boolean => "a boolean",
            ElementRule::Number => "a number",
        })
    }
}

/// Why an inference request (or the model name it is sent to) was refused. The texts name
/// inputs, shapes, positions and rules, never element values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The model name is not 1 to 128 characters of `A-Za-z0-9._-`; anything else could
    /// change the route of the inner request.
    #[error("the model name must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    ModelName,
    /// The request names an input the model does not have.
    #[error("model '{model}' has no input '{input}' (its inputs: {})", Names(.known))]
    UnknownInput {
        /// The model, cut by [`echo`].
        model: String,
        /// The unknown name, cut by [`echo`].
        input: String,
        /// The model's input names.
        known: Vec<String>,
    },
    /// The request gives the same input twice.
    #[error("{input} is given twice")]
    Repeated {
        /// The input.
        input: InputRef,
    },
    /// The request has more inputs than the model takes.
    #[error("the request has {given} inputs; the model takes {expected}")]
    TooManyInputs {
        /// How many inputs the request has.
        given: usize,
        /// How many the model takes.
        expected: usize,
    },
    /// The request lacks one of the model's inputs.
    #[error("missing {input}")]
    Missing {
        /// The input.
        input: InputRef,
    },
    /// The tensor's datatype is not the one the model declares.
    #[error("{input} has datatype {}, the model expects datatype {}", .given.name(), .expected.name())]
    Datatype {
        /// The input.
        input: InputRef,
        /// The datatype sent.
        given: DataType,
        /// The model's.
        expected: DataType,
    },
    /// The tensor's rank or a fixed dimension differs from the model's declaration.
    #[error("{input} has shape {}, the model expects {} (-1 = any)", Dims::Request(.given), Dims::Model(.expected))]
    Shape {
        /// The input.
        input: InputRef,
        /// The shape sent.
        given: Vec<u64>,
        /// The model's, `-1` where any size is accepted.
        expected: Vec<i64>,
    },
    /// A dimension is zero, which the gateway does not run.
    #[error("{input} has an empty dimension in shape {}", Dims::Request(.shape))]
    EmptyDimension {
        /// The input.
        input: InputRef,
        /// The shape sent.
        shape: Vec<u64>,
    },
    /// The shape holds more elements than the cap (or than 2^64).
    #[error("{input} is too large: at most {max} elements per tensor")]
    TooLarge {
        /// The input.
        input: InputRef,
        /// The cap.
        max: u64,
    },
    /// The number of elements is not the product of the shape.
    #[error("{input} has {values} values but shape {} needs {}", Dims::Request(.shape), Needed(*.needed))]
    ElementCount {
        /// The input.
        input: InputRef,
        /// How many elements were sent.
        values: usize,
        /// The shape sent.
        shape: Vec<u64>,
        /// The product of the shape, `None` when it exceeds 2^64.
        needed: Option<u64>,
    },
    /// The elements are of the wrong kind for the datatype (booleans for a number type,
    /// numbers for `BOOL`, fractions for an integer type).
    #[error("{} does not match datatype {}, which needs {}", Data(.input), .datatype.name(), kind(*.datatype))]
    DataKind {
        /// The input.
        input: InputRef,
        /// The datatype the elements must fit.
        datatype: DataType,
    },
    /// One element breaks its datatype's rule; the first such element is named.
    #[error("{} is not {rule}", Element(.input, *.at))]
    Element {
        /// The input.
        input: InputRef,
        /// The element's position in the flattened data.
        at: usize,
        /// The rule it breaks.
        rule: ElementRule,
    },
}

/// Dimensions shown as `[1, 30]`: a request's (unsigned) or a model's (`-1` = any).
enum Dims<'a> {
    /// A request's shape.
    Request(&'a [u64]),
    /// A model's declared shape.
    Model(&'a [i64]),
}

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Signed dimensions are written as a sign and a u64, so that the browser module links
        // one integer formatter (it shows only request shapes) and no other.
        fn write(f: &mut fmt::Formatter<'_>, dims: impl Iterator<Item = (bool, u64)>) -> fmt::Result {
            f.write_str("[")?;
            for (i, (negative, d)) in dims.enumerate() {
                f.write_str(if i == 0 { "" } else { ", " })?;
                f.write_str(if negative { "-" } else { "" })?;
                write!(f, "{d}")?;
            }
            f.write_str("]")
        }
        match self {
            Dims::Request(dims) => write(f, dims.iter().map(|&d| (false, d))),
            Dims::Model(dims) => write(f, dims.iter().map(|&d| (d < 0, d.unsigned_abs()))),
        }
    }
}

/// Names shown as `a, b, c`.
struct Names<'a>(&'a [String]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// An element count, or "more than 2^64" for a shape whose product overflows.
struct Needed(Option<u64>);

impl fmt::Display for Needed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("more than 2^64"),
        }
    }
}

/// The data of an input: `inputs[3].data` or `input 'x' data`.
struct Data<'a>(&'a InputRef);

impl fmt::Display for Data<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            InputRef::Index(_) => write!(f, "{}.data", self.0),
            InputRef::Name(_) => write!(f, "{} data", self.0),
        }
    }
}

/// One element of an input: `inputs[3].data[7]` or `input 'x' element 7`.
struct Element<'a>(&'a InputRef, usize);

impl fmt::Display for Element<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            InputRef::Index(_) => write!(f, "{}.data[{}]", self.0, self.1),
            InputRef::Name(_) => write!(f, "{} element {}", self.0, self.1),
        }
    }
}

/// What the elements of a datatype are, in words.
fn kind(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Fp32 | DataType::Fp64 => "numbers",
        DataType::Int32 | DataType::Int64 => "integers",
        DataType::Bool => "booleans",
    }
}

/// Checks a model name before it becomes a segment of the inner path: 1 to 128 characters
/// of `A-Za-z0-9._-`, so no name can add a segment, a query or an escape.
pub fn check_model_name(name: &str) -> Result<&str, InvalidInput> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
    if !name.is_empty() && name.len() <= MAX_MODEL_NAME && name.bytes().all(allowed) {
        Ok(name)
    } else {
        Err(InvalidInput::ModelName)
    }
}

/// True for a whole number a JS number holds exactly (`Number.isSafeInteger`).
pub fn is_safe_integer(x: f64) -> bool {
    // Within that range the cast to i64 is exact for whole numbers and truncates any other;
    // NaN fails the range test. (`f64::fract` is not in `core`.)
    x.abs() <= MAX_SAFE_INTEGER && (x as i64) as f64 == x
}

/// The number of elements a shape holds, `None` when the product overflows `u64`.
pub fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
}

/// Checks that `values` elements fill `shape` exactly, and with `max_elements` that the shape
/// holds no more than that (an overflowing product counts as too large). Returns the count.
pub fn check_element_count(
    input: &InputRef,
    shape: &[u64],
    values: usize,
    max_elements: Option<u64>,
) -> Result<u64, InvalidInput> {
    let needed = element_count(shape);
    if let Some(max) = max_elements
        && needed.is_none_or(|n| n > max)
    {
        return Err(InvalidInput::TooLarge { input: input.clone(), max });
    }
    match needed {
        Some(n) if n == values as u64 => Ok(n),
        _ => Err(InvalidInput::ElementCount { input: input.clone(), values, shape: shape.to_vec(), needed }),
    }
}

/// A view of a tensor's elements, as each kind of client holds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elements<'a> {
    /// Booleans.
    Bools(&'a [bool]),
    /// Integers, as serde reads a JSON array of integers ([`TensorData::Int`]).
    Integers(&'a [i64]),
    /// Numbers with a fraction or an exponent, as serde reads them ([`TensorData::Float`]):
    /// not acceptable for an integer datatype.
    Floats(&'a [f64]),
    /// Numbers as a JS engine holds them: every number is a double, and `JSON.stringify`
    /// writes a whole one as an integer, so an integer datatype takes any whole number
    /// that a double holds exactly.
    JsNumbers(&'a [f64]),
}

impl Elements<'_> {
    /// How many elements there are.
    pub fn len(&self) -> usize {
        match self {
            Elements::Bools(v) => v.len(),
            Elements::Integers(v) => v.len(),
            Elements::Floats(v) | Elements::JsNumbers(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> From<&'a TensorData> for Elements<'a> {
    fn from(data: &'a TensorData) -> Self {
        match data {
            TensorData::Bool(v) => Elements::Bools(v),
            TensorData::Int(v) => Elements::Integers(v),
            TensorData::Float(v) => Elements::Floats(v),
        }
    }
}

/// Checks that the elements are of the kind `datatype` needs and that each one fits its
/// range; the error names the first element that does not.
pub fn check_elements(input: &InputRef, datatype: DataType, elements: Elements<'_>) -> Result<(), InvalidInput> {
    fn each<T: Copy>(input: &InputRef, values: &[T], ok: fn(T) -> bool, rule: ElementRule) -> Result<(), InvalidInput> {
        match values.iter().position(|&x| !ok(x)) {
            Some(at) => Err(InvalidInput::Element { input: input.clone(), at, rule }),
            None => Ok(()),
        }
    }
    match (datatype, elements) {
        (DataType::Bool, Elements::Bools(_)) => Ok(()),
        (DataType::Bool, _) | (_, Elements::Bools(_)) | (DataType::Int32 | DataType::Int64, Elements::Floats(_)) => {
            Err(InvalidInput::DataKind { input: input.clone(), datatype })
        }
        // Every i64 is finite as an f32 or f64 (the largest is about 9.2e18).
        (DataType::Fp32 | DataType::Fp64 | DataType::Int64, Elements::Integers(_)) => Ok(()),
        // The gateway rounds FP32 input to the nearest f32, so what must hold is that the
        // rounded value is finite.
        (DataType::Fp32, Elements::Floats(v) | Elements::JsNumbers(v)) => {
            each(input, v, |x| (x as f32).is_finite(), ElementRule::Fp32)
        }
        (DataType::Fp64, Elements::Floats(v) | Elements::JsNumbers(v)) => {
            each(input, v, f64::is_finite, ElementRule::Finite)
        }
        (DataType::Int32, Elements::Integers(v)) => each(input, v, |x| i32::try_from(x).is_ok(), ElementRule::Int32),
        // The cast saturates outside the INT32 range, truncates fractions and maps NaN to 0,
        // so only a whole number in range comes back unchanged.
        (DataType::Int32, Elements::JsNumbers(v)) => each(input, v, |x| f64::from(x as i32) == x, ElementRule::Int32),
        (DataType::Int64, Elements::JsNumbers(v)) => each(input, v, is_safe_integer, ElementRule::SafeInt64),
    }
}

/// Checks one input against the model's declaration of it, in the order the gateway always
/// has: datatype, rank and fixed dimensions (`-1` = any), no empty dimension, at most
/// `max_elements` elements, the element count, then every element.
pub fn check_input(input: &InputTensor, spec: &TensorMetadata, max_elements: u64) -> Result<(), InvalidInput> {
    let which = InputRef::named(&input.name);
    if input.datatype != spec.datatype {
        return Err(InvalidInput::Datatype { input: which, given: input.datatype, expected: spec.datatype });
    }
    let fits = |(&got, &want): (&u64, &i64)| u64::try_from(want).map_or(true, |want| got == want);
    if input.shape.len() != spec.shape.len() || !input.shape.iter().zip(&spec.shape).all(fits) {
        return Err(InvalidInput::Shape { input: which, given: input.shape.clone(), expected: spec.shape.clone() });
    }
    if input.shape.contains(&0) {
        return Err(InvalidInput::EmptyDimension { input: which, shape: input.shape.clone() });
    }
    check_element_count(&which, &input.shape, input.data.len(), Some(max_elements))?;
    check_elements(&which, spec.datatype, Elements::from(&input.data))
}

/// Checks a request against a model's inputs: every name known, none given twice, none
/// missing, and each input as [`check_input`] does. Returns the model's inputs paired with
/// the request's, in the model's order.
///
/// Only the first (model inputs + 1) entries of the request are looked at for unknown and
/// repeated names: among that many, an unknown or repeated name must appear if there are too
/// many, so the work is bounded by the model's (few) inputs whatever the request holds.
pub fn check_request<'m, 'r>(
    request: &'r InferenceRequest,
    model: &str,
    inputs: &'m [TensorMetadata],
    max_elements: u64,
) -> Result<Vec<(&'m TensorMetadata, &'r InputTensor)>, InvalidInput> {
    let window = inputs.len().saturating_add(1);
    for (i, input) in request.inputs.iter().enumerate().take(window) {
        if !inputs.iter().any(|m| m.name == input.name) {
            return Err(InvalidInput::UnknownInput {
                model: echo(model),
                input: echo(&input.name),
                known: inputs.iter().map(|m| echo(&m.name)).collect(),
            });
        }
        if request.inputs.iter().take(window).skip(i + 1).any(|other| other.name == input.name) {
            return Err(InvalidInput::Repeated { input: InputRef::named(&input.name) });
        }
    }
    if request.inputs.len() > inputs.len() {
        return Err(InvalidInput::TooManyInputs { given: request.inputs.len(), expected: inputs.len() });
    }
    inputs
        .iter()
        .map(|spec| {
            let input = request
                .inputs
                .iter()
                .find(|i| i.name == spec.name)
                .ok_or_else(|| InvalidInput::Missing { input: InputRef::named(&spec.name) })?;
            check_input(input, spec, max_elements)?;
            Ok((spec, input))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::{format, vec};

    use super::*;

    fn spec(name: &str, datatype: DataType, shape: &[i64]) -> TensorMetadata {
        TensorMetadata { name: name.into(), datatype, shape: shape.to_vec() }
    }

    fn tensor(name: &str, datatype: DataType, shape: &[u64], data: TensorData) -> InputTensor {
        InputTensor { name: name.into(), shape: shape.to_vec(), datatype, data }
    }

    fn request(inputs: Vec<InputTensor>) -> InferenceRequest {
        InferenceRequest { id: None, inputs, outputs: None }
    }

    fn model() -> Vec<TensorMetadata> {
        vec![spec("input", DataType::Fp32, &[-1, 3]), spec("flags", DataType::Bool, &[-1, -1])]
    }

    fn good() -> Vec<InputTensor> {
        vec![
            tensor("input", DataType::Fp32, &[2, 3], TensorData::Float(vec![0.5; 6])),
            tensor("flags", DataType::Bool, &[1, 1], TensorData::Bool(vec![true])),
        ]
    }

    /// The message of checking `inputs` against [`model`].
    fn refused(inputs: Vec<InputTensor>) -> String {
        check_request(&request(inputs), "m", &model(), MAX_ELEMENTS).unwrap_err().to_string()
    }

    #[test]
    fn a_good_request_passes_in_the_models_order() {
        let mut inputs = good();
        inputs.reverse();
        let request = request(inputs);
        let inputs = model();
        let pairs = check_request(&request, "m", &inputs, MAX_ELEMENTS).unwrap();
        let names: Vec<_> = pairs.iter().map(|(spec, input)| (spec.name.as_str(), input.name.as_str())).collect();
        assert_eq!(names, [("input", "input"), ("flags", "flags")]);
    }

    #[test]
    fn unknown_repeated_and_missing_inputs_are_named() {
        let mut inputs = good();
        inputs[0].name = "features".into();
        assert_eq!(refused(inputs), "model 'm' has no input 'features' (its inputs: input, flags)");

        let mut inputs = good();
        inputs.push(inputs[0].clone());
        assert_eq!(refused(inputs), "input 'input' is given twice");

        assert_eq!(refused(vec![good()[1].clone()]), "missing input 'input'");
        assert_eq!(refused(vec![]), "missing input 'input'");
    }

    #[test]
    fn thousands_of_inputs_are_refused_after_looking_at_a_few() {
        let mut inputs: Vec<_> =
            (0..5000).map(|i| InputTensor { name: format!("in{i}"), ..good()[0].clone() }).collect();
        inputs[0].name = "input".into();
        inputs[1].name = "flags".into();
        assert!(refused(inputs).starts_with("model 'm' has no input 'in2'"));
    }

    #[test]
    fn datatype_and_shape_must_match_the_declaration() {
        let mut inputs = good();
        inputs[0].datatype = DataType::Int64;
        inputs[0].data = TensorData::Int(vec![1; 6]);
        assert_eq!(refused(inputs), "input 'input' has datatype INT64, the model expects datatype FP32");

        for shape in [&[2, 4][..], &[6], &[1, 2, 3]] {
            let mut inputs = good();
            inputs[0].shape = shape.to_vec();
            let m = refused(inputs);
            assert!(
                m.starts_with("input 'input' has shape [") && m.ends_with("the model expects [-1, 3] (-1 = any)"),
                "{m}"
            );
        }
        let mut inputs = good();
        inputs[0].shape = vec![0, 3];
        inputs[0].data = TensorData::Float(vec![]);
        assert_eq!(refused(inputs), "input 'input' has an empty dimension in shape [0, 3]");
    }

    #[test]
    fn counts_are_checked_with_overflow_and_the_cap() {
        let mut inputs = good();
        inputs[0].data = TensorData::Float(vec![0.5; 5]);
        assert_eq!(refused(inputs), "input 'input' has 5 values but shape [2, 3] needs 6");

        for rows in [1 << 40, u64::MAX] {
            let mut inputs = good();
            inputs[0].shape = vec![rows, 3];
            assert_eq!(refused(inputs), "input 'input' is too large: at most 67108864 elements per tensor");
        }
        let row = InputRef::Index(2);
        assert_eq!(check_element_count(&row, &[2, 3], 6, Some(6)), Ok(6));
        assert!(matches!(check_element_count(&row, &[2, 3], 6, Some(5)), Err(InvalidInput::TooLarge { max: 5, .. })));
        let huge = [1 << 32, 1 << 32, 2];
        assert_eq!(
            check_element_count(&row, &huge, 0, None).unwrap_err().to_string(),
            "inputs[2] has 0 values but shape [4294967296, 4294967296, 2] needs more than 2^64"
        );
        assert_eq!(check_element_count(&row, &[], 1, None), Ok(1), "a scalar holds one element");
        assert_eq!(element_count(&[u64::MAX, 2]), None);
    }

    #[test]
    fn elements_must_be_of_the_datatypes_kind() {
        let mut inputs = good();
        inputs[0].data = TensorData::Bool(vec![true; 6]);
        assert_eq!(refused(inputs), "input 'input' data does not match datatype FP32, which needs numbers");
        let at = InputRef::Index(0);
        let kind = |dt, e| check_elements(&at, dt, e).unwrap_err().to_string();
        assert_eq!(
            kind(DataType::Bool, Elements::JsNumbers(&[1.0])),
            "inputs[0].data does not match datatype BOOL, which needs booleans"
        );
        assert_eq!(
            kind(DataType::Int32, Elements::Floats(&[1.0])),
            "inputs[0].data does not match datatype INT32, which needs integers"
        );
        assert_eq!(
            kind(DataType::Int64, Elements::Bools(&[true])),
            "inputs[0].data does not match datatype INT64, which needs integers"
        );
        // Integers are fine for float tensors, as the JSON `[1, 2]` is read as integers.
        assert!(check_elements(&at, DataType::Fp32, Elements::Integers(&[i64::MAX, i64::MIN])).is_ok());
    }

    #[test]
    fn elements_must_fit_the_datatypes_range() {
        let at = InputRef::Index(0);
        let bad = |dt, e| check_elements(&at, dt, e).unwrap_err().to_string();
        let fp32 = "inputs[0].data[1] is not a finite number in the FP32 range";
        assert_eq!(bad(DataType::Fp32, Elements::Floats(&[1.0, 1e39])), fp32);
        assert_eq!(bad(DataType::Fp32, Elements::JsNumbers(&[1.0, f64::NAN])), fp32);
        assert!(check_elements(&at, DataType::Fp32, Elements::JsNumbers(&[f64::from(f32::MAX), -3.5])).is_ok());
        assert!(check_elements(&at, DataType::Fp64, Elements::Floats(&[1e39])).is_ok());
        assert_eq!(
            bad(DataType::Fp64, Elements::JsNumbers(&[1.0, f64::INFINITY])),
            "inputs[0].data[1] is not a finite number"
        );

        let int32 = "inputs[0].data[0] is not an INT32 integer";
        assert_eq!(bad(DataType::Int32, Elements::Integers(&[1 << 31, 1])), int32);
        assert_eq!(bad(DataType::Int32, Elements::JsNumbers(&[0.5])), int32);
        assert_eq!(bad(DataType::Int32, Elements::JsNumbers(&[2147483648.0])), int32);
        assert!(check_elements(&at, DataType::Int32, Elements::Integers(&[i32::MIN.into(), i32::MAX.into()])).is_ok());
        assert!(check_elements(&at, DataType::Int32, Elements::JsNumbers(&[-2147483648.0, 2147483647.0])).is_ok());

        // INT64 from a JSON parser holds any i64; from JS numbers only the exact ones.
        assert!(check_elements(&at, DataType::Int64, Elements::Integers(&[i64::MAX])).is_ok());
        assert!(check_elements(&at, DataType::Int64, Elements::JsNumbers(&[-MAX_SAFE_INTEGER, 3.0])).is_ok());
        assert_eq!(
            bad(DataType::Int64, Elements::JsNumbers(&[9007199254740992.0])),
            "inputs[0].data[0] is not a safe INT64 integer"
        );

        // Through the request check, elements are named by position within the named input.
        let mut inputs = good();
        inputs[0].data = TensorData::Float(vec![0.5, 0.5, 1e300, 0.5, 0.5, 0.5]);
        assert_eq!(refused(inputs), "input 'input' element 2 is not a finite number in the FP32 range");
        let mut int = good();
        int[0] = tensor("input", DataType::Fp32, &[1, 3], TensorData::Int(vec![1, 2, 3]));
        assert!(check_request(&request(int), "m", &model(), MAX_ELEMENTS).is_ok());
    }

    #[test]
    fn messages_never_quote_values_and_cut_names() {
        let canary = 31337.4242;
        let mut inputs = good();
        inputs[0].data = TensorData::Float(vec![canary, canary, 1e300, canary, canary, canary]);
        let m = refused(inputs);
        assert!(!m.contains("31337") && !m.contains("1e300"), "{m}");
        let long = "x".repeat(1000) + "\n";
        let m = InputRef::named(&long).to_string();
        assert_eq!(m, format!("input '{}'", "x".repeat(64)));
        assert_eq!(echo("a\nb\u{7}"), "a?b?");
    }

    #[test]
    fn model_names_are_one_path_segment() {
        for good in ["breast-cancer", "v1.2_x", "A", &"m".repeat(128)] {
            assert_eq!(check_model_name(good), Ok(good));
        }
        for bad in ["", "../x", "a/b", "a?b", "a b", "é", "a%2F", &"m".repeat(129)] {
            assert_eq!(check_model_name(bad), Err(InvalidInput::ModelName), "{bad}");
        }
        assert_eq!(
            InvalidInput::ModelName.to_string(),
            "the model name must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        );
    }

    #[test]
    fn safe_integers_are_those_a_double_holds_exactly() {
        assert!(is_safe_integer(0.0) && is_safe_integer(-MAX_SAFE_INTEGER) && is_safe_integer(MAX_SAFE_INTEGER));
        for bad in [0.5, MAX_SAFE_INTEGER + 1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!is_safe_integer(bad), "{bad}");
        }
        assert_eq!(DataType::from_name("INT64"), Some(DataType::Int64));
        assert_eq!(DataType::from_name("fp32"), None);
        assert!(DataType::ALL.iter().all(|&d| DataType::from_name(d.name()) == Some(d)));
    }
}

//! Checks the inference request a page hands to `gw.infer` before anything is encrypted or
//! sent: KServe V2 shape, datatype and element count, element types and ranges; then writes
//! the JSON body that gets encrypted.
//!
//! The gateway checks all of this too, but a page deserves an immediate, precise error for
//! its own mistakes (`inputs[0] has 29 elements but shape [1, 30] needs 30`) without a round
//! trip, and a malformed tensor should never leave the browser, even encrypted. Messages name
//! tensors, indexes and shapes, never element values, so they are safe to log.
//!
//! Each tensor's data is first copied into a plain JS array (typed arrays included), the copy
//! is checked, and the very same copy is serialized with the engine's `JSON.stringify` (which
//! prints numbers in the shortest round-trip form, like serde_json): so what was checked is
//! what is sent, even if the page changes its arrays later, and the module carries no JSON
//! serializer of its own. [`check_tensor`] is the pure half, tested natively and in wasm;
//! its rules and messages are the protocol's (`sealgate_protocol::inference::check`, which
//! the gateway uses too), so this file only reads JS values and says where they came from.

use js_sys::{Array, JSON, Object, Reflect};
use sealgate_protocol::inference::DataType;
use sealgate_protocol::inference::check::{self, ElementRule, InputRef, InvalidInput};
use wasm_bindgen::{JsCast as _, JsValue};

use crate::error::{ClientError, Result};

/// Tensor elements as read from the page, before their datatype is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Elements {
    /// Numbers (from an array of numbers or a typed array).
    Numbers(Vec<f64>),
    /// Booleans.
    Bools(Vec<bool>),
}

impl Elements {
    /// The view the protocol's checks take: numbers as a JS engine holds them.
    fn view(&self) -> check::Elements<'_> {
        match self {
            Elements::Numbers(v) => check::Elements::JsNumbers(v),
            Elements::Bools(v) => check::Elements::Bools(v),
        }
    }
}

fn invalid(message: String) -> ClientError {
    ClientError::InvalidInput(message)
}

/// A refusal of the protocol's checks, as the page sees it.
fn refused(e: InvalidInput) -> ClientError {
    invalid(e.to_string())
}

/// Checks shape entries: finite, whole, non-negative numbers that fit a JS number exactly.
pub fn check_shape(index: usize, shape: &[f64]) -> Result<Vec<u64>> {
    shape
        .iter()
        .map(|&d| if d >= 0.0 && check::is_safe_integer(d) { Ok(d as u64) } else { Err(bad_input(index, BAD_SHAPE)) })
        .collect()
}

/// Checks one tensor: element count against the shape, element types and ranges against
/// the datatype. Returns the shape as integers.
pub fn check_tensor(index: usize, name: &str, shape: &[f64], datatype: DataType, data: &Elements) -> Result<Vec<u64>> {
    if name.is_empty() {
        return Err(bad_input(index, ".name must be a non-empty string"));
    }
    let shape = check_shape(index, shape)?;
    let input = InputRef::Index(index);
    // No element cap here: the page learns the gateway's from its answer.
    check::check_element_count(&input, &shape, data.view().len(), None).map_err(refused)?;
    check::check_elements(&input, datatype, data.view()).map_err(refused)?;
    Ok(shape)
}

/// Model names travel in the inner path: refuse anything that could change the route.
pub fn check_model_name(name: &str) -> Result<&str> {
    check::check_model_name(name).map_err(refused)
}

/// Reads `{ id?, inputs: [...], outputs? }` from the page, checks every tensor, and returns
/// the JSON body of `POST /v2/models/{model}/infer`.
pub fn request_body_from_js(request: &JsValue) -> Result<Vec<u8>> {
    if !request.is_object() || Array::is_array(request) {
        return Err(invalid("the request must be an object like { inputs: [{ name, shape, datatype, data }] }".into()));
    }
    let body = Object::new();
    match get(request, "id") {
        v if v.is_undefined() || v.is_null() => {}
        v if v.is_string() => set(&body, "id", &v),
        _ => return Err(invalid("request.id must be a string".into())),
    }
    let inputs = get(request, "inputs");
    let inputs = inputs
        .dyn_ref::<Array>()
        .filter(|a| a.length() > 0)
        .ok_or_else(|| invalid("request.inputs must be a non-empty array of tensors".into()))?;
    let checked = Array::new();
    for (index, input) in inputs.iter().enumerate() {
        checked.push(&input_from_js(index, &input)?.into());
    }
    set(&body, "inputs", &checked);
    match get(request, "outputs") {
        v if v.is_undefined() || v.is_null() => {}
        v => set(&body, "outputs", &requested_outputs(&v)?.into()),
    }
    let json = JSON::stringify(&body).map_err(|_| invalid("the request cannot be serialized as JSON".into()))?;
    Ok(String::from(json).into_bytes())
}

/// An error about `inputs[index]`: `what` continues the sentence.
fn bad_input(index: usize, what: &str) -> ClientError {
    invalid(format!("inputs[{index}]{what}"))
}

const NOT_FLAT: &str = ".data must be a flat (row-major) array or a typed array of the tensor's elements";
const BAD_SHAPE: &str = ".shape must be an array of non-negative integers";

/// Checks one input tensor and returns the copy that will be serialized.
fn input_from_js(index: usize, input: &JsValue) -> Result<Object> {
    if !input.is_object() {
        return Err(bad_input(index, " must be an object { name, shape, datatype, data }"));
    }
    let name = get(input, "name").as_string().ok_or_else(|| bad_input(index, ".name must be a non-empty string"))?;
    let shape = snapshot(&get(input, "shape")).and_then(|s| numbers(&s)).ok_or_else(|| bad_input(index, BAD_SHAPE))?;
    let datatype = get(input, "datatype")
        .as_string()
        .and_then(|d| DataType::from_name(&d))
        .ok_or_else(|| bad_input(index, ".datatype must be one of FP32, FP64, INT32, INT64, BOOL"))?;
    let data = snapshot(&get(input, "data")).ok_or_else(|| bad_input(index, NOT_FLAT))?;
    let elements = elements(index, &data, datatype)?;
    let shape = check_tensor(index, &name, &shape, datatype, &elements)?;
    let tensor = Object::new();
    set(&tensor, "name", &name.into());
    set(&tensor, "shape", &shape.iter().map(|&d| JsValue::from_f64(d as f64)).collect::<Array>());
    set(&tensor, "datatype", &datatype.name().into());
    set(&tensor, "data", &data);
    Ok(tensor)
}

/// `request.outputs`: names, as strings or `{ name }` objects; returns `[{ name }]`.
fn requested_outputs(value: &JsValue) -> Result<Array> {
    let error = || invalid("request.outputs must be an array of output names or { name } objects".into());
    let array = value.dyn_ref::<Array>().ok_or_else(error)?;
    let out = Array::new();
    for o in array.iter() {
        let name = o.as_string().or_else(|| get(&o, "name").as_string()).ok_or_else(error)?;
        let entry = Object::new();
        set(&entry, "name", &name.into());
        out.push(&entry);
    }
    Ok(out)
}

/// The property `key` of `object`, `undefined` when missing or not an object.
fn get(object: &JsValue, key: &str) -> JsValue {
    if !object.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn set(object: &Object, key: &str, value: &JsValue) {
    // Defining a property on a fresh plain object cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(key), value);
}

/// A plain-array copy of an array or a typed array (BigInt and DataView excluded);
/// `None` for anything else.
fn snapshot(value: &JsValue) -> Option<Array> {
    if let Some(array) = value.dyn_ref::<Array>() {
        return Some(array.slice(0, array.length()));
    }
    let is_bigint = value.is_instance_of::<js_sys::BigInt64Array>() || value.is_instance_of::<js_sys::BigUint64Array>();
    (js_sys::ArrayBuffer::is_view(value) && !is_bigint && !value.is_instance_of::<js_sys::DataView>())
        .then(|| Array::from(value))
}

/// Every element as a number; `None` if one is not.
fn numbers(array: &Array) -> Option<Vec<f64>> {
    array.iter().map(|v| v.as_f64()).collect()
}

/// An error about one element of `inputs[index].data`.
fn bad_element(index: usize, at: usize, rule: ElementRule) -> ClientError {
    refused(InvalidInput::Element { input: InputRef::Index(index), at, rule })
}

/// Reads `data` as the elements `datatype` needs, naming the first element that is not.
fn elements(index: usize, data: &Array, datatype: DataType) -> Result<Elements> {
    if datatype == DataType::Bool {
        let mut values = Vec::with_capacity(data.length() as usize);
        for (at, v) in data.iter().enumerate() {
            values.push(v.as_bool().ok_or_else(|| bad_element(index, at, ElementRule::Boolean))?);
        }
        return Ok(Elements::Bools(values));
    }
    let mut values = Vec::with_capacity(data.length() as usize);
    for (at, v) in data.iter().enumerate() {
        match v.as_f64() {
            Some(x) => values.push(x),
            None if Array::is_array(&v) => return Err(bad_input(index, NOT_FLAT)),
            None => return Err(bad_element(index, at, ElementRule::Number)),
        }
    }
    Ok(Elements::Numbers(values))
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    fn check(shape: &[f64], datatype: DataType, data: Elements) -> Result<Vec<u64>> {
        check_tensor(0, "input", shape, datatype, &data)
    }

    fn message(r: Result<Vec<u64>>) -> String {
        match r {
            Err(ClientError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_good_fp32_row_passes() {
        let shape = check(&[1.0, 3.0], DataType::Fp32, Elements::Numbers(vec![17.99, 20.66, 117.8])).unwrap();
        assert_eq!(shape, vec![1, 3]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn element_count_must_match_the_shape() {
        let m = message(check(&[1.0, 30.0], DataType::Fp32, Elements::Numbers(vec![1.0; 29])));
        assert_eq!(m, "inputs[0] has 29 values but shape [1, 30] needs 30");
        let huge = [4294967296.0, 4294967296.0, 2.0];
        let m = message(check(&huge, DataType::Fp32, Elements::Numbers(vec![])));
        assert!(m.contains("needs more than 2^64"), "{m}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn shapes_are_non_negative_integers() {
        for bad in [[-1.0, 2.0], [1.5, 2.0], [f64::NAN, 1.0], [f64::INFINITY, 1.0], [1e300, 1.0]] {
            let m = message(check_tensor(1, "x", &bad, DataType::Fp32, &Elements::Numbers(vec![0.0; 2])));
            assert_eq!(m, "inputs[1].shape must be an array of non-negative integers");
        }
        // A scalar has the empty shape and one element.
        assert_eq!(check(&[], DataType::Fp64, Elements::Numbers(vec![1.0])).unwrap(), Vec::<u64>::new());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn elements_must_fit_the_datatype() {
        let two = |dt, values: Vec<f64>| check(&[2.0], dt, Elements::Numbers(values));
        let fp32 = "inputs[0].data[1] is not a finite number in the FP32 range";
        assert_eq!(message(two(DataType::Fp32, vec![1.0, f64::NAN])), fp32);
        assert_eq!(message(two(DataType::Fp32, vec![1.0, 1e39])), fp32);
        assert!(two(DataType::Fp64, vec![1e39, 1.0]).is_ok());
        assert_eq!(
            message(two(DataType::Fp64, vec![1.0, f64::NEG_INFINITY])),
            "inputs[0].data[1] is not a finite number"
        );
        assert_eq!(message(two(DataType::Int32, vec![1.0, 0.5])), "inputs[0].data[1] is not an INT32 integer");
        assert_eq!(message(two(DataType::Int32, vec![2147483648.0, 1.0])), "inputs[0].data[0] is not an INT32 integer");
        assert!(two(DataType::Int32, vec![-2147483648.0, 2147483647.0]).is_ok());
        assert!(two(DataType::Int64, vec![-9007199254740991.0, 3.0]).is_ok());
        assert_eq!(
            message(two(DataType::Int64, vec![9007199254740992.0, 3.0])),
            "inputs[0].data[0] is not a safe INT64 integer"
        );
        assert!(check(&[2.0], DataType::Bool, Elements::Bools(vec![true, false])).is_ok());
        assert_eq!(
            message(check(&[1.0], DataType::Bool, Elements::Numbers(vec![1.0]))),
            "inputs[0].data does not match datatype BOOL, which needs booleans"
        );
        assert_eq!(
            message(check(&[1.0], DataType::Int64, Elements::Bools(vec![true]))),
            "inputs[0].data does not match datatype INT64, which needs integers"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn messages_never_quote_values() {
        let canary = 31337.4242;
        for r in [
            check(&[3.0], DataType::Fp32, Elements::Numbers(vec![canary, canary])),
            check(&[2.0], DataType::Int32, Elements::Numbers(vec![canary, 1.0])),
        ] {
            let m = message(r);
            assert!(!m.contains("31337"), "{m}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn names_and_model_names_are_checked() {
        assert_eq!(
            message(check_tensor(3, "", &[1.0], DataType::Fp32, &Elements::Numbers(vec![1.0]))),
            "inputs[3].name must be a non-empty string"
        );
        assert!(check_model_name("breast-cancer").is_ok());
        assert!(check_model_name("v1.2_x").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b", "é"] {
            assert!(check_model_name(bad).is_err(), "{bad}");
        }
        assert!(check_model_name(&"m".repeat(128)).is_ok());
        assert!(check_model_name(&"m".repeat(129)).is_err());
    }

    /// The JS half: arrays, typed arrays, the JSON that is sent, and the page's usual mistakes.
    #[cfg(target_arch = "wasm32")]
    mod js {
        use js_sys::{Array, Float32Array, Object, Reflect};
        use sealgate_protocol::inference::{InferenceRequest, TensorData};
        use wasm_bindgen::JsValue;
        use wasm_bindgen_test::wasm_bindgen_test;

        use super::super::*;

        fn object(pairs: &[(&str, JsValue)]) -> JsValue {
            let o = Object::new();
            for (k, v) in pairs {
                Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
            }
            o.into()
        }

        fn numbers(values: &[f64]) -> JsValue {
            values.iter().map(|&v| JsValue::from_f64(v)).collect::<Array>().into()
        }

        fn request(data: JsValue, shape: &[f64], datatype: &str) -> JsValue {
            let input = object(&[
                ("name", "input".into()),
                ("shape", numbers(shape)),
                ("datatype", datatype.into()),
                ("data", data),
            ]);
            object(&[("inputs", Array::of1(&input).into())])
        }

        /// The body that would be encrypted, parsed with the gateway's own types.
        fn sent(value: &JsValue) -> InferenceRequest {
            let body = request_body_from_js(value).unwrap();
            serde_json::from_slice(&body).unwrap()
        }

        fn error(value: &JsValue) -> String {
            match request_body_from_js(value) {
                Err(ClientError::InvalidInput(m)) => m,
                other => panic!("expected InvalidInput, got {other:?}"),
            }
        }

        #[wasm_bindgen_test]
        fn the_json_sent_is_the_kserve_request() {
            let body = request_body_from_js(&request(numbers(&[17.99, 2.0]), &[1.0, 2.0], "FP32")).unwrap();
            assert_eq!(
                String::from_utf8(body).unwrap(),
                r#"{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[17.99,2]}]}"#
            );
            let typed = Float32Array::from(&[0.25f32, 8.0][..]);
            assert_eq!(sent(&request(typed.into(), &[2.0], "FP32")).inputs[0].data, TensorData::Float(vec![0.25, 8.0]));
            let ints = js_sys::Int32Array::from(&[7, -3][..]);
            assert_eq!(sent(&request(ints.into(), &[2.0], "INT64")).inputs[0].data, TensorData::Int(vec![7, -3]));
            let bools: JsValue = Array::of2(&true.into(), &false.into()).into();
            assert_eq!(sent(&request(bools, &[2.0], "BOOL")).inputs[0].data, TensorData::Bool(vec![true, false]));
        }

        #[wasm_bindgen_test]
        fn what_was_checked_is_what_is_sent() {
            let data = Array::of2(&1.0.into(), &2.0.into());
            let page_request = request(data.clone().into(), &[2.0], "FP64");
            let body = request_body_from_js(&page_request).unwrap();
            // The page changing its array afterwards changes nothing already serialized,
            // and an extra field of the page's objects never travels.
            data.set(0, "not a number".into());
            Reflect::set(&page_request, &"secret".into(), &"x".into()).unwrap();
            assert_eq!(
                String::from_utf8(body).unwrap(),
                r#"{"inputs":[{"name":"input","shape":[2],"datatype":"FP64","data":[1,2]}]}"#
            );
        }

        #[wasm_bindgen_test]
        fn ids_and_outputs_are_optional() {
            let with = request(numbers(&[1.0]), &[1.0], "FP64");
            Reflect::set(&with, &"id".into(), &"req-1".into()).unwrap();
            let outputs = Array::of2(&"label".into(), &object(&[("name", "probabilities".into())]));
            Reflect::set(&with, &"outputs".into(), &outputs).unwrap();
            let r = sent(&with);
            assert_eq!(r.id.as_deref(), Some("req-1"));
            let names: Vec<_> = r.outputs.unwrap().into_iter().map(|o| o.name).collect();
            assert_eq!(names, ["label", "probabilities"]);
        }

        #[wasm_bindgen_test]
        fn the_pages_mistakes_are_named() {
            assert!(error(&JsValue::NULL).starts_with("the request must be an object"));
            assert!(error(&Array::new().into()).starts_with("the request must be an object"));
            let no_inputs = object(&[("input", Array::new().into())]);
            assert_eq!(error(&no_inputs), "request.inputs must be a non-empty array of tensors");
            assert_eq!(
                error(&request(numbers(&[1.0]), &[1.0], "float32")),
                "inputs[0].datatype must be one of FP32, FP64, INT32, INT64, BOOL"
            );
            let mixed: JsValue = Array::of2(&1.0.into(), &"2".into()).into();
            assert_eq!(error(&request(mixed, &[2.0], "FP32")), "inputs[0].data[1] is not a number");
            let nested: JsValue = Array::of1(&numbers(&[1.0, 2.0])).into();
            assert!(error(&request(nested, &[1.0, 2.0], "FP32")).starts_with("inputs[0].data must be a flat"));
            assert_eq!(
                error(&request(numbers(&[1.0, 2.0]), &[3.0], "FP32")),
                "inputs[0] has 2 values but shape [3] needs 3"
            );
            let input = object(&[
                ("name", "input".into()),
                ("shape", "1,2".into()),
                ("datatype", "FP32".into()),
                ("data", numbers(&[1.0, 2.0])),
            ]);
            let r = object(&[("inputs", Array::of1(&input).into())]);
            assert_eq!(error(&r), "inputs[0].shape must be an array of non-negative integers");
            let big = js_sys::BigInt64Array::new_with_length(1);
            assert!(error(&request(big.into(), &[1.0], "INT64")).starts_with("inputs[0].data must be a flat"));
            let not_bool: JsValue = Array::of2(&true.into(), &1.0.into()).into();
            assert_eq!(error(&request(not_bool, &[2.0], "BOOL")), "inputs[0].data[1] is not a boolean");
        }
    }
}

//! Reading the gateway's JSON answers with the JavaScript engine's own `JSON.parse`.
//!
//! The result of `infer` must become plain JS objects anyway, and `JSON.parse` builds them
//! faster than any binding could. Parsing with serde on the Rust side as well would add about
//! 60 KB of deserializer code to a module the page downloads, for no gain. So answers are
//! parsed once, by the engine, and their shape is checked here field by field: a page can
//! rely on `result.outputs[i].data` being an array when the promise resolves.
//!
//! Problem details (RFC 9457) and KServe `{"error": ...}` bodies are the client core's to
//! read, as for every client.

use js_sys::{Array, JSON, Reflect};
use wasm_bindgen::JsValue;

use crate::error::{ClientError, Result};

/// The answers the client knows, for checking their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `InferenceResponse`: `{ model_name, outputs: [{ name, shape, datatype, data }] }`.
    Inference,
    /// `ModelList`: `{ models: [{ name, versions }] }`.
    ModelList,
    /// `ModelMetadata`: `{ name, versions, platform, inputs, outputs }`.
    ModelMetadata,
}

/// Parses UTF-8 JSON; `None` when it is not.
pub fn parse(body: &[u8]) -> Option<JsValue> {
    let text = core::str::from_utf8(body).ok()?;
    JSON::parse(text).ok()
}

fn get(object: &JsValue, key: &str) -> JsValue {
    if !object.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn string(object: &JsValue, key: &str) -> Option<String> {
    get(object, key).as_string()
}

fn array(object: &JsValue, key: &str) -> Option<Array> {
    let value = get(object, key);
    Array::is_array(&value).then(|| Array::from(&value))
}

/// Parses an answer and checks that it has the fields of `kind`.
pub fn answer(body: &[u8], kind: Answer) -> Result<JsValue> {
    let invalid = |what: &str| ClientError::InvalidResponse(what.to_owned());
    let value = parse(body).ok_or_else(|| invalid("the answer is not JSON"))?;
    let tensors_ok = |list: Option<Array>, needs_data: bool| {
        list.is_some_and(|list| {
            list.iter().all(|t| {
                string(&t, "name").is_some()
                    && string(&t, "datatype").is_some()
                    && array(&t, "shape").is_some()
                    && (!needs_data || array(&t, "data").is_some())
            })
        })
    };
    let ok = match kind {
        Answer::Inference => string(&value, "model_name").is_some() && tensors_ok(array(&value, "outputs"), true),
        Answer::ModelList => array(&value, "models").is_some_and(|models| {
            models.iter().all(|m| string(&m, "name").is_some() && array(&m, "versions").is_some())
        }),
        Answer::ModelMetadata => {
            string(&value, "name").is_some()
                && tensors_ok(array(&value, "inputs"), false)
                && tensors_ok(array(&value, "outputs"), false)
        }
    };
    if !ok {
        return Err(invalid(match kind {
            Answer::Inference => "expected { model_name, outputs: [{ name, shape, datatype, data }] }",
            Answer::ModelList => "expected { models: [{ name, versions }] }",
            Answer::ModelMetadata => "expected { name, inputs: [...], outputs: [...] }",
        }));
    }
    Ok(value)
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    const INFERENCE: &str =
        r#"{"model_name":"m","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[1]}]}"#;

    #[wasm_bindgen_test]
    fn answers_are_parsed_and_checked() {
        let value = answer(INFERENCE.as_bytes(), Answer::Inference).unwrap();
        assert_eq!(string(&value, "model_name").as_deref(), Some("m"));
        let models = r#"{"models":[{"name":"a","versions":["1"]}]}"#;
        assert!(answer(models.as_bytes(), Answer::ModelList).is_ok());
        let metadata = r#"{"name":"a","versions":["1"],"platform":"onnxruntime","inputs":[{"name":"input","datatype":"FP32","shape":[-1,30]}],"outputs":[]}"#;
        assert!(answer(metadata.as_bytes(), Answer::ModelMetadata).is_ok());
    }

    #[wasm_bindgen_test]
    fn wrong_shapes_are_invalid_responses() {
        for (body, kind) in [
            ("not json", Answer::Inference),
            (r#"{"outputs":[]}"#, Answer::Inference),
            (r#"{"model_name":"m","outputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#, Answer::Inference),
            (r#"{"model_name":"m","outputs":{}}"#, Answer::Inference),
            ("[]", Answer::ModelList),
            (r#"{"models":[{"name":1}]}"#, Answer::ModelList),
            (r#"{"name":"a"}"#, Answer::ModelMetadata),
        ] {
            assert!(matches!(answer(body.as_bytes(), kind), Err(ClientError::InvalidResponse(_))), "{body}");
        }
        assert!(answer(&[0xff, 0xfe], Answer::Inference).is_err());
    }
}

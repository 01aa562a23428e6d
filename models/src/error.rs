//! The one error type of the models crate.

/// Why a model could not be loaded or a request could not be run.
///
/// Messages name tensors and shapes but never echo tensor values: requests carry patient
/// and financial data, and these texts travel back to clients and into logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The ONNX Runtime shared library could not be loaded.
    #[error(
        "cannot load the ONNX Runtime library from {path}: {reason}. Run `cargo xtask setup` \
         (it fetches onnxruntime {} from PyPI) or set ORT_DYLIB_PATH to libonnxruntime.so",
        crate::runtime::ORT_VERSION
    )]
    RuntimeLibrary {
        /// Where we looked.
        path: String,
        /// What the loader said.
        reason: String,
    },
    /// ONNX Runtime refused the model or failed while running it.
    #[error("ONNX Runtime error: {0}")]
    Runtime(String),
    /// The model uses something the gateway does not serve (a type, external data).
    #[error("unsupported model {model}: {reason}")]
    Unsupported {
        /// Model name.
        model: String,
        /// Why.
        reason: String,
    },
    /// Reading a model file failed.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Two model files claim the same name and version.
    #[error("model {0} is provided twice")]
    Duplicate(String),
    /// The request's tensors do not fit the model (400 to the client).
    #[error("{0}")]
    InvalidInput(String),
    /// The answer would be larger than the gateway returns (413 to the client).
    #[error("{0}")]
    TooLarge(String),
    /// ONNX Runtime failed while running a request. Only the error class is kept: the
    /// runtime's message can quote input values (index operators do).
    #[error("ONNX Runtime failed to run the model (error class {class})")]
    Inference {
        /// ONNX Runtime's error code, such as `InvalidArgument` or `RuntimeException`.
        class: String,
    },
    /// ONNX Runtime refused a request whose inputs passed the metadata checks, on a model
    /// with integer inputs: an index operator out of range (a token id outside the
    /// vocabulary, say), or inputs whose free dimensions disagree with each other (a mask of
    /// another length than the ids). A client error (400). ONNX Runtime's own message quotes
    /// the value, so the text is fixed and names the tensors, never a value.
    #[error(
        "the model could not use its integer input tensor(s) {tensors} as given: a value out of the model's \
         range, such as a token id outside its vocabulary, or inputs whose sizes disagree, such as an \
         attention mask of another length than the ids"
    )]
    InputValues {
        /// The model's integer inputs, quoted and comma-separated.
        tensors: String,
    },
}

impl ModelError {
    /// An ONNX Runtime failure during a request, with the runtime's message dropped.
    pub fn inference<R>(e: ort::Error<R>) -> Self {
        ModelError::Inference { class: format!("{:?}", e.code()) }
    }

    /// An ONNX Runtime failure during a request to a model whose integer inputs are
    /// `integer_inputs`: an `InvalidArgument` there is the request's values out of the
    /// model's range ([`ModelError::InputValues`]); anything else keeps only its class.
    pub fn run_failed<R>(e: ort::Error<R>, integer_inputs: &[&str]) -> Self {
        if matches!(e.code(), ort::ErrorCode::InvalidArgument) && !integer_inputs.is_empty() {
            let names: Vec<String> =
                integer_inputs.iter().map(|n| format!("'{}'", sealgate_protocol::inference::check::echo(n))).collect();
            return ModelError::InputValues { tensors: names.join(", ") };
        }
        Self::inference(e)
    }

    /// Drops the text of a runtime error raised while handling a request (it could quote
    /// request values); other errors are returned unchanged.
    pub fn hide_runtime_text(self) -> Self {
        match self {
            ModelError::Runtime(_) => ModelError::Inference { class: "conversion".into() },
            other => other,
        }
    }
}

impl<R> From<ort::Error<R>> for ModelError {
    fn from(e: ort::Error<R>) -> Self {
        ModelError::Runtime(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

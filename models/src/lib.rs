//! # sealgate-models
//!
//! Everything between model bytes and an inference answer: loading the ONNX Runtime library
//! ([`runtime`]), building pools of sessions from bytes in memory ([`Model`]), checking KServe
//! V2 tensors against a model's signature and converting them ([`tensor`]), and the set of
//! models a gateway serves ([`ModelRegistry`]).
//!
//! Model bytes are only ever handed to ONNX Runtime from memory, never from a path, so the
//! sealed-artifact loader can decrypt into a locked buffer and wipe it right after.

pub mod artifact;
pub mod audit;
mod error;
pub mod external;
pub mod files;
// The fuzz targets' bodies (fuzz/ and tests/fuzz_regressions.rs), not part of the API.
#[doc(hidden)]
pub mod fuzzing;
pub mod kms;
mod model;
pub mod onnx_scan;
mod pool;
mod registry;
pub mod runtime;
pub mod tensor;

pub use error::{ModelError, Result};
pub use model::{Model, ModelFiles};
pub use registry::{ModelRegistry, ModelSource, is_valid_name};

//! The bodies of the fuzz targets that exercise this crate (`fuzz/fuzz_targets/*.rs`, run by
//! `cargo xtask fuzz`; docs/FUZZING.md), for the fuzz targets and for the stable
//! `tests/fuzz_regressions.rs`, which replays every committed corpus and regression input
//! through the very same functions. Not part of the crate's API: hidden from its docs, and
//! free to change with the targets.
//!
//! As in `sealgate_protocol::fuzzing`, each target is a `Target` in its own module: `new`
//! builds what stays fixed between inputs, `run` takes one input and returns true when it was
//! accepted as valid, and `seeds` makes valid inputs to start a corpus from. No input may
//! panic; the assertions a target makes about what it accepted are findings when they fail.

pub mod artifact;
pub mod kserve;
pub mod onnx_scan;

/// A named valid input, to start a corpus from.
pub type Seed = (String, Vec<u8>);

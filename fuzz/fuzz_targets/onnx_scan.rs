//! Fuzz target `onnx_scan`: the ONNX external-data scan and its rules. The body is
//! `sealgate_models::fuzzing::onnx_scan::Target::run`, which the crate's `fuzz_regressions`
//! test also runs on every file of `fuzz/corpus/onnx_scan/` and
//! `fuzz/regressions/onnx_scan/` (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_models::fuzzing::onnx_scan::Target;

static TARGET: LazyLock<Target> = LazyLock::new(Target::new);

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

//! Fuzz target `kserve`: KServe V2 JSON bodies and the tensor checks. The body is
//! `sealgate_models::fuzzing::kserve::Target::run`, which the crate's `fuzz_regressions`
//! test also runs on every file of `fuzz/corpus/kserve/` and `fuzz/regressions/kserve/`
//! (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_models::fuzzing::kserve::Target;

static TARGET: LazyLock<Target> = LazyLock::new(Target::new);

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

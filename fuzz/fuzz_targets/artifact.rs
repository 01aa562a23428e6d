//! Fuzz target `artifact`: sealed artifact headers, frames and the open path. The body is
//! `sealgate_models::fuzzing::artifact::Target::run`, which the crate's `fuzz_regressions`
//! test also runs on every file of `fuzz/corpus/artifact/` and `fuzz/regressions/artifact/`
//! (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_models::fuzzing::artifact::Target;

static TARGET: LazyLock<Target> = LazyLock::new(|| Target::new().expect("the committed test vectors parse"));

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

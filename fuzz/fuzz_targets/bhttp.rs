//! Fuzz target `bhttp`: Binary HTTP in both forms, one-shot and incremental. The body is
//! `sealgate_protocol::fuzzing::bhttp::Target::run`, which the crate's `fuzz_regressions`
//! test also runs on every file of `fuzz/corpus/bhttp/` and `fuzz/regressions/bhttp/`
//! (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_protocol::fuzzing::bhttp::Target;

static TARGET: LazyLock<Target> = LazyLock::new(Target::new);

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

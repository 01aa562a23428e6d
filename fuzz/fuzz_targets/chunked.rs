//! Fuzz target `chunked`: chunked OHTTP requests and responses, in pieces. The body is
//! `sealgate_protocol::fuzzing::chunked::Target::run`, which the crate's `fuzz_regressions`
//! test also runs on every file of `fuzz/corpus/chunked/` and `fuzz/regressions/chunked/`
//! (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_protocol::fuzzing::chunked::Target;

static TARGET: LazyLock<Target> = LazyLock::new(|| Target::new().expect("the fixed keys derive"));

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

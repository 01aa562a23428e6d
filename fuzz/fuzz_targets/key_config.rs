//! Fuzz target `key_config`: key configurations and their list, as a client reads them. The
//! body is `sealgate_protocol::fuzzing::key_config::Target::run`, which the crate's
//! `fuzz_regressions` test also runs on every file of `fuzz/corpus/key_config/` and
//! `fuzz/regressions/key_config/` (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_protocol::fuzzing::key_config::Target;

static TARGET: LazyLock<Target> = LazyLock::new(Target::new);

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

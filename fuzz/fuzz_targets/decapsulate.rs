//! Fuzz target `decapsulate`: encapsulated requests (both HPKE backends, X25519 and X-Wing)
//! and responses. The body is `sealgate_protocol::fuzzing::decapsulate::Target::run`, which
//! the crate's `fuzz_regressions` test also runs on every file of
//! `fuzz/corpus/decapsulate/` and `fuzz/regressions/decapsulate/` (docs/FUZZING.md).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_protocol::fuzzing::decapsulate::Target;

static TARGET: LazyLock<Target> = LazyLock::new(|| Target::new().expect("the fixed keys derive"));

fuzz_target!(|data: &[u8]| {
    TARGET.run(data);
});

//! Helpers shared by the load benchmarks (`artifact.rs`, `large.rs`).

use std::path::Path;
use std::time::Duration;

use sealgate_models::runtime;

/// The value after `name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// The median of some durations.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The ONNX Runtime environment from `ORT_DYLIB_PATH`.
pub fn env() -> &'static runtime::Environment {
    let lib = std::env::var("ORT_DYLIB_PATH").expect("set ORT_DYLIB_PATH (cargo xtask ort-path)");
    runtime::environment(Path::new(&lib)).expect("ONNX Runtime")
}

/// This process's peak RSS (VmHWM), in KiB.
pub fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

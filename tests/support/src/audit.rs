//! Checks of the audit log a gateway and the CLI write (`DATA_DIR/audit.log`): the hash
//! chain verifies, and the entries can be read back.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::sealgate;

/// `sealgate audit verify --data-dir DATA_DIR` (with the `sealgate` binary at `binary`) must pass; returns the number of entries.
#[track_caller]
pub fn assert_audit_intact(binary: impl AsRef<Path>, data_dir: &Path) -> u64 {
    let output =
        sealgate(binary, [OsStr::new("audit"), OsStr::new("verify"), OsStr::new("--data-dir"), data_dir.as_os_str()]);
    output.assert_success().assert_stdout_contains("ok: audit log intact");
    output
        .stdout
        .split("intact, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry count in '{}'", output.stdout.trim()))
}

/// The entries of `DATA_DIR/audit.log`, parsed (an empty list when there is none).
pub fn audit_entries(data_dir: &Path) -> Vec<serde_json::Value> {
    let text = fs::read_to_string(data_dir.join("audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}")))
        .collect()
}

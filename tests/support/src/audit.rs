//! Checks of the audit log a gateway and the CLI write (`DATA_DIR/audit.log`): the hash
//! chain verifies, and the entries can be read back; and a data dir of its own holding only
//! what checking a copy of a log needs (the local keyring and the wrapped audit key).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
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

/// Makes `to` (mode 0700) a data dir with the audit key of the data dir `from` and the local
/// keyring that unwraps it, but no log: tampering tests then write the log and head they
/// want checked by `sealgate audit verify --data-dir to`.
pub fn copy_audit_key(from: &Path, to: &Path) {
    let private = |dir: &Path| {
        fs::create_dir_all(dir).expect("creating a data dir");
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    };
    private(to);
    private(&to.join("kms"));
    for file in fs::read_dir(from.join("kms")).expect("the data dir's keyring").flatten() {
        fs::copy(file.path(), to.join("kms").join(file.file_name())).expect("copying the keyring");
    }
    fs::copy(from.join("audit.key"), to.join("audit.key")).expect("copying audit.key");
}

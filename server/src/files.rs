//! Writing the data directory's files: private folders, checked before use, and atomic
//! replacement.
//!
//! Every file the gateway and its commands write (TLS keys, HPKE key files, the tenant list,
//! published versions) goes through [`write_file`]: a temporary file of an unguessable name,
//! created new with the final mode, synced, then renamed over the old one, so a reader (a
//! running gateway) or a crash in the middle never sees half a file, and a symlink planted
//! in the folder is never written through. [`check_private_dir`] refuses a folder another
//! user could write to.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Creates `path` (and its parents) with mode 0700 unless it exists.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating directory {}", path.display()))
}

/// Writes a new file atomically with `mode`: a temporary file of an unguessable name created
/// with `create_new` (never following a planted symlink), synced, renamed over `path`
/// (`sealgate_models::files::replace_file`).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    sealgate_models::files::replace_file(path, contents, mode).with_context(|| format!("writing {}", path.display()))
}

/// Takes the exclusive lock of a data dir file's lock file (created if missing), held until
/// the returned file is dropped: read-change-write cycles of the key list and the tenant
/// file run one at a time across processes.
pub fn lock_exclusive(lock: &Path) -> Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .with_context(|| format!("opening {}", lock.display()))?;
    file.lock().with_context(|| format!("locking {}", lock.display()))?;
    Ok(file)
}

/// Reads a JSON file of the data dir that carries a format `version`: `None` when there is no
/// file; a file that cannot be read, does not parse as `what`, or has another version than
/// `expected` is an error naming the file (never quoting its content).
pub fn read_versioned_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    expected: u32,
    version: impl Fn(&T) -> u32,
) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let value: T =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid {what}", path.display()))?;
    let found = version(&value);
    anyhow::ensure!(
        found == expected,
        "{}: {what} version {found} is not supported (this gateway reads version {expected})",
        path.display()
    );
    Ok(Some(value))
}

/// Refuses a folder of the data dir that anyone but this process's user could change:
/// owned by another user, or writable by group or others. Whoever can write there can
/// replace a key file, the keyring or the audit log. The error names the path and the fix.
pub fn check_private_dir(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(meta.is_dir(), "{} is not a folder", path.display());
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        anyhow::bail!(
            "{} is owned by uid {}, not by uid {me} that runs sealgate, so that user could replace its keys; \
             fix: chown -R {me} {}",
            path.display(),
            meta.uid(),
            path.display()
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        anyhow::bail!(
            "{} is writable by {who} (mode {mode:04o}), who could replace its keys; fix: chmod go-w {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

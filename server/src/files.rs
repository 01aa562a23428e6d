//! Writing the data directory's files: private folders and atomic replacement.
//!
//! Every file the gateway and its commands write (TLS keys, HPKE key files, the tenant list,
//! published versions) goes through [`write_file`]: a temporary file with the final mode,
//! synced, then renamed over the old one, so a reader (a running gateway) or a crash in the
//! middle never sees half a file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

/// Writes a new file atomically (temp file + rename) with `mode`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

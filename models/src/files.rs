//! Replacing a file atomically in a folder another process may share, without trusting what
//! is already in the folder.
//!
//! Every file Sealgate writes in a data dir (the local keyring, the audit head, HPKE key
//! files, the tenant list, TLS keys) goes through [`replace_file`]: a temporary file in the
//! same folder with a name nobody can guess, created with `O_CREAT | O_EXCL` (`create_new`:
//! it fails rather than open anything already there, a symlink planted under that name
//! included, since `O_EXCL` never follows one), written with its final mode, synced, renamed
//! over the old file, and the folder synced, so a reader or a crash never sees half a file
//! and the new name survives a power cut. A temporary file left by a failure is removed.
//! [`create_file`] is the same for a file that must not exist yet (the audit key): the
//! temporary file is hard-linked to the name, which fails when anything already has it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `contents` to `path` atomically, the file created with `mode`.
pub fn replace_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, mut file) = create_temporary(path, mode)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all()).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Writes `contents` to the new file `path` atomically, created with `mode`; fails with
/// [`io::ErrorKind::AlreadyExists`] when `path` exists (as a file, a folder or a symlink,
/// which `link` never follows), and nothing is changed then.
pub fn create_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let (tmp, mut file) = create_temporary(path, mode)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all()).and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    written?;
    sync_parent(path)
}

/// A new file beside `path` named `.NAME.PID.N.RANDOM.tmp`, opened for writing; an existing
/// file of that name (only an attacker's) is never opened, another name is tried instead.
fn create_temporary(path: &Path, mode: u32) -> io::Result<(PathBuf, fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    for _ in 0..8 {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(format!("system RNG: {e}")))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(
            ".{}.{}.{n}.{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            hex::encode(random)
        ));
        match fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("no free temporary name beside {}", path.display())))
}

/// Syncs the folder of `path`, so a rename in it is on disk.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        let target = dir.path().join("keyring.json");
        // The names a predictable writer would use.
        for planted in ["keyring.json.tmp", "keyring.tmp", ".keyring.json.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        replace_file(&target, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && !n.contains("keyring.json.tmp") && n != "keyring.tmp")
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn a_created_file_never_replaces_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        create_file(&path, b"one", 0o600).unwrap();
        let again = create_file(&path, b"two", 0o600).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(dir.path().join("victim"), &planted).unwrap();
        assert_eq!(create_file(&planted, b"x", 0o600).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("victim").exists(), "the symlink was not followed");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn the_file_gets_its_mode_and_replaces_the_old_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        replace_file(&path, b"one", 0o600).unwrap();
        replace_file(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

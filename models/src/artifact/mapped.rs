//! Read-only memory maps of sealed artifacts, so frames are decrypted straight out of the
//! page cache instead of being copied into a staging buffer first.
//!
//! # The `unsafe` exception (reviewed)
//!
//! This is one of the two places in the code base that `unsafe_code = "deny"` (root
//! `Cargo.toml`) lets through, each with an `#[allow(unsafe_code)]` and this kind of
//! justification. `memmap2::Mmap::map` is `unsafe` because Rust assumes the bytes behind a
//! `&[u8]` never change, while another process can write or truncate a mapped file:
//!
//! - **Modification.** AES-GCM may read a frame's ciphertext twice (once for the tag, once
//!   to decrypt); a writer racing the gateway could then change bytes after they were
//!   authenticated. Such a writer must be able to write the artifact, so the map is used
//!   only for a regular file that no one but its owner can write (no group or other write
//!   bit) and whose owner is this process's user or root: whoever could race us could
//!   equally replace the gateway's binary or keys. Any other file takes the copying path.
//! - **Truncation.** A mapped file cut short raises `SIGBUS` on access: the process dies
//!   (fails closed) rather than reading anything wrong. The length is checked against the
//!   file's size when mapped.
//!
//! The map is read-only (`PROT_READ`), private to the process, and dropped (unmapped) as
//! soon as decryption ends; it holds ciphertext only.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use memmap2::{Advice, Mmap, MmapOptions};

/// A read-only map of a whole artifact file.
pub(super) struct Mapped {
    map: Mmap,
}

impl Mapped {
    /// The file's bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Maps `file` (of `len` bytes) read-only when it is trusted as described in the module
/// documentation; `None` when it is not, or for an empty file.
pub(super) fn map_if_trusted(file: &File, len: u64) -> std::io::Result<Option<Mapped>> {
    let meta = file.metadata()?;
    let owner_ok = meta.uid() == 0 || meta.uid() == rustix::process::geteuid().as_raw();
    if !meta.is_file() || meta.mode() & 0o022 != 0 || !owner_ok || len == 0 || meta.len() != len {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("artifact larger than the address space"))?;
    // SAFETY: read-only, private mapping of a regular file that only its owner (this
    // process's user or root) can write; see the module documentation for what a racing
    // writer or a truncation can and cannot do. The map is only read through `bytes()`,
    // whose bytes are ciphertext authenticated frame by frame.
    #[allow(unsafe_code)]
    let map = unsafe { MmapOptions::new().len(len).map(file)? };
    // Each decryption thread reads its range front to back: read ahead aggressively.
    let _ = map.advise(Advice::Sequential);
    let _ = map.advise(Advice::WillNeed);
    Ok(Some(Mapped { map }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_files_no_one_else_can_write_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sealed");
        std::fs::File::create(&path).unwrap().write_all(b"ciphertext").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(map_if_trusted(&file, 10).unwrap().unwrap().bytes(), b"ciphertext");
        // A length other than the file's (it changed since it was measured): not mapped.
        assert!(map_if_trusted(&file, 11).unwrap().is_none());
        for mode in [0o664, 0o646, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(map_if_trusted(&File::open(&path).unwrap(), 10).unwrap().is_none(), "{mode:o}");
        }
    }
}

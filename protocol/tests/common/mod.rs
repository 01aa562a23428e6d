//! Helpers shared by the protocol's integration tests.

#![allow(dead_code)]

use core::convert::Infallible;

/// The operating system's RNG in the shape the protocol crate takes.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// An RNG that replays fixed bytes, to reproduce published test vectors. It panics when
/// asked for more than it holds, which makes a test that consumes unexpected randomness fail.
pub struct ReplayRng {
    bytes: Vec<u8>,
}

impl ReplayRng {
    pub fn new(bytes: &[u8]) -> Self {
        Self { bytes: bytes.to_vec() }
    }
}

impl rand_core::TryRng for ReplayRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("the protocol only asks for bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("the protocol only asks for bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.bytes.len(), "test RNG exhausted");
        let rest = self.bytes.split_off(dst.len());
        dst.copy_from_slice(&self.bytes);
        self.bytes = rest;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for ReplayRng {}

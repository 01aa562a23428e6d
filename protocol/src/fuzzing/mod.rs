//! The bodies of the fuzz targets that exercise this crate (`fuzz/fuzz_targets/*.rs`, run by
//! `cargo xtask fuzz`; docs/FUZZING.md), for the fuzz targets and for the stable
//! `tests/fuzz_regressions.rs`, which replays every committed corpus and regression input
//! through the very same functions. Not part of the crate's API: hidden from its docs, and
//! free to change with the targets.
//!
//! Each target is a `Target` struct in its own module: `new` builds what stays fixed
//! between inputs (gateway keys, a client request), `run` takes one input and returns true
//! when it was accepted as valid, and `seeds` makes valid inputs to start a corpus from. The
//! property every target checks is the crate's: no input panics; every failure is an
//! [`Error`](crate::Error). Some targets also assert what must hold of what they accept
//! (a decoded value encodes back to itself, both HPKE backends agree, the incremental
//! decoder agrees with the one-shot one): an assertion that fails is a finding too.

pub mod bhttp;
pub mod chunked;
pub mod decapsulate;
pub mod key_config;

use alloc::string::String;
use alloc::vec::Vec;

use crate::{GatewayKey, GatewayKeys, Kem, KeyConfig, Result, SymmetricSuite};

/// A named valid input, to start a corpus from.
pub type Seed = (String, Vec<u8>);

/// A deterministic stand-in for an RNG (a 64-bit linear congruential generator), so that
/// runs and seeds reproduce. **Not random**: only for fuzzing.
#[derive(Debug, Clone)]
pub struct FixedRng(u64);

impl FixedRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
        for byte in dst {
            *byte = (self.try_next_u64()? >> 56) as u8;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}

/// The key identifier of the fixed X25519 gateway key.
pub const X25519_KEY_ID: u8 = 1;
/// The key identifier of the fixed X-Wing gateway key.
pub const XWING_KEY_ID: u8 = 2;

/// The fixed gateway keys every target decrypts with: X25519 (key id 1) and X-Wing (key id
/// 2), every symmetric suite, derived from fixed bytes, on `backend`. With the key id and
/// algorithm bytes right, an input reaches the KEM and the AEAD.
pub fn gateway_keys(backend: crate::Backend) -> Result<GatewayKeys> {
    let keys = [(X25519_KEY_ID, Kem::X25519HkdfSha256), (XWING_KEY_ID, Kem::XWing)]
        .into_iter()
        .map(|(id, kem)| {
            GatewayKey::derive(id, kem, SymmetricSuite::ALL.to_vec(), &[id; 32])
                .and_then(|key| key.with_backend(backend))
        })
        .collect::<Result<Vec<_>>>()?;
    GatewayKeys::new(keys)
}

/// What the decrypting targets (`decapsulate`, `chunked`) keep between inputs: the fixed
/// gateway keys on every backend, and the configuration (the X25519 key) of the fixed
/// client request whose responses they open.
#[derive(Debug)]
pub struct Gateways {
    /// One [`gateway_keys`] per [`crate::Backend`].
    pub gateways: Vec<GatewayKeys>,
    /// The X25519 key's configuration, for the fixed client request.
    pub client_config: KeyConfig,
}

impl Gateways {
    /// Derives the fixed keys on every backend.
    pub fn new() -> Result<Self> {
        let gateways = crate::Backend::ALL.iter().map(|&backend| gateway_keys(backend)).collect::<Result<Vec<_>>>()?;
        let client_config = gateway_keys(crate::Backend::default())?
            .configs()
            .into_iter()
            .find(|c| c.key_id() == X25519_KEY_ID)
            .ok_or(crate::Error::UnknownKeyId(X25519_KEY_ID))?;
        Ok(Self { gateways, client_config })
    }
}

/// How the first byte of an input slices the rest into pushes for an incremental parser:
/// pieces of 1 to 64 bytes, so the fuzzer also explores where pushes split items. Returns
/// the piece length and the rest of the input.
pub fn slicing(data: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((usize::from(first % 64) + 1, rest))
}

/// A sliced seed: `body` prefixed with the byte that makes [`slicing`] cut it into pieces
/// of `piece` bytes (1 to 64).
pub fn sliced(piece: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push((piece.clamp(1, 64) - 1) as u8);
    out.extend_from_slice(body);
    out
}

/// A short name of a suite's AEAD, for seed file names.
fn aead_name(suite: SymmetricSuite) -> &'static str {
    match suite.aead {
        crate::Aead::Aes128Gcm => "aes128gcm",
        crate::Aead::Aes256Gcm => "aes256gcm",
        crate::Aead::ChaCha20Poly1305 => "chacha20poly1305",
    }
}

/// What [`replay`] ran: how many corpus and regression files, and how many were accepted.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Files in `corpus/<target>/`.
    pub corpus: usize,
    /// Files in `regressions/<target>/` (inputs that once failed, committed by name).
    pub regressions: usize,
    /// Files the target accepted as valid.
    pub accepted: usize,
}

/// Runs every file of `fuzz_dir/corpus/<target>/` and `fuzz_dir/regressions/<target>/`
/// (either may be missing) through `run`, for the stable regression tests. A panic is
/// re-raised with the file's path, so the failing input is named.
#[cfg(feature = "std")]
pub fn replay(fuzz_dir: &std::path::Path, target: &str, run: impl Fn(&[u8]) -> bool) -> std::io::Result<Replayed> {
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    let mut replayed = Replayed { corpus: 0, regressions: 0, accepted: 0 };
    for (folder, count) in [("corpus", &mut replayed.corpus), ("regressions", &mut replayed.regressions)] {
        let dir = fuzz_dir.join(folder).join(target);
        let mut paths = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md")) {
            let bytes = std::fs::read(path)?;
            match catch_unwind(AssertUnwindSafe(|| run(&bytes))) {
                Ok(accepted) => replayed.accepted += usize::from(accepted),
                Err(panic) => {
                    std::eprintln!("fuzz input {} panicked", path.display());
                    resume_unwind(panic)
                }
            }
            *count += 1;
        }
    }
    Ok(replayed)
}

/// Writes `seeds` into `fuzz_dir/corpus/<target>/` as `seed-<name>` (replacing files of the
/// same name), for `cargo xtask fuzz --seeds`. Returns how many were written.
#[cfg(feature = "std")]
pub fn write_seeds(fuzz_dir: &std::path::Path, target: &str, seeds: &[Seed]) -> std::io::Result<usize> {
    let dir = fuzz_dir.join("corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in seeds {
        std::fs::write(dir.join(alloc::format!("seed-{name}")), bytes)?;
    }
    Ok(seeds.len())
}

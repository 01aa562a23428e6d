//! Arbitrary bytes into the streaming parsers a gateway and a client run on network data:
//! the chunked OHTTP request header and request chunks (`RequestHeaderReader`,
//! `GatewayKeys::decapsulate_chunked`, `RequestOpener`), a chunked response
//! (`ResponseOpener`), and the incremental Binary HTTP decoders (`bhttp::stream::Decoder`).
//! The first byte picks how the rest is sliced, so the fuzzer also explores where pushes
//! split items. The property: no input panics; every failure is an `Error`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_protocol::bhttp::stream::Decoder;
use sealgate_protocol::chunked::{ChunkedClientRequest, RequestHeaderReader};
use sealgate_protocol::{GatewayKey, GatewayKeys, Kem, SymmetricSuite, rand_core};

/// An X25519 key with id 1 and an X-Wing key with id 2, on the default backend.
static GATEWAY: LazyLock<GatewayKeys> = LazyLock::new(|| {
    let keys = [(1, Kem::X25519HkdfSha256), (2, Kem::XWing)].map(|(id, kem)| {
        GatewayKey::derive(id, kem, SymmetricSuite::ALL.to_vec(), &[id; 32]).expect("fixed test keys derive")
    });
    GatewayKeys::new(keys.to_vec()).expect("distinct key ids")
});

fuzz_target!(|data: &[u8]| {
    let Some((&slice, data)) = data.split_first() else { return };
    let slice = usize::from(slice % 64) + 1;

    // A request: header bytes, then chunks.
    let mut header = RequestHeaderReader::new();
    let mut opener = None;
    for mut piece in data.chunks(slice) {
        if opener.is_none() {
            let Ok(used) = header.push(piece) else { break };
            piece = &piece[used..];
            if !header.is_complete() {
                continue;
            }
            match GATEWAY.decapsulate_chunked(std::mem::take(&mut header)) {
                Ok((o, _)) => opener = Some(o),
                Err(_) => break,
            }
        }
        if let Some(o) = opener.as_mut() {
            let _ = o.push(piece);
        }
    }
    if let Some(o) = opener {
        let _ = o.finish();
    }

    // A response to a fixed request: the nonce, then chunks.
    let config = &GATEWAY.configs()[0];
    let mut rng = rand_core::UnwrapErr(SeedRng(7));
    if let Ok((_, _, mut response)) =
        ChunkedClientRequest::new(config, SymmetricSuite::ALL[0]).and_then(|r| r.start(&mut rng))
    {
        for piece in data.chunks(slice) {
            let _ = response.push(piece);
        }
        let _ = response.finish();
    }

    // Binary HTTP, both kinds, in the same slicing.
    for mut decoder in [Decoder::request(), Decoder::response()] {
        for piece in data.chunks(slice) {
            let _ = decoder.push(piece);
        }
        let _ = decoder.finish();
    }
});

/// A deterministic stand-in for the client's RNG, so runs reproduce.
struct SeedRng(u64);

impl rand_core::TryRng for SeedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            *byte = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeedRng {}

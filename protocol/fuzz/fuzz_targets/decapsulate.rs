//! Arbitrary bytes into everything a gateway parses from the network: the encapsulated
//! request (`GatewayKeys::decapsulate`, on both HPKE backends and for both KEMs), key
//! configurations and their list, and Binary HTTP requests and responses. The property is
//! the crate's: no input panics, every failure is an `Error`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sealgate_protocol::{Backend, GatewayKey, GatewayKeys, Kem, KeyConfig, SymmetricSuite, bhttp, rand_core};

/// Keys with fixed ids (X25519 = 1, X-Wing = 2), one gateway per backend. With the key id and
/// KEM bytes right, the fuzzer reaches the KEM and the AEAD.
static GATEWAYS: LazyLock<Vec<GatewayKeys>> = LazyLock::new(|| {
    Backend::ALL
        .iter()
        .map(|&backend| {
            let keys = [(1, Kem::X25519HkdfSha256), (2, Kem::XWing)].map(|(id, kem)| {
                GatewayKey::derive(id, kem, SymmetricSuite::ALL.to_vec(), &[id; 32])
                    .and_then(|key| key.with_backend(backend))
                    .expect("fixed test keys derive")
            });
            GatewayKeys::new(keys.to_vec()).expect("distinct key ids")
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    for gateway in GATEWAYS.iter() {
        if let Ok((request, responder)) = gateway.decapsulate(data) {
            // Only a genuine encryption to these keys gets here; exercise the response too.
            let _ = bhttp::Request::decode(&request);
            let _ = responder.encapsulate(data, &mut rand_core::UnwrapErr(SeedRng(data.len() as u64)));
        }
    }
    let _ = KeyConfig::decode(data);
    let _ = KeyConfig::decode_list(data);
    let _ = bhttp::Request::decode(data);
    let _ = bhttp::Response::decode(data);
});

/// A deterministic stand-in for the response nonce's RNG, so runs reproduce.
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

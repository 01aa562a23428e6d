//! # sealgate-client-core
//!
//! The Sealgate client without I/O: everything a client decides, written once. Which of the
//! gateway's key configurations to use (pin first, then the preferred KEM and AEAD), what the
//! inner request carries (JSON, the bearer token, only inside the encryption), and what an
//! answer means (decrypted response, "refetch the keys and retry once", overloaded, refused,
//! not a gateway, tampered), and when the cached key configuration is fetched again
//! ([`KeyCache`]: max-age, generations). Streamed NDJSON exchanges (chunked OHTTP) are
//! written here once too: [`Session::start_stream`], [`StreamSender`], [`StreamReceiver`]
//! and [`line_error`]. The Rust SDK (`client-sdk`, with reqwest), the
//! browser package (`wasm-client`, with `fetch`), `sealgate-load` (through the SDK) and the
//! end-to-end harness are shells around it that only move bytes.
//!
//! It sits beside the protocol crate rather than inside it: `sealgate-protocol` is the wire
//! format both ends share (the gateway compiles it too), while this is one side's policy.
//! Like the protocol crate it is `no_std` + `alloc`, takes randomness from the caller and
//! compiles for `wasm32-unknown-unknown`.
//!
//! ```
//! use sealgate_client_core::{Finished, OuterResponse, Preferences};
//! use sealgate_protocol::{GatewayKey, GatewayKeys, Kem, SymmetricSuite, bhttp, media_type};
//! # struct Rng(u8);
//! # impl rand_core::TryRng for Rng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(0) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { Ok(0) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> { self.0 += 1; d.fill(self.0); Ok(()) }
//! # }
//! # impl rand_core::TryCryptoRng for Rng {}
//! # let mut rng = Rng(0); // In real code: getrandom::SysRng wrapped in rand_core::UnwrapErr.
//! # let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng).unwrap();
//! # let gateway = GatewayKeys::new(vec![key]).unwrap();
//! let preferences = Preferences::new("gateway.example:8443");
//! // GET https://gateway.example:8443/.well-known/ohttp-gateway answered:
//! let keys = gateway.encoded_configs();
//! let session = preferences.discover(&OuterResponse::new(200, media_type::OHTTP_KEYS, &keys))?;
//!
//! // POST the sealed request as message/ohttp-req ...
//! let now = 1_796_150_000; // UNIX seconds, from the caller's clock: the inner `Date`.
//! let sealed = session.prepare("GET", "/v2/models", &[], Vec::new(), now, &mut rng)?;
//! # let (inner, responder) = gateway.decapsulate(&sealed.encapsulated).unwrap();
//! # let answer = bhttp::Response::new(200, vec![], b"{\"models\":[]}".to_vec());
//! # let body = responder.encapsulate(&answer.encode(), &mut rng).unwrap();
//! // ... and hand whatever came back to the pending exchange.
//! match sealed.pending.finish(&OuterResponse::new(200, media_type::OHTTP_RESPONSE, &body))? {
//!     Finished::Answer(response) => assert_eq!(response.body, b"{\"models\":[]}"),
//!     Finished::RefetchKeys(_) => unreachable!("refetch the key configuration, send once more"),
//! }
//! # Ok::<(), sealgate_client_core::Error>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
// Gateway answers are untrusted input: no unwrap, expect or indexing outside tests.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod date;
mod error;
mod json;
mod key_cache;
mod session;
mod stream;

use alloc::string::String;

pub use date::{clock_correction, http_date, parse_http_date, set_date};
pub use error::{Error, Result};
pub use key_cache::{Cached, KeyCache};
pub use session::{Finished, OuterResponse, Pending, Preferences, Prepared, Session, check_status, choose, essence};
pub use stream::{
    DEFAULT_MAX_LINE, MIN_LINE_BYTES, NDJSON, STREAM_MAX_CHUNK, StreamEvent, StreamReceiver, StreamSender, StreamStart,
    line_error,
};

use sealgate_protocol::{Aead, Kem};

/// Lowercase hex, as `sealgate serve` prints key configuration fingerprints.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|b| [b >> 4, b & 0xf]).filter_map(|n| char::from_digit(u32::from(n), 16)).collect()
}

/// Parses a key configuration fingerprint: 64 hexadecimal characters (either case),
/// surrounding space ignored.
pub fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let digits = text.trim().as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut pin = [0u8; 32];
    for (byte, pair) in pin.iter_mut().zip(digits.chunks_exact(2)) {
        let nibble = |i: usize| pair.get(i).and_then(|&c| char::from(c).to_digit(16));
        *byte = u8::try_from(nibble(0)? << 4 | nibble(1)?).ok()?;
    }
    Some(pin)
}

/// Parses an AEAD name as the RFCs spell it, ignoring case: `AES-128-GCM`, `AES-256-GCM`,
/// `ChaCha20-Poly1305`.
pub fn parse_aead(name: &str) -> Option<Aead> {
    [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305].into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
}

/// Parses a KEM name, ignoring case: `X25519` or `X-Wing` (`sealgate_protocol::Kem::name`).
pub fn parse_kem(name: &str) -> Option<Kem> {
    Kem::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests;

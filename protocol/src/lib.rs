//! # sealgate-protocol
//!
//! The wire protocol of Sealgate, without any I/O: Oblivious HTTP (RFC 9458) key
//! configurations, encapsulated requests and responses, and the Binary HTTP (RFC 9292)
//! messages they carry. Bytes go in, bytes come out; the caller supplies randomness, so the
//! same code runs in the gateway, the Rust SDK and the browser (wasm32), and tests can
//! reproduce RFC 9458 Appendix A byte for byte.
//!
//! [`chunked`] streams both directions (draft-ietf-ohai-chunked-ohttp-08), sealing and
//! opening chunk by chunk, with Binary HTTP written and read incrementally by
//! [`bhttp::stream`].
//!
//! The crate is `no_std` + `alloc`. It knows nothing of sockets, tokio, axum or ONNX Runtime.
//!
//! KEMs: DHKEM(X25519, HKDF-SHA256) and the post-quantum hybrid X-Wing; KDF HKDF-SHA256;
//! AEADs AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305. Two interchangeable HPKE
//! [`Backend`]s do the cryptography: the portable `hpke` crate, and (cargo feature `aws-lc`,
//! on by default, which needs `std`) RFC 9180 composed from aws-lc-rs primitives, about twice
//! as fast per request on the gateway. Keys and requests use [`Backend::default`] unless told
//! otherwise; the browser build (`default-features = false`) has only the portable one.
//!
//! ```
//! use sealgate_protocol::{bhttp, ClientRequest, GatewayKey, GatewayKeys, Kem, KeyConfig, SymmetricSuite};
//! # struct Rng(u8);
//! # impl rand_core::TryRng for Rng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(0) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { Ok(0) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> { self.0 += 1; d.fill(self.0); Ok(()) }
//! # }
//! # impl rand_core::TryCryptoRng for Rng {}
//! # let mut rng = Rng(0); // In real code: getrandom::SysRng wrapped in rand_core::UnwrapErr.
//! // The gateway holds a key and publishes its configuration.
//! let key = GatewayKey::generate(1, Kem::X25519HkdfSha256, SymmetricSuite::ALL.to_vec(), &mut rng)?;
//! let gateway = GatewayKeys::new(vec![key])?;
//! let published = gateway.encoded_configs();
//!
//! // The client picks a configuration and encrypts a Binary HTTP request to it.
//! let config = &KeyConfig::decode_list(&published)?[0];
//! let mut request = bhttp::Request::new("GET", "https", "gateway.example", "/v2/models");
//! let (encapsulated, pending) =
//!     ClientRequest::new(config, SymmetricSuite::ALL[0])?.encapsulate(&request.encode(), &mut rng)?;
//!
//! // The gateway decrypts, answers, and encrypts the answer.
//! let (inner, responder) = gateway.decapsulate(&encapsulated)?;
//! assert_eq!(bhttp::Request::decode(&inner)?.path, "/v2/models");
//! let answer = bhttp::Response::new(200, vec![], b"{}".to_vec());
//! let encrypted = responder.encapsulate(&answer.encode(), &mut rng)?;
//!
//! // Only the client can read it.
//! let plain = bhttp::Response::decode(&pending.decapsulate(&encrypted)?)?;
//! assert_eq!(plain.status, 200);
//! # Ok::<(), sealgate_protocol::Error>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
// Untrusted bytes must never panic the gateway: no unwrap, expect or indexing outside tests.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod bhttp;
pub mod chunked;
mod crypto;
mod error;
// The fuzz targets' bodies (fuzz/ and tests/fuzz_regressions.rs), not part of the API.
#[doc(hidden)]
pub mod fuzzing;
pub mod inference;
mod key_config;
mod request;
mod response;
mod suite;
#[cfg(feature = "tls")]
pub mod tls;
pub mod varint;

pub use crypto::Backend;
pub use error::{Error, Result};
pub use key_config::KeyConfig;
pub use rand_core;
pub use request::{ClientRequest, GatewayKey, GatewayKeys, INFO_REQUEST, PrecomputedRequest, RequestHeader};
pub use response::{ClientResponse, LABEL_RESPONSE, ServerResponse};
pub use suite::{Aead, Kdf, Kem, Suite, SymmetricSuite};

/// HTTP media types of the outer (relay-visible) messages.
pub mod media_type {
    /// A list of key configurations (RFC 9458 section 3.2).
    pub const OHTTP_KEYS: &str = "application/ohttp-keys";
    /// An encapsulated request (RFC 9458 section 4.1).
    pub const OHTTP_REQUEST: &str = "message/ohttp-req";
    /// An encapsulated response (RFC 9458 section 4.1).
    pub const OHTTP_RESPONSE: &str = "message/ohttp-res";
    /// A chunked encapsulated request (draft-ietf-ohai-chunked-ohttp-08 section 3).
    pub const OHTTP_CHUNKED_REQUEST: &str = "message/ohttp-chunked-req";
    /// A chunked encapsulated response (draft-ietf-ohai-chunked-ohttp-08 section 3).
    pub const OHTTP_CHUNKED_RESPONSE: &str = "message/ohttp-chunked-res";
    /// Problem details (RFC 9457).
    pub const PROBLEM_JSON: &str = "application/problem+json";
}

/// Problem types (RFC 9457) that carry protocol meaning.
pub mod problem_type {
    /// The key configuration used is not (or no longer) accepted: refetch keys
    /// (RFC 9458 section 5.3).
    pub const OHTTP_KEY: &str = "https://iana.org/assignments/http-problem-types#ohttp-key";
    /// The request's `date` is outside the accepted window (RFC 9458 section 6.5).
    pub const DATE: &str = "https://iana.org/assignments/http-problem-types#date";
}

/// The path of the gateway resource and its key configuration (RFC 9540).
pub const GATEWAY_PATH: &str = "/.well-known/ohttp-gateway";

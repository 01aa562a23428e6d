//! The cryptographic backend: HPKE (RFC 9180) contexts and the OHTTP response key schedule.
//!
//! Everything above this module speaks in algorithm identifiers and byte strings; only this
//! module knows which library does the work. Today that is the `hpke` crate (RustCrypto,
//! with x25519-dalek inside), which is portable and compiles to wasm32. No primitive is
//! implemented here: the module only dispatches on the runtime algorithm choice to the
//! statically typed library APIs.

mod rust_hpke;
mod symmetric;

pub(crate) use rust_hpke::{SecretKey, setup_receiver, setup_sender};
pub(crate) use symmetric::{aead_open, aead_seal, hkdf_sha256_expand, hkdf_sha256_extract};

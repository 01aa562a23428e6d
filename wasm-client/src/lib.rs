//! # sealgate-wasm
//!
//! The browser client of Sealgate: a page encrypts each inference request with HPKE to the
//! gateway's key (Oblivious HTTP, RFC 9458) before it leaves the browser, so the plaintext
//! exists only in the page and in the model-serving process, whatever proxies, relays, CDNs
//! or browser extensions with network access sit in between. It is the `sealgate-protocol`
//! crate compiled to WebAssembly, with `fetch` for I/O and a small JS API:
//!
//! ```js
//! import init, { Sealgate } from "sealgate-wasm";
//! await init();
//! const gw = await Sealgate.connect("https://gateway.example", { token, keyConfigSha256 });
//! const result = await gw.infer("breast-cancer", {
//!   inputs: [{ name: "input", shape: [1, 30], datatype: "FP32", data: features }],
//! });
//! result.outputs.find((o) => o.name === "label").data; // [0] or [1]
//! ```
//!
//! Every failure rejects with a JS `Error` named `SealgateError` carrying a `code`
//! (see [`error`]); texts never contain request data.
//!
//! Layout: [`client`] is the JS class and the flow; [`exchange`] the I/O-free OHTTP steps;
//! [`fetch`] the only I/O; [`json`] reads answers with `JSON.parse`; [`tensor`] checks the page's tensors before anything is sent;
//! [`options`] reads `connect`'s options; [`stream`] is `inferStream`, batches of chunked exchanges behind an async iterator; `typescript` declares the plain-object types.
//! `cargo xtask wasm` builds the package into `wasm-client/pkg/`.

pub mod client;
pub mod error;
pub mod exchange;
pub mod fetch;
pub mod json;
pub mod options;
pub mod stream;
pub mod tensor;
mod typescript;

pub use client::Sealgate;

/// Talc instead of the default dlmalloc: about 5 KB smaller in the module and faster for the
/// many small allocations of one request (see docs/PERFORMANCE.md).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
pub use error::ClientError;

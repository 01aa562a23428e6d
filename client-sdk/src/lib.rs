//! # sealgate-client
//!
//! The Rust SDK for Sealgate. Every call is a Binary HTTP request encrypted with HPKE to
//! the gateway's key (Oblivious HTTP, RFC 9458) and sent over TLS 1.3; relays, load
//! balancers and log pipelines between you and the model see only ciphertext.
//!
//! ```no_run
//! use sealgate_client::Client;
//! use sealgate_client::inference::{DataType, InferenceRequest, InputTensor, TensorData};
//!
//! # async fn run() -> Result<(), sealgate_client::Error> {
//! let client = Client::builder("https://127.0.0.1:8443")
//!     .ca_certificate_file(".sealgate/tls/ca.pem")?
//!     .build()?;
//! let request = InferenceRequest {
//!     id: None,
//!     inputs: vec![InputTensor {
//!         name: "input".into(),
//!         shape: vec![1, 20],
//!         datatype: DataType::Fp32,
//!         data: TensorData::Float(vec![0.0; 20]),
//!     }],
//!     outputs: None,
//! };
//! let answer = client.infer("credit-risk", &request).await?;
//! println!("{:?}", answer.output("label"));
//! # Ok(()) }
//! ```
//!
//! The client fetches the gateway's key configuration once and caches it; when the gateway
//! answers with the `ohttp-key` problem (keys were rotated) it refetches once and retries.
//!
//! Batches stream: [`Client::infer_stream`] sends a [`Stream`] of requests as one chunked
//! OHTTP request (NDJSON inside the encryption) and yields each answer as it arrives, in
//! order; a bad request is one `Err` and the stream goes on.

mod client;
mod error;
mod stream;
mod token;

pub use client::{Client, ClientBuilder, ExchangeTimings, HttpVersion};
pub use error::{BoxedCause, Error, ExchangeError, Report, Result};
pub use futures_core::Stream;
pub use sealgate_client_core::{check_status, http_date, line_error, parse_http_date, set_date};
pub use sealgate_protocol::inference;
pub use sealgate_protocol::{Aead, Kem, KeyConfig, bhttp};
pub use stream::READ_AHEAD;
pub use token::read_token_file;

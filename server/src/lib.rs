//! # sealgate-server
//!
//! The library half of the `sealgate` binary: the parts that the binary, its benchmarks
//! and its tests all call. [`tenants`] is who may call and how often (bearer tokens checked
//! inside the encryption); [`files`] writes the data directory's files atomically;
//! [`metrics`] is the Prometheus registry the gateway updates on every request; [`replay`]
//! the anti-replay checks of RFC 9458 section 6.5 (a `Date` window, each `enc` once), kept
//! in memory or in a Redis the replicas share ([`redis`]). The
//! gateway itself (`serve`) and the other commands live in the binary (`src/main.rs`).
//!
//! ```
//! use sealgate_server::tenants::{Directory, ModelAllowlist, TenantSpec, Token};
//!
//! // A tenant allowed one model, as `sealgate tenants add` would create it.
//! let token = Token::generate();
//! let spec = TenantSpec::new("clinic", ModelAllowlist::only(["breast-cancer"]), None, None).unwrap();
//! let directory = Directory::from_tenants(vec![spec.with_token(&token, 0)], false);
//! let header = format!("Bearer {}", token.expose());
//! let grant = directory.authorize(Some(header.as_bytes()), Some("breast-cancer")).unwrap();
//! assert_eq!(grant.tenant(), "clinic");
//! assert!(directory.authorize(Some(header.as_bytes()), Some("credit-risk")).is_err());
//! ```

pub mod files;
pub mod metrics;
pub mod redis;
pub mod replay;
pub mod tenants;

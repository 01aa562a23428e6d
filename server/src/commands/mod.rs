//! The key and artifact commands of the `sealgate` binary: `seal`, `verify`, `publish`, `rewrap`,
//! `kms ...`, `audit verify`, `tenants ...` and `keys ...`. `serve` has a folder of its own (`serve/`).

pub mod audit;
pub mod keys;
pub mod kms;
pub mod publish;
pub mod seal;
pub mod tenants;
pub mod verify;

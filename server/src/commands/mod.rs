//! The key and artifact commands of the `sealgate` binary: `seal`, `verify`, `rewrap`,
//! `kms ...` and `audit verify`. `serve` lives in `main.rs`.

pub mod audit;
pub mod kms;
pub mod seal;
pub mod verify;

//! The browser package's dependency tree holds no server-side code: no async runtime, no
//! ONNX Runtime, no KMS SDK, no native TLS or HTTP client.
//!
//! What a page downloads should be the OHTTP client and nothing else, and a dependency that
//! slips in through a feature (tokio through a "full" feature, reqwest through a helper
//! crate) would grow the module and widen what a security review must read. `cargo tree`
//! for the wasm target is the ground truth, so this test asks it (ARCHITECTURE.md lists the
//! rule as an invariant).

#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;
use std::process::Command;

/// Crate names (or prefixes ending in `-`) that must never be in the browser package.
const FORBIDDEN: [&str; 14] = [
    "tokio",
    "ort",
    "ort-sys",
    "aws-",
    "cryptoki",
    "reqwest",
    "hyper",
    "axum",
    "tower",
    "rustls",
    "ring",
    "openssl",
    "mio",
    "sealgate-models",
];

#[test]
fn the_browser_package_pulls_no_server_dependencies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("wasm-client/ sits in the checkout");
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["tree", "--offline", "-p", "sealgate-wasm", "--target", "wasm32-unknown-unknown", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("running cargo tree");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cargo tree failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let names: Vec<&str> = text.lines().filter_map(|line| line.split_whitespace().next()).collect();
    // The tree is real: the package and its protocol crate are in it.
    for needed in ["sealgate-wasm", "sealgate-client-core", "sealgate-protocol", "wasm-bindgen", "hpke"] {
        assert!(names.contains(&needed), "{needed} missing from the tree:\n{text}");
    }
    let bad: Vec<&&str> = names
        .iter()
        .filter(|name| FORBIDDEN.iter().any(|f| if f.ends_with('-') { name.starts_with(f) } else { *name == f }))
        .collect();
    assert!(bad.is_empty(), "server-side crates in the browser package: {bad:?}\n{text}");
}

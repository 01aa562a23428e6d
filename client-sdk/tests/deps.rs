//! The SDK's dependency tree holds no load-tool code: an application that depends on
//! `sealgate-client` must not compile clap or hdrhistogram (the `sealgate-load` crate in
//! `client-sdk/load/` has them). `cargo tree` is the ground truth.

use std::path::Path;
use std::process::Command;

#[test]
fn the_sdk_pulls_no_load_tool_dependencies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("client-sdk/ sits in the checkout");
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["tree", "--offline", "-p", "sealgate-client", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("running cargo tree");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cargo tree failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let names: Vec<&str> = text.lines().filter_map(|line| line.split_whitespace().next()).collect();
    for needed in ["sealgate-client", "sealgate-protocol", "reqwest"] {
        assert!(names.contains(&needed), "{needed} missing from the tree:\n{text}");
    }
    for forbidden in ["clap", "clap_builder", "hdrhistogram", "sealgate-load"] {
        assert!(!names.contains(&forbidden), "{forbidden} is in the SDK's dependency tree:\n{text}");
    }
}

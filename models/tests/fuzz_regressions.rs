//! The fuzz targets of this crate on stable Rust: every committed corpus file
//! (`fuzz/corpus/<target>/`) and every input that once made a target fail
//! (`fuzz/regressions/<target>/`) runs through the same body the fuzz target calls
//! (`sealgate_models::fuzzing`), so a fixed finding stays fixed without nightly or
//! libFuzzer. The seeds each target makes get the verdict they were made for. No ONNX
//! Runtime is needed: nothing here builds a session. docs/FUZZING.md describes the campaigns.
//!
//! Rewrite the seed files (after changing what a seed generator makes):
//! `cargo test -p sealgate-models --test fuzz_regressions -- --ignored write_seeds`.

use std::path::PathBuf;

use sealgate_models::fuzzing::{artifact, kserve, onnx_scan};
use sealgate_models::onnx_scan::references;
use sealgate_protocol::fuzzing as replay_tools;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

/// Replays `target`'s corpus and regressions through `run`; the corpus must hold at least
/// `min_corpus` files (a corpus that went missing would otherwise pass silently).
fn replay(target: &str, min_corpus: usize, run: impl Fn(&[u8]) -> bool) {
    let replayed = replay_tools::replay(&fuzz_dir(), target, run).unwrap();
    assert!(
        replayed.corpus >= min_corpus,
        "fuzz/corpus/{target}/ holds {} files, expected at least {min_corpus}",
        replayed.corpus
    );
    assert!(replayed.accepted > 0, "no input of fuzz/corpus/{target}/ is accepted: {replayed:?}");
}

#[test]
fn artifact_corpus_and_regressions() {
    let target = artifact::Target::new().unwrap();
    replay("artifact", 4, |data| target.run(data));
}

#[test]
fn artifact_seeds_open_unless_tampered() {
    let target = artifact::Target::new().unwrap();
    let seeds = target.seeds();
    assert!(seeds.iter().filter(|(name, _)| name.contains("tampered")).count() >= 10);
    for (name, bytes) in &seeds {
        assert_eq!(target.run(bytes), !name.contains("tampered"), "seed {name}");
    }
}

#[test]
fn onnx_scan_corpus_and_regressions() {
    let target = onnx_scan::Target::new();
    replay("onnx_scan", 4, |data| target.run(data));
}

#[test]
fn onnx_scan_seeds_scan_and_find_what_they_hold() {
    let target = onnx_scan::Target::new();
    let seeds = target.seeds();
    assert_eq!(seeds.len(), 9, "a seed model is missing from the repository");
    for (name, bytes) in &seeds {
        assert!(target.run(bytes), "seed {name}");
        let found = references(bytes).unwrap();
        match name.as_str() {
            "demo-breast-cancer" | "gather" => assert!(found.is_empty(), "{name}"),
            "external-function-attr" => assert!(!found.elsewhere.is_empty(), "{name}"),
            "minimal-external-initializer" => {
                assert_eq!(found.files(), ["weights.bin"]);
                assert_eq!(found.initializers[0].length, Some(16));
            }
            _ => assert!(!found.initializers.is_empty(), "{name}"),
        }
    }
}

#[test]
fn kserve_corpus_and_regressions() {
    let target = kserve::Target::new();
    replay("kserve", 4, |data| target.run(data));
}

#[test]
fn kserve_seeds_parse_as_requests_or_answers() {
    let target = kserve::Target::new();
    let seeds = target.seeds();
    assert!(seeds.iter().any(|(name, _)| name == "credit-risk-example"), "the demo examples are seeds");
    for (name, bytes) in &seeds {
        // NDJSON batches and answers are not one request; everything else is (refused ones
        // included: they parse, and the check refuses them).
        let request =
            !(name.starts_with("ndjson-") || ["response", "metadata", "model-list", "error"].contains(&name.as_str()));
        assert_eq!(target.run(bytes), request, "seed {name}");
    }
}

/// Writes every target's seeds into `fuzz/corpus/` (run explicitly; `cargo xtask fuzz
/// --seeds` does).
#[test]
#[ignore = "writes into fuzz/corpus/"]
fn write_seeds() {
    let dir = fuzz_dir();
    replay_tools::write_seeds(&dir, "artifact", &artifact::Target::new().unwrap().seeds()).unwrap();
    replay_tools::write_seeds(&dir, "onnx_scan", &onnx_scan::Target::new().seeds()).unwrap();
    replay_tools::write_seeds(&dir, "kserve", &kserve::Target::new().seeds()).unwrap();
}

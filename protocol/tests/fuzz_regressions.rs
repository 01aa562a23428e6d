//! The fuzz targets of this crate on stable Rust: every committed corpus file
//! (`fuzz/corpus/<target>/`) and every input that once made a target fail
//! (`fuzz/regressions/<target>/`) runs through the same body the fuzz target calls
//! (`sealgate_protocol::fuzzing`), so a fixed finding stays fixed without nightly or
//! libFuzzer. The seeds each target makes must be accepted: they are the valid inputs the
//! corpus grew from. docs/FUZZING.md describes the campaigns.
//!
//! Rewrite the seed files (after changing what a seed generator makes):
//! `cargo test -p sealgate-protocol --test fuzz_regressions -- --ignored write_seeds`.

use std::path::PathBuf;

use sealgate_protocol::fuzzing::{self, Seed, bhttp, chunked, decapsulate, key_config};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

/// Replays `target`'s corpus and regressions through `run`; the corpus must hold at least
/// `min_corpus` files (a corpus that went missing would otherwise pass silently).
fn replay(target: &str, min_corpus: usize, run: impl Fn(&[u8]) -> bool) {
    let replayed = fuzzing::replay(&fuzz_dir(), target, run).unwrap();
    assert!(
        replayed.corpus >= min_corpus,
        "fuzz/corpus/{target}/ holds {} files, expected at least {min_corpus}",
        replayed.corpus
    );
    assert!(replayed.accepted > 0, "no input of fuzz/corpus/{target}/ is accepted: {replayed:?}");
}

/// Every seed must be accepted.
fn seeds_accepted(seeds: &[Seed], run: impl Fn(&[u8]) -> bool) {
    assert!(!seeds.is_empty());
    for (name, bytes) in seeds {
        assert!(run(bytes), "seed {name} is not accepted");
    }
}

#[test]
fn key_config_corpus_and_regressions() {
    let target = key_config::Target::new();
    replay("key_config", 4, |data| target.run(data));
}

#[test]
fn key_config_seeds_are_accepted() {
    let target = key_config::Target::new();
    seeds_accepted(&target.seeds(), |data| target.run(data));
}

#[test]
fn decapsulate_corpus_and_regressions() {
    let target = decapsulate::Target::new().unwrap();
    replay("decapsulate", 4, |data| target.run(data));
}

#[test]
fn decapsulate_seeds_are_accepted() {
    let target = decapsulate::Target::new().unwrap();
    let seeds = target.seeds();
    // Each KEM and AEAD on each backend, and responses.
    assert_eq!(seeds.iter().filter(|(name, _)| name.starts_with("request-")).count(), 2 * 3 * 2);
    assert!(seeds.iter().any(|(name, _)| name.starts_with("response-")));
    seeds_accepted(&seeds, |data| target.run(data));
}

#[test]
fn chunked_corpus_and_regressions() {
    let target = chunked::Target::new().unwrap();
    replay("chunked", 4, |data| target.run(data));
}

#[test]
fn chunked_seeds_are_accepted() {
    let target = chunked::Target::new().unwrap();
    let seeds = target.seeds();
    assert!(seeds.iter().any(|(name, _)| name.starts_with("request-xwing-")));
    assert!(seeds.iter().any(|(name, _)| name.starts_with("response-")));
    seeds_accepted(&seeds, |data| target.run(data));
}

#[test]
fn bhttp_corpus_and_regressions() {
    let target = bhttp::Target::new();
    replay("bhttp", 4, |data| target.run(data));
}

#[test]
fn bhttp_seeds_are_accepted() {
    let target = bhttp::Target::new();
    let seeds = target.seeds();
    for form in ["request-known", "request-indeterminate", "response-known", "response-indeterminate"] {
        assert!(seeds.iter().any(|(name, _)| name.starts_with(form)), "{form}");
    }
    seeds_accepted(&seeds, |data| target.run(data));
}

/// Writes every target's seeds into `fuzz/corpus/` (run explicitly; `cargo xtask fuzz
/// --seeds` does).
#[test]
#[ignore = "writes into fuzz/corpus/"]
fn write_seeds() {
    let dir = fuzz_dir();
    fuzzing::write_seeds(&dir, "key_config", &key_config::Target::new().seeds()).unwrap();
    fuzzing::write_seeds(&dir, "decapsulate", &decapsulate::Target::new().unwrap().seeds()).unwrap();
    fuzzing::write_seeds(&dir, "chunked", &chunked::Target::new().unwrap().seeds()).unwrap();
    fuzzing::write_seeds(&dir, "bhttp", &bhttp::Target::new().seeds()).unwrap();
}

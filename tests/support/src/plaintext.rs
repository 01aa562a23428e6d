//! Scans for plaintext where none may be: model bytes in any file under a directory
//! ([`find_plaintext`]), canary values and tokens in logs ([`contains`], with
//! [`without_timing`] so the gateway's own timestamps cannot match by chance).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The gateway's log with what the gateway itself measures blanked out: the timestamp
/// that starts each line and `elapsed_ms` values. Their digits are random, so a search for a
/// short number such as a canary feature value would otherwise fail once in a few thousand
/// runs; neither can carry request data.
pub fn without_timing(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    for line in log.lines() {
        let line = match line.split_once(' ') {
            Some((first, rest)) if first.starts_with(|c: char| c.is_ascii_digit()) && first.ends_with('Z') => rest,
            _ => line,
        };
        let mut rest = line;
        while let Some(at) = rest.find("elapsed_ms=") {
            let (before, after) = rest.split_at(at + "elapsed_ms=".len());
            out.push_str(before);
            out.push('#');
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// Lists every file under `root`, recursively (for messages).
pub fn list_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() { pending.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    files
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Windows of [`find_plaintext`]: a copy of at least twice this many bytes of a model
/// always contains one whole window.
pub const PLAINTEXT_WINDOW: usize = 64;

/// Searches every file under `root` for any [`PLAINTEXT_WINDOW`]-byte window of
/// `plaintext` (windows of one repeated byte are skipped: they say nothing about the
/// model). Returns the files and offsets where one was found.
pub fn find_plaintext(root: &Path, plaintext: &[u8]) -> Vec<(PathBuf, usize)> {
    let windows: HashMap<&[u8], usize> = plaintext
        .windows(PLAINTEXT_WINDOW)
        .enumerate()
        .filter(|(_, w)| w.iter().any(|b| *b != w[0]))
        .map(|(i, w)| (w, i))
        .collect();
    let mut found = Vec::new();
    if !root.exists() {
        return found;
    }
    for path in list_files(root) {
        let Ok(bytes) = fs::read(&path) else { continue };
        if let Some(at) = bytes.windows(PLAINTEXT_WINDOW).position(|w| windows.contains_key(w)) {
            found.push((path, at));
        }
    }
    found
}

/// Asserts that no file under `root` holds a piece of `plaintext` (see [`find_plaintext`]).
#[track_caller]
pub fn assert_no_plaintext(root: &Path, plaintext: &[u8]) {
    let found = find_plaintext(root, plaintext);
    assert!(found.is_empty(), "plaintext model bytes on disk under {}: {found:?}", root.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_substrings() {
        assert!(contains(b"abc CANARY def", b"CANARY"));
        assert!(!contains(b"abc CANAR def", b"CANARY"));
    }

    #[test]
    fn timing_is_blanked_but_nothing_else() {
        let log = "2026-11-28T07:20:20.987654Z  INFO sealgate: served elapsed_ms=12.987654 model=m\nplain 987654\n";
        assert_eq!(without_timing(log), " INFO sealgate: served elapsed_ms=# model=m\nplain 987654\n");
    }
}

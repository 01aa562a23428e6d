//! Reading the few members a client needs from the gateway's small JSON bodies: `type`,
//! `title` and `detail` of RFC 9457 problem details, `error` of a KServe error body, and
//! `error`, `status` and `line` of an NDJSON stream's error line.
//!
//! Why not serde: the browser package would pay about 60 KB of deserializer for these four
//! fields, and it parses the answers it returns with the engine's `JSON.parse` anyway. So this
//! is a small strict reader (RFC 8259): the body must be one JSON object; the wanted members
//! are read when they are strings, every other value is skipped after being checked, nesting
//! is bounded, and anything malformed gives `None`, as a failed `serde_json::from_slice`
//! would. A member that appears twice keeps its first value.

use alloc::string::String;
use alloc::vec::Vec;

/// Deeper nesting than this is refused (the bodies read here are flat objects).
const MAX_DEPTH: usize = 32;

/// A member value the reader keeps; every other kind is checked and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// A string, unescaped.
    String(String),
    /// A non-negative integer written without fraction or exponent that fits in a `u64`.
    Unsigned(u64),
}

/// The string values of `keys` in the top-level JSON object `body` (`None` for a key that is
/// absent or not a string), or `None` when `body` is not a single valid JSON object.
pub fn string_members<const N: usize>(body: &[u8], keys: [&str; N]) -> Option<[Option<String>; N]> {
    Some(members(body, keys)?.map(|m| match m {
        Some(Member::String(s)) => Some(s),
        _ => None,
    }))
}

/// The values of `keys` in the top-level JSON object `body` that are strings or unsigned
/// integers (`None` for a key that is absent or of another kind), or `None` when `body` is
/// not a single valid JSON object.
pub fn members<const N: usize>(body: &[u8], keys: [&str; N]) -> Option<[Option<Member>; N]> {
    let mut found: [Option<Member>; N] = core::array::from_fn(|_| None);
    let mut r = Reader { bytes: body, at: 0 };
    r.whitespace();
    r.expect(b'{')?;
    r.whitespace();
    if !r.eat(b'}') {
        loop {
            r.whitespace();
            r.expect(b'"')?;
            let key = r.string()?;
            r.whitespace();
            r.expect(b':')?;
            r.whitespace();
            let slot = keys.iter().position(|k| *k == key).and_then(|i| found.get_mut(i)).filter(|s| s.is_none());
            match slot {
                Some(slot) if r.peek() == Some(b'"') => {
                    r.at += 1;
                    *slot = Some(Member::String(r.string()?));
                }
                Some(slot) if matches!(r.peek(), Some(b'0'..=b'9')) => {
                    let start = r.at;
                    r.number()?;
                    let text = r.bytes.get(start..r.at).and_then(|t| core::str::from_utf8(t).ok());
                    // A fraction, an exponent or an overflow is checked but not kept.
                    *slot = text.and_then(|t| t.parse().ok()).map(Member::Unsigned);
                }
                _ => r.skip_value(0)?,
            }
            r.whitespace();
            if r.eat(b'}') {
                break;
            }
            r.expect(b',')?;
        }
    }
    r.whitespace();
    (r.at == body.len()).then_some(found)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        let matched = self.peek() == Some(b);
        if matched {
            self.at += 1;
        }
        matched
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string whose opening quote was consumed, unescaped.
    fn string(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return None,
                b => out.push(b),
            }
        }
    }

    /// The character of `\uXXXX` (after the `u`), joining a UTF-16 surrogate pair.
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if !(0xd800..0xdc00).contains(&high) {
            return char::from_u32(high);
        }
        if !(self.eat(b'\\') && self.eat(b'u')) {
            return None;
        }
        let low = self.hex4()?;
        if !(0xdc00..0xe000).contains(&low) {
            return None;
        }
        char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))
    }

    fn hex4(&mut self) -> Option<u32> {
        (0..4).try_fold(0u32, |n, _| Some(n << 4 | char::from(self.next()?).to_digit(16)?))
    }

    /// Checks and skips one value of any kind.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.next()? {
            b'"' => self.string().map(drop),
            b'{' => self.skip_container(b'}', depth, true),
            b'[' => self.skip_container(b']', depth, false),
            b't' => self.literal(b"rue"),
            b'f' => self.literal(b"alse"),
            b'n' => self.literal(b"ull"),
            b'-' | b'0'..=b'9' => {
                self.at -= 1;
                self.number()
            }
            _ => None,
        }
    }

    fn skip_container(&mut self, close: u8, depth: usize, object: bool) -> Option<()> {
        self.whitespace();
        if self.eat(close) {
            return Some(());
        }
        loop {
            self.whitespace();
            if object {
                self.expect(b'"')?;
                self.string()?;
                self.whitespace();
                self.expect(b':')?;
                self.whitespace();
            }
            self.skip_value(depth + 1)?;
            self.whitespace();
            if self.eat(close) {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.at.checked_add(rest.len())?;
        (self.bytes.get(self.at..end)? == rest).then(|| self.at = end)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        if !self.eat(b'0') {
            self.digits()?;
        }
        if self.eat(b'.') {
            self.digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            self.digits()?;
        }
        Some(())
    }

    /// One or more decimal digits.
    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    fn problem(body: &str) -> Option<[Option<String>; 3]> {
        string_members(body.as_bytes(), ["type", "title", "detail"])
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn problem_members_are_read() {
        let body = r#" { "type" : "https://x.example/p", "status": 422, "title":"key \"mismatch\"",
            "extra": {"a": [1, -2.5e+3, true, false, null, {"b": "c"}]}, "detail": "caf\u00e9 \ud83d\ude00" } "#;
        assert_eq!(problem(body), Some([some("https://x.example/p"), some("key \"mismatch\""), some("café 😀")]));
        assert_eq!(problem("{}"), Some([None, None, None]));
        // Not a string: absent, as serde's Option<String> would refuse the whole body; either
        // way the caller falls back to a generic problem.
        assert_eq!(problem(r#"{"type": 5, "title": "t"}"#), Some([None, some("t"), None]));
        // First value wins.
        assert_eq!(problem(r#"{"title": "a", "title": "b"}"#), Some([None, some("a"), None]));
        assert_eq!(
            string_members(br#"{"error":"model 'x' not found"}"#, ["error"]),
            Some([some("model 'x' not found")])
        );
    }

    #[test]
    fn unsigned_members_are_read() {
        let line = br#"{"error":"bad \"x\"","status":400,"line":18446744073709551615,"extra":[1]}"#;
        let got = members(line, ["error", "status", "line"]);
        let expected =
            [Some(Member::String("bad \"x\"".into())), Some(Member::Unsigned(400)), Some(Member::Unsigned(u64::MAX))];
        assert_eq!(got, Some(expected));
        for (body, why) in [
            (&br#"{"status":-1}"#[..], "negative"),
            (br#"{"status":4.5}"#, "fraction"),
            (br#"{"status":4e2}"#, "exponent"),
            (br#"{"status":18446744073709551616}"#, "overflow"),
        ] {
            assert_eq!(members(body, ["status"]), Some([None]), "{why}");
        }
        assert_eq!(members(br#"{"status":"400"}"#, ["status"]), Some([Some(Member::String("400".into()))]));
        assert_eq!(members(br#"{"status":01}"#, ["status"]), None, "not JSON");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            "",
            "[]",
            "\"s\"",
            "{",
            "{\"type\"}",
            "{\"type\": }",
            "{\"type\": \"a\",}",
            "{\"type\": \"a\"} x",
            "{\"a\": tru}",
            "{\"a\": 01}",
            "{\"a\": 1.}",
            "{\"a\": -}",
            "{\"a\": \"\\x\"}",
            "{\"a\": \"\\ud83d\"}",
            "{\"a\": \"\\ud83dx\"}",
            "{\"a\": \"tab\there\"}",
            "{\"a\": [1 2]}",
            "{\"a\": {\"b\" 1}}",
            "{'a': 1}",
        ] {
            assert_eq!(problem(bad), None, "{bad}");
        }
        assert_eq!(string_members(b"{\"a\": \"\xff\"}", ["a"]), None, "not UTF-8");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = alloc::format!("{{\"a\": {}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(problem(&deep).is_some());
        let deeper = alloc::format!("{{\"a\": {}1{}}}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        assert_eq!(problem(&deeper), None);
        let hostile = "[".repeat(100_000);
        assert_eq!(problem(&alloc::format!("{{\"a\": {hostile}")), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = string_members(&bytes, ["type", "title"]);
        }

        #[test]
        fn strings_round_trip(s in "\\PC*") {
            let mut body = String::from("{\"title\":\"");
            for c in s.chars() {
                match c {
                    '"' => body.push_str("\\\""),
                    '\\' => body.push_str("\\\\"),
                    c if (c as u32) < 0x20 => body.push_str(&alloc::format!("\\u{:04x}", c as u32)),
                    c => body.push(c),
                }
            }
            body.push_str("\"}");
            proptest::prop_assert_eq!(problem(&body), Some([None, Some(s), None]));
        }
    }
}

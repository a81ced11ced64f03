//! Redis glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`) over rendered keys, used to apply
//! pattern invalidations to L1 and to in-flight loads exactly as `SCAN MATCH` applies them to L2.
//!
//! The matcher follows Redis's `stringmatchlen` (util.c) on every input, well-formed or not, so
//! that L1 and Redis never drop different keys:
//! - a class that is never closed (`[a`, `[a-z`) runs to the end of the pattern and still
//!   matches one character;
//! - a range's ends may be any bytes, the closing `]` included (`[a-]` is the range `]`..`a`),
//!   and reversed ends are swapped (`[z-a]` is `[a-z]`);
//! - `\` escapes the next byte, and a `\` that ends the pattern is a literal `\`;
//! - inside a class, bytes compare as C `char`s, which are signed on the x86-64 and most other
//!   Linux servers: a range with an end at or above 0x80 is ordered as if that end were negative;
//! - more than 1,000 nested `*` (counted as Redis counts them) match nothing.
//!
//! Owns the matcher only: a pure function of two byte strings, touching nothing else.

/// Redis's bound on the `*` nesting of a match ("protection against abusive patterns").
const MAX_NESTING: u32 = 1000;

/// Redis glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), used to apply pattern invalidations
/// to L1 and to in-flight loads exactly as `SCAN MATCH` applies them to L2.
///
/// Matches as Redis matches `ns:k:<pattern>` against `ns:k:<text>`: the literal prefix changes
/// one case only, an empty text, which then matches a pattern of stars alone (bare
/// `stringmatchlen` matches an empty string with the empty pattern only).
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    if text.is_empty() {
        return pattern.iter().all(|&c| c == b'*');
    }
    let mut give_up = false;
    match_from(pattern, text, &mut give_up, 0)
}

/// One level of the match. `give_up` is set once a `*` found no place for the rest of the
/// pattern: an earlier `*` taking more of the text cannot help then (Redis's
/// `skipLongerMatches`, which keeps the match polynomial).
fn match_from(mut pattern: &[u8], mut text: &[u8], give_up: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while let (Some(&p), Some(&t)) = (pattern.first(), text.first()) {
        match p {
            b'*' => {
                while pattern.get(1) == Some(&b'*') {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                while !text.is_empty() {
                    if match_from(&pattern[1..], text, give_up, nesting + 1) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    text = &text[1..];
                }
                *give_up = true;
                return false;
            }
            b'?' => {}
            b'[' => {
                let (matched, after) = class(&pattern[1..], t);
                if !matched {
                    return false;
                }
                // Step onto the class's last byte, so that the common step below leaves it.
                pattern = &pattern[pattern.len() - after.len() - 1..];
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                if pattern[0] != t {
                    return false;
                }
            }
            _ => {
                if p != t {
                    return false;
                }
            }
        }
        pattern = &pattern[1..];
        text = &text[1..];
        if text.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            break;
        }
    }
    pattern.is_empty() && text.is_empty()
}

/// Matches `c` against the class whose body starts at `body` (after the `[`). Returns whether it
/// matched and the pattern after the class: after its `]`, or nothing for a class the pattern
/// ends inside.
fn class(mut body: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = body.first() == Some(&b'^');
    if negate {
        body = &body[1..];
    }
    let mut matched = false;
    loop {
        match body {
            [b'\\', escaped, ..] => {
                matched |= *escaped == c;
                body = &body[1..];
            }
            [b']', rest @ ..] => return (matched != negate, rest),
            [] => return (matched != negate, body),
            [lo, b'-', hi, ..] => {
                let (lo, hi, c) = (signed(*lo), signed(*hi), signed(c));
                matched |= (lo.min(hi)..=lo.max(hi)).contains(&c);
                body = &body[2..];
            }
            [literal, ..] => matched |= *literal == c,
        }
        body = &body[1..];
    }
}

/// A byte as the C `char` Redis compares range ends with (signed on x86-64 Linux).
fn signed(b: u8) -> i8 {
    i8::from_ne_bytes([b])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(m("prod:*", "prod:1"));
        assert!(m("prod:*", "prod:"));
        assert!(!m("prod:*", "prods:cat:1"));
        assert!(m("prods:cat:7:*", "prods:cat:7:page:1"));
        assert!(!m("prods:cat:7:*", "prods:cat:77:page:1"));
        assert!(m("a?c", "abc"));
        assert!(m("a[bc]d", "acd"));
        assert!(!m("a[^bc]d", "acd"));
        assert!(m("a[a-z]d", "aqd"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*:children", "cat:1:children"));
        // escaped values never match a glob meant for another key
        assert!(!m("prod:1*", "prod:%2A"));
    }

    /// The cases Redis's own tests exercise (`util.c`'s `stringmatchlen` tests and the
    /// `KEYS`/`SCAN MATCH` pattern tests of its test suite), as this crate's own table.
    #[test]
    fn agrees_with_redis_on_its_documented_cases() {
        let cases: &[(&str, &str, bool)] = &[
            // The `KEYS` documentation's examples.
            ("h?llo", "hello", true),
            ("h?llo", "hallo", true),
            ("h?llo", "hxllo", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hbllo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hallo", true),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            // Stars: empty, leading, trailing, consecutive.
            ("*", "", true), // under the `ns:k:` prefix (see `glob_match`)
            ("*", "anything", true),
            ("**", "", true),
            ("a**b", "ab", true),
            ("a*b*c", "abbbc", true),
            ("a*b*c", "acb", false),
            ("*a", "", false),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            // Ranges written backwards are swapped.
            ("[z-a]", "m", true),
            ("[z-a]", "A", false),
            // Escapes, in and out of classes.
            ("\\?", "?", true),
            ("\\?", "a", false),
            ("[\\]]", "]", true),
            ("[\\-]", "-", true),
            ("[a\\-z]", "b", false),
            ("\\", "\\", true), // a trailing backslash is itself
            ("a\\", "a\\", true),
            ("a\\", "a", false),
            // Malformed classes: unclosed ones run to the end of the pattern.
            ("[a", "a", true),
            ("[a", "b", false),
            ("[a-z", "q", true),
            ("[a-z", "A", false),
            ("a[b", "ab", true),
            ("a[bc", "ac", true),
            ("[", "[", false),
            ("[", "", false),
            ("[^", "x", true), // a negated empty class at the end matches any one byte
            ("[^", "", false),
            ("[]", "]", false),
            ("[]", "a", false),
            ("[]a]", "a", false),
            ("[]a]", "]", false),
            ("[]]", "]", false),
            ("[^]", "x", true),
            // A `-` before the closing bracket makes `]` the range's end.
            ("[a-]", "a", true),
            ("[a-]", "-", false),
            ("[a-]", "]", true),
            ("[a-]", "^", true),
            ("[a-]", "b", false),
            ("[a-]x", "ax", false), // the range ate the `]`: the class is unclosed
            ("[a-]x", "a", true),   // ... and `x` a literal of it
            ("[-a]", "-", true),
            ("[-a]", "a", true),
            ("[a-\\]", "\\", true), // the range is `a`..`\` reversed: `\`..`a`
            ("[a-\\]", "b", false),
            ("[a-\\]", "_", true),
            ("[\\", "\\", true),
            // Stars around malformed classes.
            ("*[a", "xxa", true),
            ("*[a-", "x-", true),
            ("*\\", "x\\", true),
            ("[*]", "*", true),
            ("[*]", "x", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(m(pattern, text), expected, "{pattern:?} against {text:?}");
        }
    }

    #[test]
    fn ranges_compare_bytes_as_signed_chars() {
        // 0xff is -1 as a C char: the range is -1..=`a`, which holds `Z` but not 0x80 (-128).
        assert!(glob_match(b"[a-\xff]", b"Z"));
        assert!(!glob_match(b"[a-\xff]", b"b"));
        assert!(!glob_match(b"[a-\xff]", b"\x80"));
        assert!(glob_match(b"[\x80-\xff]", b"\x90"));
        assert!(glob_match(b"\xff*", b"\xff\x00"));
    }

    #[test]
    fn abusive_patterns_are_bounded() {
        // Redis's regression: many stars against a long text that does not match ends quickly.
        let pattern = format!("{}b", "a*".repeat(50));
        let text = "a".repeat(200);
        assert!(!m(&pattern, &text));
        // More than 1,000 nested stars match nothing, even where the text would fit.
        let deep = "*a".repeat(1001);
        assert!(!m(&deep, &"a".repeat(1001)));
        let shallow = "*a".repeat(999);
        assert!(m(&shallow, &"a".repeat(999)));
    }
}

//! Property tests of the pure parts of cache-core (issue 14): key rendering is injective, the codec
//! never panics on arbitrary bytes and round-trips what it writes, and the glob matcher agrees
//! with a simple reference on well-formed globs (`library_edges.rs` compares it with Redis on
//! every glob). Bounded case counts, so the suite stays fast.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use cache_core::__internals::{decode_envelope, encode_envelope, envelope_parts, glob_match};
use cache_core::codec::{decode_value, encode_value};
use cache_core::{Cache, Hashed, Pattern, PatternConfig, TtlPolicy};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One L1-only cache and its patterns, built once (building needs a runtime).
fn patterns() -> &'static (Pattern, Pattern) {
    static PATTERNS: std::sync::OnceLock<(Pattern, Pattern)> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cache: Cache = runtime.block_on(Cache::builder().build()).unwrap();
        let policy = TtlPolicy::new(Duration::from_secs(60));
        let plain = cache
            .register(PatternConfig::new("p:<a>:<b>", policy.clone()))
            .unwrap();
        let hashed = cache
            .register(PatternConfig::new("h:<a>:<q:hash>", policy))
            .unwrap();
        (plain, hashed)
    })
}

/// Strings over the bytes that matter to rendering: delimiters, glob and escape characters,
/// white space, non-ASCII, and plain characters.
fn key_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'b', ':', '%', '*', '?', '[', ']', '\\', ' ', 'é', '2', 'A', '_',
        ]),
        0..6,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn distinct_arguments_render_distinct_keys(
        a1 in key_text(), b1 in key_text(), a2 in key_text(), b2 in key_text(),
    ) {
        let (plain, hashed) = patterns();
        let k1 = plain.key(&[&a1, &b1]).unwrap();
        let k2 = plain.key(&[&a2, &b2]).unwrap();
        prop_assert_eq!(a1 == a2 && b1 == b2, k1.as_str() == k2.as_str(),
            "{:?} and {:?}", k1.as_str(), k2.as_str());
        // A rendered value never holds a glob character or a delimiter of its own.
        let rendered = &k1.as_str()["p:".len()..];
        prop_assert_eq!(rendered.matches(':').count(), 1);
        prop_assert!(!rendered.bytes().any(cache_template::is_glob_byte));
        let h1 = hashed.key(&[&a1, &Hashed(&b1)]).unwrap();
        let h2 = hashed.key(&[&a2, &Hashed(&b2)]).unwrap();
        prop_assert_eq!(a1 == a2 && b1 == b2, h1.as_str() == h2.as_str());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let _ = decode_envelope(&bytes);
        let _ = decode_value::<serde_json::Value>(&bytes);
        let _ = decode_value::<(u64, String, Vec<bool>)>(&bytes);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        value in any::<(u32, String)>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_envelope(Some(&value), [1, 2, 3], &["t".into()]).unwrap();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(parts) = envelope_parts(&bytes)
            && let Some(payload) = parts.2
        {
            let _ = decode_value::<(u32, String)>(&payload);
        }
        let _ = decode_envelope(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn the_envelope_round_trips(
        value in proptest::option::of(any::<(u64, String, Vec<i16>, bool)>()),
        times in any::<[u64; 3]>(),
        tags in prop::collection::vec(key_text(), 0..4),
    ) {
        let tags: Vec<Arc<str>> = tags.into_iter().map(Arc::from).collect();
        let bytes = encode_envelope(value.as_ref(), times, &tags).unwrap();
        let (read_times, read_tags, payload) = envelope_parts(&bytes).unwrap();
        prop_assert_eq!(read_times, times);
        prop_assert_eq!(read_tags, tags.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        let read = payload.map(|p| decode_value::<(u64, String, Vec<i16>, bool)>(&p).unwrap());
        prop_assert_eq!(read, value.clone());
        if let Some(v) = &value {
            prop_assert_eq!(decode_value::<(u64, String, Vec<i16>, bool)>(&encode_value(v).unwrap()).unwrap(), v.clone());
        }
    }
}

/// A well-formed glob: literals, `?`, `*`, escapes and closed classes of plain bytes.
#[derive(Debug, Clone)]
enum Token {
    Literal(u8),
    Escaped(u8),
    Any,
    Star,
    Class { negate: bool, items: Vec<(u8, u8)> },
}

fn token() -> impl Strategy<Value = Token> {
    let byte = || prop::sample::select(b"abc-:x".to_vec());
    prop_oneof![
        3 => byte().prop_map(Token::Literal),
        1 => prop::sample::select(b"*?[]\\".to_vec()).prop_map(Token::Escaped),
        1 => Just(Token::Any),
        2 => Just(Token::Star),
        2 => (any::<bool>(), prop::collection::vec((prop::sample::select(b"abcx".to_vec()), prop::sample::select(b"abcx".to_vec())), 1..3))
            .prop_map(|(negate, items)| Token::Class { negate, items }),
    ]
}

fn render(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            Token::Literal(b) => out.push(*b),
            Token::Escaped(b) => out.extend_from_slice(&[b'\\', *b]),
            Token::Any => out.push(b'?'),
            Token::Star => out.push(b'*'),
            Token::Class { negate, items } => {
                out.push(b'[');
                if *negate {
                    out.push(b'^');
                }
                for &(lo, hi) in items {
                    out.extend_from_slice(&[lo, b'-', hi]);
                }
                out.push(b']');
            }
        }
    }
    out
}

/// The reference: textbook backtracking over the tokens.
fn reference(tokens: &[Token], text: &[u8]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    let one = |matches: bool| matches && reference(rest, &text[1..]);
    match first {
        Token::Star => (0..=text.len()).any(|skip| reference(rest, &text[skip..])),
        _ if text.is_empty() => false,
        Token::Literal(b) | Token::Escaped(b) => one(text[0] == *b),
        Token::Any => one(true),
        Token::Class { negate, items } => {
            let inside = items
                .iter()
                .any(|&(lo, hi)| (lo.min(hi)..=lo.max(hi)).contains(&text[0]));
            one(inside != *negate)
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn the_glob_matcher_agrees_with_a_reference_on_well_formed_globs(
        tokens in prop::collection::vec(token(), 0..7),
        text in prop::collection::vec(prop::sample::select(b"abcx-:*?[]\\".to_vec()), 1..9),
    ) {
        let glob = render(&tokens);
        prop_assert_eq!(glob_match(&glob, &text), reference(&tokens, &text),
            "{:?} against {:?}", String::from_utf8_lossy(&glob), String::from_utf8_lossy(&text));
    }
}

//! Key rendering on arbitrary argument pairs: never panics, never leaves a glob character or an
//! extra `:` in a rendered value, and distinct pairs render distinct keys.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use cache_core::{Cache, Pattern, PatternConfig, TtlPolicy};
use libfuzzer_sys::fuzz_target;

fn pattern() -> &'static Pattern {
    static PATTERN: OnceLock<Pattern> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cache = runtime.block_on(Cache::builder().build()).unwrap();
        let policy = TtlPolicy::new(Duration::from_secs(60));
        cache.register(PatternConfig::new("p:<a>:<b>", policy)).unwrap()
    })
}

fuzz_target!(|input: (&str, &str, &str, &str)| {
    let (a1, b1, a2, b2) = input;
    let k1 = pattern().key(&[&a1, &b1]).unwrap();
    let k2 = pattern().key(&[&a2, &b2]).unwrap();
    assert_eq!((a1, b1) == (a2, b2), k1.as_str() == k2.as_str(), "{k1:?} {k2:?}");
    let rendered = &k1.as_str()["p:".len()..];
    assert_eq!(rendered.matches(':').count(), 1, "{rendered:?}");
    assert!(!rendered.bytes().any(cache_template::is_glob_byte), "{rendered:?}");
});

//! The glob matcher on arbitrary globs and keys: never panics, and stays polynomial (libFuzzer's
//! timeout catches a pattern that backtracks exponentially). `tests/library_edges.rs` compares
//! it with Redis's `SCAN MATCH`.
#![no_main]

use cache_core::__internals::glob_match;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (glob, key) = input;
    let matched = glob_match(glob, key);
    // A glob with no special byte matches exactly itself.
    if !glob.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'\\')) {
        assert_eq!(matched, glob == key);
    }
});

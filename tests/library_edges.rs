//! The library's edges against a real Redis (issue 14, item 6): namespaces that cannot reach each
//! other's keys, the in-process glob matcher agreeing with `SCAN MATCH`, and stamps from the
//! future treated as invalid.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{Cache, Error, Invalidation};
use proptest::prelude::*;
use support::*;
use tiercache_tests::RedisServer;

#[tokio::test]
async fn a_namespace_that_another_namespaces_pattern_could_reach_is_rejected() {
    // `x` invalidating `p:*` scans `x:k:p:*`, which holds every key of a namespace `x:k:p`.
    for namespace in ["x:k:p", "a*", "a?", "a[bc]", "a\\b", "", "x y", "caf\u{e9}"] {
        match Cache::builder().namespace(namespace).build().await {
            Err(Error::Config(e)) => assert!(
                e.message()
                    .contains(&format!("`{}`", namespace.escape_debug())),
                "the error names the namespace: {}",
                e.message()
            ),
            other => panic!("namespace {namespace:?} accepted: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_on_one_redis_never_touch_each_others_entries() {
    let server = RedisServer::start();
    let (x, xkp) = (cache(&server, "x").await, cache(&server, "x.k.p").await);
    let px = register(&x, "p:<id>", policy(60));
    let pxkp = register(&xkp, "p:<id>", policy(60));
    for (cache, pattern) in [(&x, &px), (&xkp, &pxkp)] {
        for id in 0..3u64 {
            cache.set(&pattern.key(&[&id]).unwrap(), id).await;
        }
    }
    // Every invalidation of `x` that sweeps by pattern or clears.
    x.invalidate_pattern("p:*").await;
    x.invalidate_pattern("*").await;
    x.invalidate_with(Invalidation::Pattern("*p*".into())).await;
    x.clear().await;
    for id in 0..3u64 {
        assert_eq!(raw_get(&server, "x", &format!("p:{id}")).await, None);
        assert!(
            raw_get(&server, "x.k.p", &format!("p:{id}"))
                .await
                .is_some(),
            "x.k.p's entry p:{id} survived x's invalidations"
        );
        assert_eq!(
            *xkp.get::<u64>(&pxkp.key(&[&id]).unwrap()).await.unwrap(),
            id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamp_from_the_future_is_a_counted_miss_not_a_hit() {
    let server = RedisServer::start();
    let cache = cache(&server, "stamp").await;
    let p = register(&cache, "prod:<id>", policy(60));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap();
    // Written a day from now, fresh for a year: were it trusted, no invalidation issued before
    // tomorrow could ever drop it.
    let written = micros(now + Duration::from_secs(24 * 3600));
    let bytes = envelope(
        written,
        written + micros(Duration::from_secs(365 * 24 * 3600)),
        7u64,
    );
    raw_set(&server, "stamp", "prod:1", &bytes).await;
    let key = p.key(&[&1u64]).unwrap();
    assert_eq!(
        cache.get::<u64>(&key).await,
        None,
        "the future stamp is not trusted"
    );
    let counters = cache.stats().total;
    assert_eq!((counters.decode_errors, counters.l2_hits), (1, 0));
    assert!(
        eventually(Duration::from_secs(2), || async {
            raw_get(&server, "stamp", "prod:1").await.is_none()
        })
        .await,
        "the implausible entry is deleted"
    );
    // The same value written now is a hit.
    let written = micros(now);
    let bytes = envelope(written, written + micros(Duration::from_secs(60)), 7u64);
    raw_set(&server, "stamp", "prod:1", &bytes).await;
    assert_eq!(cache.get::<u64>(&key).await.as_deref(), Some(&7));
}

/// An envelope as codec.rs documents it: magic, version 1, flags, three stamps, no tags, payload.
fn envelope(written_at: u64, fresh_until: u64, value: u64) -> Vec<u8> {
    let mut bytes = b"tc".to_vec();
    bytes.extend_from_slice(&[cache_core::codec::FORMAT_VERSION, 0]);
    for t in [written_at, fresh_until, fresh_until] {
        bytes.extend_from_slice(&t.to_be_bytes());
    }
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&cache_core::codec::encode_value(&value).unwrap());
    bytes
}

/// Glob bytes with every character the matcher treats specially, and texts over the bytes those
/// globs name (the prefix `ns:k:` is literal, as namespaces have no glob characters).
fn glob_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"ab*?[]^-\\\x80\xff".to_vec()), 0..8)
}

fn texts_strategy() -> impl Strategy<Value = BTreeSet<Vec<u8>>> {
    prop::collection::btree_set(
        prop::collection::vec(prop::sample::select(b"ab[]^-\\*?\x80\xff".to_vec()), 0..5),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the glob, malformed or not, the keys it invalidates in-process are exactly the
    /// keys `SCAN MATCH` finds in Redis.
    #[test]
    fn the_glob_matcher_agrees_with_scan_match(glob in glob_strategy(), texts in texts_strategy()) {
        let (expected, found) = scan_case(&glob, &texts);
        prop_assert_eq!(expected, found, "glob {:?}", String::from_utf8_lossy(&glob));
    }
}

/// One Redis for all the cases of the property (each case flushes it).
fn shared_server() -> &'static RedisServer {
    static SERVER: std::sync::OnceLock<RedisServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// (what the in-process matcher keeps, what `SCAN MATCH` finds), for `texts` stored as keys.
fn scan_case(glob: &[u8], texts: &BTreeSet<Vec<u8>>) -> (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) {
    let expected = texts
        .iter()
        .filter(|t| cache_core::__internals::glob_match(glob, t))
        .cloned()
        .collect();
    let mut conn = shared_server().client().get_connection().unwrap();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    let prefixed = |bytes: &[u8]| [b"ns:k:".as_slice(), bytes].concat();
    for text in texts {
        redis::cmd("SET")
            .arg(prefixed(text))
            .arg(1)
            .exec(&mut conn)
            .unwrap();
    }
    let mut found = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(prefixed(glob))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
            .unwrap();
        found.extend(keys.into_iter().map(|k| k[b"ns:k:".len()..].to_vec()));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    (expected, found)
}

#[test]
fn the_malformed_globs_of_the_report_agree_with_scan_match() {
    let texts: BTreeSet<Vec<u8>> = ["a", "-", "]", "^", "b", "z", "[", "ax", "\\", ""]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    for glob in [
        "[a-]", "[a", "[a-z", "\\", "a\\", "[^a]", "[]", "[^", "[]a]", "[a-]x", "*",
    ] {
        let (expected, found) = scan_case(glob.as_bytes(), &texts);
        assert_eq!(expected, found, "glob {glob:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_warns_when_redis_has_no_maxmemory_or_never_evicts() {
    let unbounded = RedisServer::start(); // the harness sets no maxmemory
    let h = cache(&unbounded, "warn").await.health().await;
    assert_eq!(h.l2.maxmemory, Some(0));
    let warnings = h.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("no maxmemory"), "{warnings:?}");

    let full =
        RedisServer::start_with_args(&["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"]);
    let warnings = cache(&full, "warn").await.health().await.warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("noeviction"),
        "{warnings:?}"
    );

    let bounded =
        RedisServer::start_with_args(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    assert!(
        cache(&bounded, "warn")
            .await
            .health()
            .await
            .warnings()
            .is_empty()
    );
}

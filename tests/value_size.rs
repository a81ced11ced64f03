//! The maximum encoded value size (issue 14, item 5): a larger value is served to its caller but
//! cached in neither tier, and counted; per pattern (`TtlPolicy::max_size`, the macros'
//! `max_size = ..`) or for the whole cache (`CacheBuilder::max_value_size`, 1 MiB by default).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use cache_core::{Cache, Error, cached};
use support::*;
use tiercache_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_cache_default_is_served_not_cached_and_counted() {
    let server = RedisServer::start();
    let cache = builder(&server, "size")
        .max_value_size(1024)
        .build()
        .await
        .unwrap();
    let p = register(&cache, "blob:<id>", policy(60));
    let loads = Arc::new(AtomicU32::new(0));
    let load = |len: usize| {
        let loads = loads.clone();
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>("x".repeat(len))
        }
    };
    let big = p.key(&[&1u64]).unwrap();
    for _ in 0..2 {
        let v = cache.get_or_load(&big, load(4096)).await.unwrap();
        assert_eq!(v.len(), 4096, "the value is served");
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "not cached: loaded each time"
    );
    assert_eq!(
        raw_get(&server, "size", "blob:1").await,
        None,
        "not in Redis"
    );
    assert_eq!(cache.stats().total.oversize, 2);
    // A small value of the same pattern is cached as usual.
    let small = p.key(&[&2u64]).unwrap();
    cache.get_or_load(&small, load(10)).await.unwrap();
    cache.get_or_load(&small, load(10)).await.unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 3);
    assert!(raw_get(&server, "size", "blob:2").await.is_some());
    assert_eq!(cache.stats().total.oversize, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_limit_overrides_the_default_and_a_set_too_large_drops_the_old_value() {
    let server = RedisServer::start();
    let cache = cache(&server, "size-p").await; // default: 1 MiB
    let p = register(&cache, "doc:<id>", policy(60).max_size(256));
    let key = p.key(&[&1u64]).unwrap();
    cache.set(&key, "small".to_owned()).await;
    assert!(raw_get(&server, "size-p", "doc:1").await.is_some());
    // Replacing it with a value over the pattern's 256 bytes caches nothing, old value included.
    cache.set(&key, "y".repeat(1000)).await;
    assert_eq!(
        cache.get::<String>(&key).await,
        None,
        "the old value is gone from L1 and L2"
    );
    assert_eq!(raw_get(&server, "size-p", "doc:1").await, None);
    assert_eq!(
        cache.stats().pattern("doc:<id>").unwrap().counters.oversize,
        1
    );
}

#[tokio::test]
async fn zero_limits_are_configuration_errors() {
    let zero = Cache::builder().max_value_size(0).build().await;
    assert!(matches!(zero, Err(Error::Config(_))));
    let cache = Cache::builder().build().await.unwrap();
    let p = cache.register(cache_core::PatternConfig::new(
        "z:<id>",
        policy(60).max_size(0),
    ));
    assert!(matches!(p, Err(Error::Config(_))));
}

struct Reports {
    cache: Cache,
    runs: AtomicU32,
}

impl Reports {
    #[cached(key = "report:<id>", ttl = 60, max_size = 512)]
    async fn report(&self, id: u64, len: usize) -> Result<String, Infallible> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(format!("{id}").repeat(len))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_macro_option_sets_the_patterns_limit() {
    let server = RedisServer::start();
    let reports = Reports {
        cache: cache(&server, "size-m").await,
        runs: AtomicU32::new(0),
    };
    for _ in 0..2 {
        assert_eq!(reports.report(1, 2000).await.unwrap().len(), 2000);
    }
    assert_eq!(
        reports.runs.load(Ordering::SeqCst),
        2,
        "over 512 bytes: never cached"
    );
    // The key renders from `id` only; `len` is not in it.
    for _ in 0..2 {
        assert_eq!(reports.report(2, 10).await.unwrap().len(), 10);
    }
    assert_eq!(
        reports.runs.load(Ordering::SeqCst),
        3,
        "under 512 bytes: cached"
    );
    assert_eq!(reports.cache.stats().total.oversize, 2);
}

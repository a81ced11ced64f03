//! Single-flight, loader errors, negative caching, and invalidation winning races with loads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, Invalidation, Key, TtlPolicy};
use support::*;
use tiercache_tests::RedisServer;
use tokio::sync::{Notify, oneshot};

async fn stampede(cache: &Cache, key: &Key, callers: usize) -> usize {
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, key, calls) = (cache.clone(), key.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Infallible>(product(1, "loaded once"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().name, "loaded once");
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_concurrent_callers_run_the_loader_once() {
    let server = RedisServer::start();
    let two_tier = cache(&server, "sf").await;
    let l1_only = Cache::builder().namespace("sf").build().await.unwrap();
    for cache in [two_tier, l1_only] {
        let p = register(&cache, "prod:<id>", policy(60));
        assert_eq!(stampede(&cache, &p.key(&[&1]).unwrap(), 500).await, 1);
        let s = cache.stats().total;
        assert_eq!((s.loads, s.misses), (1, 500));
        assert_eq!(cache.loads_in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loader_error_reaches_every_waiter_and_is_not_cached() {
    let server = RedisServer::start();
    let cache = cache(&server, "err").await;
    let p = register(&cache, "prod:<id>", policy(60));
    let key = p.key(&[&1]).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, key, calls) = (cache.clone(), key.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err::<Product, _>("database down".to_string())
                    })
                    .await
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().unwrap_err(), "database down");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        raw_get(&server, "err", "prod:1").await.is_none(),
        "errors are not cached"
    );
    let v = cache
        .get_or_load(&key, || async { Ok::<_, String>(product(1, "back")) })
        .await
        .unwrap();
    assert_eq!(v.name, "back");
    let s = cache.stats().total;
    assert_eq!((s.loads, s.load_errors), (2, 1));
}

#[tokio::test]
async fn none_is_cached_only_with_a_negative_ttl() {
    let server = RedisServer::start();
    let cache = cache(&server, "neg").await;
    let plain = register(&cache, "plain:<id>", policy(60));
    let negative = register(
        &cache,
        "neg:<id>",
        policy(60).negative_ttl(Duration::from_secs(5)),
    );
    let calls = AtomicUsize::new(0);
    let find = |key: Key| {
        let (cache, calls) = (&cache, &calls);
        async move {
            cache
                .get_or_load_optional(&key, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<Option<Product>, Infallible>(None)
                })
                .await
                .unwrap()
        }
    };
    assert!(find(plain.key(&[&1]).unwrap()).await.is_none());
    assert!(find(plain.key(&[&1]).unwrap()).await.is_none());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "None not cached without a negative TTL"
    );
    assert!(raw_get(&server, "neg", "plain:1").await.is_none());

    calls.store(0, Ordering::SeqCst);
    assert!(find(negative.key(&[&1]).unwrap()).await.is_none());
    assert!(find(negative.key(&[&1]).unwrap()).await.is_none());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "None cached with a negative TTL"
    );
    assert!(
        raw_get(&server, "neg", "neg:1").await.is_some(),
        "the absence is in L2 too"
    );
    let other = support::cache(&server, "neg").await;
    let neg_b = register(
        &other,
        "neg:<id>",
        policy(60).negative_ttl(Duration::from_secs(5)),
    );
    let v = other
        .get_or_load_optional(&neg_b.key(&[&1]).unwrap(), || async {
            Ok::<_, Infallible>(Some(product(1, "x")))
        })
        .await
        .unwrap();
    assert!(
        v.is_none(),
        "another instance reads the cached absence from L2"
    );
}

/// Starts a load that blocks until released, waits until it is running, runs `invalidate`,
/// releases the load, and checks the loaded (old) value was returned but cached nowhere.
async fn invalidation_wins(what: &str, invalidate: impl AsyncFnOnce(&Cache, &Key)) {
    let server = RedisServer::start();
    let cache = cache(&server, "race").await;
    let p = cache
        .register(cache_core::PatternConfig::new("prod:<id>", policy(60)).tag("products"))
        .unwrap();
    let key = p.key(&[&1]).unwrap();
    let (started_tx, started_rx) = oneshot::channel();
    let release = Arc::new(Notify::new());
    let load = {
        let (cache, key, release) = (cache.clone(), key.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, || async move {
                    let _ = started_tx.send(());
                    release.notified().await;
                    Ok::<_, Infallible>(product(1, "old"))
                })
                .await
                .unwrap()
        })
    };
    started_rx.await.unwrap();
    invalidate(&cache, &key).await;
    release.notify_one();
    assert_eq!(
        load.await.unwrap().name,
        "old",
        "{what}: the caller that started first still gets its value"
    );
    assert!(
        raw_get(&server, "race", "prod:1").await.is_none() || what == "set",
        "{what}: not written to L2"
    );
    let now = cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "new")) })
        .await
        .unwrap();
    assert_eq!(
        now.name, "new",
        "{what}: the next read does not see the old value"
    );
}

#[tokio::test]
async fn invalidation_during_a_load_wins_for_every_form() {
    invalidation_wins("key", async |c: &Cache, k: &Key| c.invalidate(k).await).await;
    invalidation_wins("tag", async |c: &Cache, _: &Key| {
        c.invalidate_tag("products").await
    })
    .await;
    invalidation_wins("pattern", async |c: &Cache, _: &Key| {
        c.invalidate_pattern("prod:*").await
    })
    .await;
    invalidation_wins("clear", async |c: &Cache, _: &Key| c.clear().await).await;
    invalidation_wins("set", async |c: &Cache, k: &Key| {
        c.set(k, product(1, "new")).await
    })
    .await;
    invalidation_wins("one path", async |c: &Cache, k: &Key| {
        c.invalidate_with(Invalidation::Key(k.as_str().to_owned()))
            .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let cache = Cache::builder().namespace("cancel").build().await.unwrap();
    let p = register(&cache, "prod:<id>", TtlPolicy::new(Duration::from_secs(60)));
    let key = p.key(&[&1]).unwrap();
    let leader = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, Infallible>(product(1, "never"))
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "waiter")) })
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let v = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("waiter not stuck")
        .unwrap();
    assert_eq!(v.name, "waiter");
}

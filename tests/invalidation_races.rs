//! Reads that race an invalidation: a read issued after an invalidation returned never gets a
//! value loaded before it; and a cached absence never breaks a caller whose loader always yields a
//! value.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::time::Duration;

use cache_core::{Cache, Key, TtlPolicy};
use support::*;
use tiercache_tests::RedisServer;
use tokio::sync::oneshot;

/// Starts a load of `key` whose loader answers "old" only when the returned sender fires.
fn blocked_load(
    cache: &Cache,
    key: &Key,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::sync::Arc<Product>>,
) {
    let (release, wait) = oneshot::channel::<()>();
    let (cache, key) = (cache.clone(), key.clone());
    let task = tokio::spawn(async move {
        cache
            .get_or_load(&key, || async move {
                let _ = wait.await;
                Ok::<_, Infallible>(product(1, "old"))
            })
            .await
            .unwrap()
    });
    (release, task)
}

async fn a_read_after_invalidation_does_not_join_the_older_load(
    what: &str,
    invalidate: impl AsyncFnOnce(&Cache, &Key),
) {
    let cache = Cache::builder().namespace("join").build().await.unwrap();
    let p = cache
        .register(
            cache_core::PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60)))
                .tag("products"),
        )
        .unwrap();
    let key = p.key(&[&1]).unwrap();
    let (release, old) = blocked_load(&cache, &key);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cache.loads_in_flight(),
        1,
        "{what}: the old load is in flight"
    );
    invalidate(&cache, &key).await;
    // Issued after the invalidation returned: must run its own loader, not wait for the old one.
    let fresh = tokio::time::timeout(
        Duration::from_secs(5),
        cache.get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "new")) }),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: the read waited for the load that began before it"))
    .unwrap();
    assert_eq!(fresh.name, "new", "{what}");
    release.send(()).unwrap();
    assert_eq!(
        old.await.unwrap().name,
        "old",
        "{what}: the first caller keeps its answer"
    );
    let after = cache
        .get_or_load(&key, || async {
            Ok::<_, Infallible>(product(1, "reloaded"))
        })
        .await
        .unwrap();
    assert_eq!(
        after.name, "new",
        "{what}: the old load did not overwrite the new value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_issued_after_an_invalidation_never_gets_an_older_load() {
    a_read_after_invalidation_does_not_join_the_older_load("key", async |c: &Cache, k: &Key| {
        c.invalidate(k).await
    })
    .await;
    a_read_after_invalidation_does_not_join_the_older_load("tag", async |c: &Cache, _: &Key| {
        c.invalidate_tag("products").await
    })
    .await;
    a_read_after_invalidation_does_not_join_the_older_load(
        "pattern",
        async |c: &Cache, _: &Key| c.invalidate_pattern("prod:*").await,
    )
    .await;
    a_read_after_invalidation_does_not_join_the_older_load("clear", async |c: &Cache, _: &Key| {
        c.clear().await
    })
    .await;
}

#[tokio::test]
async fn get_or_load_passes_over_a_cached_absence() {
    let server = RedisServer::start();
    let a = cache(&server, "absent").await;
    let b = cache(&server, "absent").await;
    for c in [&a, &b] {
        register(
            c,
            "prod:<id>",
            policy(60).negative_ttl(Duration::from_secs(60)),
        );
    }
    let key = |c: &Cache| c.pattern("prod:<id>").unwrap().key(&[&1]).unwrap();

    // An `Option` loader caches "not found", in L1 of `a` and in Redis.
    let none = a
        .get_or_load_optional(&key(&a), || async {
            Ok::<Option<Product>, Infallible>(None)
        })
        .await
        .unwrap();
    assert!(none.is_none());
    assert!(raw_get(&server, "absent", "prod:1").await.is_some());

    // Where the absence is found in L2 (b), the loader that always has a value runs, instead of
    // a panic, and its value replaces the absence in Redis.
    let v = b
        .get_or_load(&key(&b), || async {
            Ok::<_, Infallible>(product(1, "from b"))
        })
        .await
        .unwrap();
    assert_eq!(v.name, "from b");
    // Where it is found in L1 (a), it is passed over too: the value comes from Redis.
    let v = a
        .get_or_load(&key(&a), || async {
            Ok::<_, Infallible>(product(1, "from a"))
        })
        .await
        .unwrap();
    assert_eq!(v.name, "from b");
    assert_eq!(a.stats().total.l2_hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_load_following_an_optional_load_that_found_nothing_runs_its_loader() {
    let cache = Cache::builder().namespace("follow").build().await.unwrap();
    let p = register(&cache, "prod:<id>", policy(60));
    let key = p.key(&[&1]).unwrap();
    let (release, wait) = oneshot::channel::<()>();
    let optional = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_load_optional(&key, || async move {
                    let _ = wait.await;
                    Ok::<Option<Product>, Infallible>(None)
                })
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "found")) })
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.send(()).unwrap();
    assert!(optional.await.unwrap().is_none());
    assert_eq!(follower.await.unwrap().name, "found");
}

/// Instance `b` loads a key; instance `a` invalidates it (after its database write) while the
/// load runs; the load then finishes with the value it read before the write. That old value
/// must not reach Redis, where every instance would read it until its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_on_another_instance_cannot_write_back_over_an_invalidation() {
    let server = RedisServer::start();
    let a = cache(&server, "tomb").await;
    let b = cache(&server, "tomb").await;
    for c in [&a, &b] {
        register(c, "prod:<id>", policy(60));
    }
    let key = |c: &Cache| c.pattern("prod:<id>").unwrap().key(&[&1]).unwrap();

    let (release, old) = blocked_load(&b, &key(&b));
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.invalidate(&key(&a)).await;
    release.send(()).unwrap();
    assert_eq!(old.await.unwrap().name, "old", "b's caller gets its answer");

    assert!(
        raw_get(&server, "tomb", "prod:1").await.is_none(),
        "the value loaded before the invalidation was not written to Redis"
    );
    let fresh = cache(&server, "tomb").await;
    register(&fresh, "prod:<id>", policy(60));
    let v = fresh
        .get_or_load(&key(&fresh), || async {
            Ok::<_, Infallible>(product(1, "new"))
        })
        .await
        .unwrap();
    assert_eq!(v.name, "new");

    // A load that starts after the invalidation is written as usual.
    assert!(raw_get(&server, "tomb", "prod:1").await.is_some());
}

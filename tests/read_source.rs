//! Where a read's answer came from (`get_or_load_with_source`): L1, L2, this call's loader,
//! another call's (single flight), or a stale value after a failed load.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use cache_core::Source;
use support::*;
use tiercache_tests::RedisServer;

#[tokio::test]
async fn each_tier_and_the_loader_report_themselves() {
    let server = RedisServer::start();
    let a = cache(&server, "src").await;
    let b = cache(&server, "src").await;
    let key_a = register(&a, "item:<id>", policy(60)).key(&[&1u64]).unwrap();
    let key_b = register(&b, "item:<id>", policy(60)).key(&[&1u64]).unwrap();
    let load = || async { Ok::<_, String>(String::from("one")) };

    let (v, source) = a.get_or_load_with_source(&key_a, load).await.unwrap();
    assert_eq!((v.as_str(), source), ("one", Source::Loader));
    let (_, source) = a.get_or_load_with_source(&key_a, load).await.unwrap();
    assert_eq!(source, Source::L1);
    let (v, source) = b.get_or_load_with_source(&key_b, load).await.unwrap();
    assert_eq!((v.as_str(), source), ("one", Source::L2));
    let (_, source) = b.get_or_load_with_source(&key_b, load).await.unwrap();
    assert_eq!(source, Source::L1);
    assert_eq!(a.stats().total.loads + b.stats().total.loads, 1);

    // Optional reads: a cached absence is an answer, from its tier too.
    let users = register(
        &a,
        "user:<id>",
        policy(60).negative_ttl(Duration::from_secs(30)),
    );
    let key = users.key(&[&9u64]).unwrap();
    let none = || async { Ok::<Option<String>, String>(None) };
    let (v, source) = a
        .get_or_load_optional_with_source(&key, none)
        .await
        .unwrap();
    assert_eq!((v, source), (None, Source::Loader));
    let (v, source) = a
        .get_or_load_optional_with_source(&key, none)
        .await
        .unwrap();
    assert_eq!((v, source), (None, Source::L1));
}

#[tokio::test]
async fn waiters_of_one_load_are_coalesced_and_a_failed_load_serves_stale() {
    let server = RedisServer::start();
    let c = cache(&server, "src2").await;
    let pattern = register(
        &c,
        "slow:<id>",
        // Fresh for 1 s, then stale for 60 s more (fail-safe window).
        policy(1).stale(Duration::from_secs(60)),
    );
    let key = pattern.key(&[&1u64]).unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (c, key, gate) = (c.clone(), key.clone(), gate.clone());
        tokio::spawn(async move {
            c.get_or_load_with_source(&key, || async move {
                gate.notified().await;
                Ok::<_, String>(String::from("v1"))
            })
            .await
        })
    };
    // Let the leader start its load, then follow it.
    assert!(
        eventually(Duration::from_secs(5), || async {
            c.stats().total.misses >= 1
        })
        .await
    );
    let follower = {
        let (c, key) = (c.clone(), key.clone());
        tokio::spawn(async move {
            c.get_or_load_with_source(&key, || async { Ok::<_, String>(String::from("never")) })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_one();
    let (v, source) = leader.await.unwrap().unwrap();
    assert_eq!((v.as_str(), source), ("v1", Source::Loader));
    let (v, source) = follower.await.unwrap().unwrap();
    assert_eq!((v.as_str(), source), ("v1", Source::Coalesced));

    // Past the fresh TTL, a failing loader: the stale value, said so.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (v, source) = c
        .get_or_load_with_source(&key, || async { Err::<String, _>(String::from("db down")) })
        .await
        .unwrap();
    assert_eq!((v.as_str(), source), ("v1", Source::Stale));
    assert_eq!(source.x_cache(), "stale");
}

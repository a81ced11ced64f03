//! Redis down, slow or back: no call fails, the circuit keeps timeouts off the request path,
//! invalidations made meanwhile are replayed, stale values cover failing loaders, and health
//! reports each state. The outage test runs over plain TCP and over TLS (`over_plain_and_tls!`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, CircuitState, Error, L2Status, TtlPolicy};
use support::*;
use tiercache_tests::RedisServer;

over_plain_and_tls!(
    redis_killed_mid_traffic_fails_no_call_and_is_used_again_after_restart,
    flavor = "multi_thread",
    worker_threads = 4
);
async fn redis_killed_mid_traffic_fails_no_call_and_is_used_again_after_restart(
    transport: Transport,
) {
    let mut server = transport.start();
    let cache = cache(&server, "kill").await;
    let p = register(
        &cache,
        "prod:<id>",
        TtlPolicy::new(Duration::from_secs(60)).l1_ttl(Duration::from_millis(50)),
    );
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let traffic: Vec<_> = (0..50u64)
        .map(|worker| {
            let (cache, p, failures, served) =
                (cache.clone(), p.clone(), failures.clone(), served.clone());
            tokio::spawn(async move {
                for i in 0..200u64 {
                    let id = (worker * 7 + i) % 100;
                    let key = p.key(&[&id]).unwrap();
                    match cache
                        .get_or_load(&key, || async move { Ok::<_, String>(product(id, "db")) })
                        .await
                    {
                        Ok(v) if v.id == id => served.fetch_add(1, Ordering::Relaxed),
                        _ => failures.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.stop();
    for t in futures::future::join_all(traffic).await {
        t.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no call failed while Redis was down"
    );
    assert_eq!(served.load(Ordering::Relaxed), 50 * 200);
    assert!(
        cache.stats().total.l2_errors > 0,
        "the outage was noticed: {:?}, {:?}",
        cache.stats(),
        cache.health().await
    );
    assert_eq!(cache.health().await.l2.status, L2Status::Down);

    server.restart();
    let key = p.key(&[&1000]).unwrap();
    let back = eventually(Duration::from_secs(5), || async {
        cache
            .get_or_load(&key, || async {
                Ok::<_, Infallible>(product(1000, "after"))
            })
            .await
            .unwrap();
        raw_get(&server, "kill", "prod:1000").await.is_some()
    })
    .await;
    assert!(
        back,
        "L2 used again after the restart, without rebuilding the cache"
    );
    assert_eq!(cache.health().await.l2.status, L2Status::Up);
}

#[tokio::test]
async fn builds_degraded_when_redis_is_down_and_connects_later() {
    let mut server = RedisServer::start();
    server.stop();
    let cache = cache(&server, "late").await;
    let p = register(&cache, "prod:<id>", policy(60));
    let v = cache
        .get_or_load(&p.key(&[&1]).unwrap(), || async {
            Ok::<_, Infallible>(7u32)
        })
        .await
        .unwrap();
    assert_eq!(*v, 7, "serves from the loader while Redis is down");
    assert_eq!(cache.health().await.l2.status, L2Status::Down);
    let required = builder(&server, "late").require_redis(true).build().await;
    assert!(
        matches!(required, Err(Error::RedisUnavailable(_))),
        "unless Redis is required"
    );

    server.restart();
    let key = p.key(&[&2]).unwrap();
    let connected = eventually(Duration::from_secs(5), || async {
        cache.set(&key, 2u32).await;
        raw_get(&server, "late", "prod:2").await.is_some()
    })
    .await;
    assert!(connected, "connects once Redis answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_opens_the_circuit_so_calls_stop_waiting() {
    let server = RedisServer::start();
    // 150 ms timeout, opens after 2 failures, 300 ms cool-down; nothing in the background fails
    // through the circuit (marks are not polled; the backplane reads on a connection of its
    // own), so only the calls below can fail and open the circuit.
    let cache = builder(&server, "slow").build().await.unwrap();
    let p = register(&cache, "prod:<id>", policy(60));
    let watcher = server.connection().await;
    let url = server.url();
    let sleeper = tokio::spawn(async move {
        let client = redis::Client::open(url).unwrap();
        let no_timeout = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&no_timeout)
            .await
            .unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1.5)
            .query_async(&mut conn)
            .await
            .unwrap();
    });
    // Wait until Redis is asleep: a PING stops being answered.
    let asleep = eventually(Duration::from_secs(5), || {
        let mut conn = watcher.clone();
        async move {
            tokio::time::timeout(
                Duration::from_millis(50),
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await
            .is_err()
        }
    })
    .await;
    assert!(asleep, "DEBUG SLEEP started");
    for i in 0..100u64 {
        let v = cache
            .get_or_load(
                &p.key(&[&i]).unwrap(),
                || async move { Ok::<_, Infallible>(i) },
            )
            .await
            .unwrap();
        assert_eq!(*v, i);
    }
    let errors = cache.stats().total.l2_errors;
    // The first call waits for a read timeout and a second one (the fleet lease's), which open
    // the circuit (threshold 2);
    // after that no call touches Redis (skipped calls are not errors), so 100 calls produce
    // exactly 2 errors, not 200.
    assert_eq!(errors, 2, "circuit opened after the threshold");
    let health = cache.health().await;
    assert_ne!(health.l2.circuit, Some(CircuitState::Closed), "{health:?}");
    sleeper.await.unwrap();
    let closed = eventually(Duration::from_secs(5), || async {
        cache.get::<u64>(&p.key(&[&5000]).unwrap()).await; // a call after the cool-down starts the probe
        cache.health().await.l2.circuit == Some(CircuitState::Closed)
    })
    .await;
    assert!(
        closed,
        "the probe closes the circuit once Redis answers in time"
    );
}

#[tokio::test]
async fn invalidations_made_while_redis_is_unreachable_are_replayed() {
    let server = RedisServer::start();
    let a = cache(&server, "replay").await;
    let p = a
        .register(cache_core::PatternConfig::new("prod:<id>", policy(60)).tag("products"))
        .unwrap();
    let key = p.key(&[&1]).unwrap();
    a.set(&key, product(1, "old")).await;
    a.set(&p.key(&[&2]).unwrap(), product(2, "old")).await;
    // Pause every client for a while: Redis keeps its data but answers nobody.
    let mut admin = server.connection().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1200)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    a.invalidate(&key).await; // times out: queued
    a.invalidate_tag("products").await;
    assert!(a.health().await.l2.pending_invalidations >= 1);
    // Once Redis answers, the queue is replayed before any other L2 call.
    let replayed = eventually(Duration::from_secs(5), || async {
        let _ = a.get::<Product>(&p.key(&[&3]).unwrap()).await;
        a.health().await.l2.pending_invalidations == 0
    })
    .await;
    assert!(replayed, "queue drained");
    assert!(
        raw_get(&server, "replay", "prod:1").await.is_none(),
        "the key deletion reached Redis"
    );
    let b = cache(&server, "replay").await;
    let pb = b
        .register(cache_core::PatternConfig::new("prod:<id>", policy(60)).tag("products"))
        .unwrap();
    assert!(
        b.get::<Product>(&pb.key(&[&2]).unwrap()).await.is_none(),
        "the tag mark reached Redis"
    );
}

#[tokio::test]
async fn a_stale_value_covers_a_failing_loader_within_its_window() {
    let server = RedisServer::start();
    let a = cache(&server, "stale").await;
    let with = register(
        &a,
        "with:<id>",
        TtlPolicy::new(Duration::from_millis(200))
            .jitter(0.0)
            .stale(Duration::from_secs(30)),
    );
    let without = register(
        &a,
        "without:<id>",
        TtlPolicy::new(Duration::from_millis(200)).jitter(0.0),
    );
    for p in [&with, &without] {
        a.get_or_load(&p.key(&[&1]).unwrap(), || async {
            Ok::<_, String>(product(1, "v1"))
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failing = || async { Err::<Product, _>("db down".to_string()) };
    let v = a
        .get_or_load(&with.key(&[&1]).unwrap(), failing)
        .await
        .unwrap();
    assert_eq!(v.name, "v1", "stale served");
    assert!(
        a.get_or_load(&without.key(&[&1]).unwrap(), failing)
            .await
            .is_err(),
        "no window: the error"
    );
    assert_eq!(
        a.stats()
            .pattern("with:<id>")
            .unwrap()
            .counters
            .stale_served,
        1
    );
    // A stale value is not a hit: a working loader replaces it.
    let v = a
        .get_or_load(&with.key(&[&1]).unwrap(), || async {
            Ok::<_, String>(product(1, "v2"))
        })
        .await
        .unwrap();
    assert_eq!(v.name, "v2");
    // Another instance finds the stale copy in L2 too.
    let b = cache(&server, "stale").await;
    let pb = register(
        &b,
        "with:<id>",
        TtlPolicy::new(Duration::from_millis(200))
            .jitter(0.0)
            .stale(Duration::from_secs(30)),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = b
        .get_or_load(&pb.key(&[&1]).unwrap(), failing)
        .await
        .unwrap();
    assert_eq!(v.name, "v2");
}

#[tokio::test]
async fn health_reports_each_state() {
    let l1_only = Cache::builder().build().await.unwrap();
    let h = l1_only.health().await;
    assert_eq!((h.l2.status, h.l2.circuit), (L2Status::Disabled, None));

    let mut server =
        RedisServer::start_with_args(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let cache = cache(&server, "health").await;
    let p = register(&cache, "prod:<id>", policy(60));
    cache.set(&p.key(&[&1]).unwrap(), product(1, "x")).await;
    let h = cache.health().await;
    assert_eq!(h.l2.status, L2Status::Up);
    assert_eq!(h.l2.circuit, Some(CircuitState::Closed));
    assert!(h.l2.ping.is_some());
    assert!(
        h.l2.redis_version
            .as_deref()
            .is_some_and(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
    );
    assert!(h.l2.connected_clients.unwrap_or(0) >= 1);
    assert!(h.l2.used_memory.unwrap_or(0) > 0);
    assert_eq!(h.l2.maxmemory, Some(64 * 1024 * 1024));
    assert_eq!(h.l2.maxmemory_policy.as_deref(), Some("allkeys-lru"));
    assert_eq!(h.l1.entries, 1);
    assert!(h.l1.weighted_bytes > 0 && h.l1.weighted_bytes <= h.l1.capacity_bytes);

    server.stop();
    for i in 0..3u64 {
        cache.get::<Product>(&p.key(&[&i]).unwrap()).await; // failures open the circuit
    }
    let h = cache.health().await;
    assert_eq!(h.l2.status, L2Status::Down);
    assert_eq!(h.l2.circuit, Some(CircuitState::Open));
    assert!(h.l2.error.is_some());

    server.restart();
    let h = cache.health().await;
    assert_eq!(
        h.l2.status,
        L2Status::Degraded,
        "Redis answers, circuit not closed yet: {h:?}"
    );
}

#[tokio::test]
async fn redis_evicting_under_maxmemory_means_misses_not_errors() {
    let server =
        RedisServer::start_with_args(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let a = Cache::builder()
        .namespace("lru")
        .redis_url(server.url())
        .l1_capacity_bytes(64 * 1024)
        .build()
        .await
        .unwrap();
    let p = register(&a, "blob:<id>", policy(600));
    let blob = "x".repeat(1024);
    for i in 0..5_000u64 {
        let v = a
            .get_or_load(&p.key(&[&i]).unwrap(), || async {
                Ok::<_, Infallible>(blob.clone())
            })
            .await
            .unwrap();
        assert_eq!(v.len(), 1024);
    }
    for i in 0..5_000u64 {
        let v = a
            .get_or_load(&p.key(&[&i]).unwrap(), || async {
                Ok::<_, Infallible>(blob.clone())
            })
            .await
            .unwrap();
        assert_eq!(v.len(), 1024);
    }
    let s = a.stats().total;
    assert!(
        s.loads > 5_000,
        "Redis evicted entries: they were reloaded ({} loads)",
        s.loads
    );
    assert!(
        s.evictions > 0,
        "L1 stayed within its 64 KiB budget by evicting"
    );
    let h = a.health().await;
    assert!(h.l1.weighted_bytes <= 64 * 1024);
}

/// Pauses every client of `server` (data kept, nobody answered) for `ms` milliseconds.
async fn pause_redis(server: &RedisServer, ms: u64) {
    let mut admin = server.connection().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_of_invalidations_is_replayed_and_l2_used_again() {
    const N: u64 = 8_000;
    let server = RedisServer::start();
    // 100 ms per call and per connect: replaying 8,000 deletions one round trip at a time cannot
    // fit in one attempt, so the replay must keep its progress between attempts.
    let a = builder(&server, "backlog")
        .redis_timeout(Duration::from_millis(100))
        .redis_connect_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let p = register(&a, "prod:<id>", policy(600));
    let keys: Vec<_> = (0..N).map(|i| p.key(&[&i]).unwrap()).collect();
    {
        // Old values in Redis (planted directly: the cache's own writes are not under test here).
        let mut conn = server.connection().await;
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("SET")
                .arg(format!("backlog:k:{}", k.as_str()))
                .arg("old")
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }
    assert_eq!(dbsize(&server).await, N);

    pause_redis(&server, 3_000).await;
    for k in &keys {
        a.invalidate(k).await; // the first time out and open the circuit; the rest are queued
    }
    assert_eq!(
        a.health().await.l2.pending_invalidations,
        N as usize,
        "every deletion queued while Redis does not answer"
    );

    let probe_key = p.key(&[&(N + 1)]).unwrap();
    let drained = eventually(Duration::from_secs(20), || async {
        let _ = a.get::<String>(&probe_key).await;
        a.health().await.l2.pending_invalidations == 0
    })
    .await;
    assert!(drained, "backlog replayed: {:?}", a.health().await);
    let count = |glob: &'static str| {
        let server = &server;
        async move {
            let mut conn = server.connection().await;
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(glob)
                .query_async(&mut conn)
                .await
                .unwrap();
            found.len() as u64
        }
    };
    assert_eq!(
        count("backlog:k:*").await,
        0,
        "every queued deletion reached Redis"
    );
    assert_eq!(count("backlog:d:*").await, N, "each with its tombstone");
    let key = p.key(&[&(N + 2)]).unwrap();
    a.set(&key, "new".to_string()).await;
    assert!(
        raw_get(&server, "backlog", key.as_str()).await.is_some(),
        "L2 used again"
    );
    assert_eq!(a.health().await.l2.circuit, Some(CircuitState::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_misses_redis_removes_the_old_value_on_recovery() {
    let server = RedisServer::start();
    let a = cache(&server, "overwrite").await;
    let p = register(&a, "prod:<id>", policy(600));
    let (one, two) = (p.key(&[&1]).unwrap(), p.key(&[&2]).unwrap());
    a.set(&one, product(1, "v1")).await;
    a.set_many(vec![(two.clone(), product(2, "v1"))]).await;
    assert!(raw_get(&server, "overwrite", "prod:1").await.is_some());

    pause_redis(&server, 3_000).await;
    // Reads time out and open the circuit, so the writes below are skipped: never sent, they
    // cannot land late by themselves.
    for i in 10..12u64 {
        let _ = a.get::<Product>(&p.key(&[&i]).unwrap()).await;
    }
    a.set(&one, product(1, "v2")).await;
    a.set_many(vec![(two.clone(), product(2, "v2"))]).await;
    assert_eq!(
        a.get::<Product>(&one).await.unwrap().name,
        "v2",
        "L1 has it"
    );
    assert!(a.health().await.l2.pending_invalidations >= 2);

    wait_until_answering(&server).await;
    let other = p.key(&[&3]).unwrap();
    let drained = eventually(Duration::from_secs(10), || async {
        let _ = a.get::<Product>(&other).await;
        a.health().await.l2.pending_invalidations == 0
    })
    .await;
    assert!(drained, "queue replayed: {:?}", a.health().await);
    // Another instance must not read the value the outage-time writes replaced.
    let b = cache(&server, "overwrite").await;
    let pb = register(&b, "prod:<id>", policy(600));
    for id in [1u64, 2] {
        let v = b
            .get_or_load(&pb.key(&[&id]).unwrap(), || async move {
                Ok::<_, Infallible>(product(id, "v2"))
            })
            .await
            .unwrap();
        assert_eq!(
            v.name, "v2",
            "key {id}: the old value was removed from Redis"
        );
    }
}

#[tokio::test]
async fn get_many_or_load_serves_stale_values_when_the_loader_fails() {
    let server = RedisServer::start();
    let a = cache(&server, "stale-many").await;
    let p = register(
        &a,
        "prod:<id>",
        TtlPolicy::new(Duration::from_millis(200))
            .jitter(0.0)
            .stale(Duration::from_secs(30)),
    );
    let keys: Vec<_> = (1..=3u64).map(|i| p.key(&[&i]).unwrap()).collect();
    let loaded = a
        .get_many_or_load(&keys, |missing: Vec<usize>| async move {
            Ok::<_, String>(
                missing
                    .iter()
                    .map(|&i| Some(product(i as u64 + 1, "v1")))
                    .collect(),
            )
        })
        .await
        .unwrap();
    assert!(loaded.iter().all(Option::is_some));
    tokio::time::sleep(Duration::from_millis(300)).await; // fresh no longer, stale still
    let failing = |_: Vec<usize>| async { Err::<Vec<Option<Product>>, _>("db down".to_string()) };
    let stale = a.get_many_or_load(&keys, failing).await.unwrap();
    let names: Vec<_> = stale
        .iter()
        .map(|v| v.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["v1"; 3], "stale values served");
    assert_eq!(a.stats().total.stale_served, 3);
    // A key without a stale value: the loader's error.
    let mut with_new = keys.clone();
    with_new.push(p.key(&[&4]).unwrap());
    assert!(a.get_many_or_load(&with_new, failing).await.is_err());
}

#[tokio::test]
async fn health_reports_open_until_a_probe_is_in_flight() {
    let mut server = RedisServer::start();
    // Marks are not polled; the backplane's reader starts a probe only after Redis answered it
    // (never while it is stopped below), so only the calls below can start one.
    let cache = builder(&server, "halfopen").build().await.unwrap();
    let p = register(&cache, "prod:<id>", policy(60));
    server.stop();
    for i in 0..2u64 {
        let _ = cache.get::<u8>(&p.key(&[&i]).unwrap()).await; // two failures open the circuit
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // past the 300 ms cool-down
    let h = cache.health().await;
    assert_eq!(
        h.l2.circuit,
        Some(CircuitState::Open),
        "no call since the cool-down, so no probe: not half-open"
    );
}

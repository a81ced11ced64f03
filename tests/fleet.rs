//! A fleet on one Redis: several `Cache` values, each with its own connections, stand for the
//! instances of a service. On a cold key one instance loads (the fleet lease) and the others wait
//! for its value; a holder that dies wedges the key no longer than its lease; a waiter never fails
//! because of the lease.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheBuilder, Counters, Key, Pattern};
use redis::AsyncCommands;
use support::*;
use tiercache_tests::RedisServer;

/// `instances` caches of namespace `ns` on `server`, each built by `build` from the test builder.
async fn fleet(
    server: &RedisServer,
    ns: &str,
    instances: usize,
    build: impl Fn(CacheBuilder) -> CacheBuilder,
) -> Vec<Cache> {
    let mut caches = Vec::new();
    for _ in 0..instances {
        caches.push(build(builder(server, ns)).build().await.unwrap());
    }
    caches
}

fn key_of(cache: &Cache, policy: cache_core::TtlPolicy) -> (Pattern, Key) {
    let p = register(cache, "prod:<id>", policy);
    let k = p.key(&[&1]).unwrap();
    (p, k)
}

fn total(caches: &[Cache]) -> Counters {
    let mut sum = Counters::default();
    for c in caches {
        let s = c.stats().total;
        sum.loads += s.loads;
        sum.lease_waits += s.lease_waits;
        sum.lease_timeouts += s.lease_timeouts;
    }
    sum
}

/// `callers` concurrent `get_or_load`s on each cache, with a loader of `load_time`; returns how
/// many times the loader ran.
async fn stampede(caches: &[Cache], callers: usize, load_time: Duration) -> usize {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for cache in caches {
        let (_, key) = key_of(cache, policy(60));
        for _ in 0..callers {
            let (cache, key, calls) = (cache.clone(), key.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load(&key, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(load_time).await;
                        Ok::<_, Infallible>(product(1, "loaded once"))
                    })
                    .await
                    .unwrap()
            }));
        }
    }
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().name, "loaded once");
    }
    calls.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_of_fifty_callers_run_the_loader_once() {
    let server = RedisServer::start();
    let caches = fleet(&server, "fleet", 4, |b| b).await;
    assert_eq!(stampede(&caches, 50, Duration::from_millis(200)).await, 1);
    let sum = total(&caches);
    assert_eq!(sum.loads, 1);
    assert_eq!(sum.lease_waits, 3, "each other instance's leader waited");
    assert_eq!(sum.lease_timeouts, 0);
    let mut conn = server.connection().await;
    let lease: Option<String> = conn.get("fleet:l:prod:1").await.unwrap();
    assert_eq!(lease, None, "the lease is released after the write");
}

/// Calls of `command` so far, from `INFO commandstats`.
async fn calls_of(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A leased cold miss is three round trips (`MGET`, the lease's script, the write-back's script,
/// which releases the lease too); a load that writes nothing back (its loader failed) still
/// releases its lease, with the release script.
#[tokio::test]
async fn a_cold_miss_releases_its_lease_with_the_write_back() {
    let server = RedisServer::start();
    let cache = builder(&server, "fold").build().await.unwrap();
    let (p, key) = key_of(&cache, policy(60));
    let mut conn = server.connection().await;
    // A first miss loads the scripts into Redis (`NOSCRIPT`, `SCRIPT LOAD`, `EVALSHA` again).
    let warm = p.key(&[&0]).unwrap();
    cache
        .get_or_load(&warm, || async { Ok::<_, Infallible>(0u8) })
        .await
        .unwrap();
    let (mget, evalsha) = (
        calls_of(&mut conn, "mget").await,
        calls_of(&mut conn, "evalsha").await,
    );
    let value = cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(5u8) })
        .await
        .unwrap();
    assert_eq!(*value, 5);
    assert_eq!(calls_of(&mut conn, "mget").await - mget, 1);
    assert_eq!(
        calls_of(&mut conn, "evalsha").await - evalsha,
        2,
        "the lease, then the write-back that releases it"
    );
    let lease: Option<String> = conn.get("fold:l:prod:1").await.unwrap();
    assert_eq!(lease, None, "released by the write-back");
    assert!(raw_get(&server, "fold", "prod:1").await.is_some());

    let failing = p.key(&[&2]).unwrap();
    let failed = cache
        .get_or_load(&failing, || async { Err::<u8, _>("down") })
        .await;
    assert!(failed.is_err());
    let lease: Option<String> = conn.get("fold:l:prod:2").await.unwrap();
    assert_eq!(lease, None, "released without a write-back");
}

/// The race the lease's script closes: an instance whose L2 read misses just before another one
/// writes the value and releases its lease must read that value, not take the freed lease and
/// load again. With an instant loader the window is wide: 200 cold keys, one caller on each of
/// four instances at once, one load per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_value_written_between_a_miss_and_the_lease_is_read_not_loaded_again() {
    let server = RedisServer::start();
    let caches = fleet(&server, "race", 4, |b| b).await;
    let patterns: Vec<Pattern> = caches
        .iter()
        .map(|c| register(c, "prod:<id>", policy(60)))
        .collect();
    for id in 0..200u64 {
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = caches
            .iter()
            .zip(&patterns)
            .map(|(cache, pattern)| {
                let (cache, key, calls) =
                    (cache.clone(), pattern.key(&[&id]).unwrap(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(&key, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(product(id, "loaded once"))
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in futures::future::join_all(tasks).await {
            assert_eq!(t.unwrap().name, "loaded once");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "key {id} loaded more than once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_lease_every_instance_loads() {
    let server = RedisServer::start();
    // Off per builder.
    let caches = fleet(&server, "off1", 4, |b| b.fleet_lease(false)).await;
    assert_eq!(stampede(&caches, 10, Duration::from_millis(200)).await, 4);
    assert_eq!(total(&caches).lease_waits, 0);
    // Off per pattern.
    let caches = fleet(&server, "off2", 4, |b| b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = caches
        .iter()
        .map(|cache| {
            let (_, key) = key_of(cache, policy(60).lease(false));
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&key, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok::<_, Infallible>(1u8)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_is_renewed_while_its_loader_runs() {
    let server = RedisServer::start();
    // Leases of 150 ms, loads of 800 ms: without renewal the others would take over.
    let caches = fleet(&server, "renew", 3, |b| {
        b.fleet_lease_timing(Duration::from_millis(150), Duration::from_secs(5))
    })
    .await;
    assert_eq!(stampede(&caches, 5, Duration::from_millis(800)).await, 1);
    assert_eq!(total(&caches).lease_timeouts, 0);
}

/// Waits until the lease of `prod:1` in `ns` is held.
async fn lease_taken(server: &RedisServer, ns: &str) {
    let mut conn = server.connection().await;
    let key = format!("{ns}:l:prod:1");
    assert!(
        eventually(Duration::from_secs(5), || {
            let (mut conn, key) = (conn.clone(), key.clone());
            async move { conn.exists::<_, bool>(&key).await.unwrap() }
        })
        .await,
        "the lease was taken"
    );
    let _ = &mut conn;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_dies_mid_load_wedges_the_key_no_longer_than_its_lease() {
    let server = RedisServer::start();
    let lease_ttl = Duration::from_millis(400);
    let mut caches = fleet(&server, "crash", 2, |b| {
        b.fleet_lease_timing(lease_ttl, Duration::from_secs(10))
    })
    .await;
    let survivor = caches.pop().unwrap();
    let doomed = caches.pop().unwrap();
    let (_, key) = key_of(&doomed, policy(60));
    let holder = tokio::spawn({
        let key = key.clone();
        async move {
            doomed
                .get_or_load(&key, std::future::pending::<Result<u8, Infallible>>)
                .await
        }
    });
    lease_taken(&server, "crash").await;
    // The instance dies with its load: the task and its cache are gone, the lease stays behind.
    holder.abort();
    let _ = holder.await;
    let (_, key) = key_of(&survivor, policy(60));
    let started = Instant::now();
    let value = survivor
        .get_or_load(&key, || async { Ok::<_, Infallible>(7u8) })
        .await
        .unwrap();
    assert_eq!(*value, 7);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took over once the lease expired, not after the 10 s wait: {:?}",
        started.elapsed()
    );
    let s = survivor.stats().total;
    assert_eq!((s.loads, s.lease_waits, s.lease_timeouts), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_of_another_owner_is_waited_out_then_taken_over() {
    let server = RedisServer::start();
    let cache = builder(&server, "foreign")
        .fleet_lease_timing(Duration::from_secs(1), Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let (_, key) = key_of(&cache, policy(60));
    let mut conn = server.connection().await;
    // Another owner's lease (a token this cache never drew), expiring in 500 ms.
    let _: () = redis::cmd("SET")
        .arg("foreign:l:prod:1")
        .arg("someone-else")
        .arg("PX")
        .arg(500)
        .query_async(&mut conn)
        .await
        .unwrap();
    let started = Instant::now();
    let value = cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(3u8) })
        .await
        .unwrap();
    assert_eq!(*value, 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "waited for the lease: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "took it over when it expired: {took:?}"
    );
    // Its own lease is released; the foreign one was not touched while it lived.
    let lease: Option<String> = conn.get("foreign:l:prod:1").await.unwrap();
    assert_eq!(lease, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_that_never_ends_costs_a_waiter_the_wait_timeout_only() {
    let server = RedisServer::start();
    let wait = Duration::from_millis(500);
    let cache = builder(&server, "wedged")
        .fleet_lease_timing(Duration::from_secs(1), wait)
        .build()
        .await
        .unwrap();
    let (_, key) = key_of(&cache, policy(60));
    let mut conn = server.connection().await;
    let _: () = conn.set("wedged:l:prod:1", "forever").await.unwrap();
    let started = Instant::now();
    let value = cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(5u8) })
        .await
        .unwrap();
    assert_eq!(*value, 5);
    assert!(started.elapsed() >= wait);
    assert!(started.elapsed() < wait * 4, "{:?}", started.elapsed());
    let s = cache.stats().total;
    assert_eq!((s.loads, s.lease_waits, s.lease_timeouts), (1, 1, 1));
    let lease: String = conn.get("wedged:l:prod:1").await.unwrap();
    assert_eq!(
        lease, "forever",
        "another owner's lease is never released by a waiter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_whose_redis_goes_away_loads_by_itself() {
    let mut server = RedisServer::start();
    let cache = builder(&server, "gone")
        .fleet_lease_timing(Duration::from_secs(5), Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let (_, key) = key_of(&cache, policy(60));
    let mut conn = server.connection().await;
    let _: () = conn.set("gone:l:prod:1", "held-elsewhere").await.unwrap();
    let waiter = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move {
            cache
                .get_or_load(&key, || async { Ok::<_, Infallible>(9u8) })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop();
    let value = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("the waiter does not wait out the lease")
        .unwrap()
        .unwrap();
    assert_eq!(*value, 9);
    assert_eq!(cache.stats().total.loads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_ahead_reloads_once_in_the_fleet_and_readers_never_wait() {
    let server = RedisServer::start();
    let caches = fleet(&server, "ahead", 3, |b| b).await;
    let ttl = Duration::from_secs(2);
    let policy = cache_core::TtlPolicy::new(ttl)
        .l1_ttl(ttl)
        .jitter(0.0)
        .refresh_ahead(0.5);
    let keys: Vec<Key> = caches.iter().map(|c| key_of(c, policy.clone()).1).collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let read = |i: usize, name: &'static str| {
        let (cache, key, calls) = (caches[i].clone(), keys[i].clone(), calls.clone());
        async move {
            cache
                .get_or_refresh(&key, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, Infallible>(product(1, name))
                })
                .await
                .unwrap()
        }
    };
    let written = Instant::now();
    assert_eq!(read(0, "v1").await.name, "v1");
    for i in 1..3 {
        assert_eq!(read(i, "v1").await.name, "v1", "from L2");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Before the deadline (half the TTL), hits trigger nothing.
    let s = total_refreshes(&caches);
    assert_eq!(s, 0);
    tokio::time::sleep(Duration::from_millis(1_200).saturating_sub(written.elapsed())).await;
    // In the last half: every instance's readers get the current value at once.
    let started = Instant::now();
    let mut reads = Vec::new();
    for i in 0..3 {
        for _ in 0..20 {
            reads.push(tokio::spawn(read(i, "v2")));
        }
    }
    for r in futures::future::join_all(reads).await {
        assert_eq!(r.unwrap().name, "v1", "the current value, at once");
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "readers never wait for the 300 ms reload: {:?}",
        started.elapsed()
    );
    // One reload in the fleet; every instance then has its value in L1, before the TTL ends.
    for (cache, key) in caches.iter().zip(&keys) {
        assert!(
            eventually(Duration::from_millis(700), || {
                let (cache, key) = (cache.clone(), key.clone());
                async move {
                    cache
                        .get::<Product>(&key)
                        .await
                        .is_some_and(|p| p.name == "v2")
                }
            })
            .await,
            "the refreshed value reached every instance"
        );
    }
    assert!(
        written.elapsed() < ttl,
        "refreshed before the entry expired"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the first load and one refresh"
    );
    assert_eq!(total_refreshes(&caches), 1);
}

fn total_refreshes(caches: &[Cache]) -> u64 {
    caches.iter().map(|c| c.stats().total.refresh_aheads).sum()
}

// ----- loader timeouts -----

/// A cache whose `prod:1` holds `v1`, now expired but within its stale window.
async fn expired_entry(
    server: &RedisServer,
    ns: &str,
    policy: cache_core::TtlPolicy,
) -> (Cache, Key) {
    let cache = cache(server, ns).await;
    let (_, key) = key_of(&cache, policy.jitter(0.0).stale(Duration::from_secs(30)));
    cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "v1")) })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    (cache, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_soft_timeout_the_stale_value_answers_and_the_load_fills_the_cache() {
    let server = RedisServer::start();
    let policy = policy(1).soft_timeout(Duration::from_millis(100));
    let (cache, key) = expired_entry(&server, "soft", policy).await;
    let started = Instant::now();
    let value = cache
        .get_or_refresh(&key, || async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, Infallible>(product(1, "v2"))
        })
        .await
        .unwrap();
    assert_eq!(value.name, "v1", "the stale value, past the soft timeout");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cache.stats().total.soft_timeouts, 1);
    assert!(
        eventually(Duration::from_secs(2), || {
            let (cache, key) = (cache.clone(), key.clone());
            async move {
                cache
                    .get::<Product>(&key)
                    .await
                    .is_some_and(|p| p.name == "v2")
            }
        })
        .await,
        "the load finished in the background and filled the cache"
    );
    assert!(raw_get(&server, "soft", "prod:1").await.is_some());
    assert_eq!(cache.stats().total.loads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_hard_timeout_the_load_is_abandoned_for_the_stale_value() {
    let server = RedisServer::start();
    let policy = policy(1).hard_timeout(Duration::from_millis(200));
    let (cache, key) = expired_entry(&server, "hard", policy).await;
    let started = Instant::now();
    let value = cache
        .get_or_load(&key, || {
            std::future::pending::<Result<Product, Infallible>>()
        })
        .await
        .unwrap();
    assert_eq!(value.name, "v1");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(1),
        "{took:?}"
    );
    let s = cache.stats().total;
    assert_eq!((s.hard_timeouts, s.stale_served), (1, 1));
    assert_eq!(cache.loads_in_flight(), 0, "the load was abandoned");
    let mut conn = server.connection().await;
    let lease: Option<String> = conn.get("hard:l:prod:1").await.unwrap();
    assert_eq!(lease, None, "its lease released");
}

// ----- the attribute -----

static SLOW_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cache_core::cached(key = "unleased:<id>", ttl = 60, lease = false, cache = cache)]
async fn unleased(cache: &Cache, id: u64) -> Result<u64, Infallible> {
    SLOW_LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_false_in_the_attribute_lets_every_instance_load() {
    let server = RedisServer::start();
    let caches = fleet(&server, "attr", 3, |b| b).await;
    let tasks: Vec<_> = caches
        .iter()
        .map(|cache| {
            let cache = cache.clone();
            tokio::spawn(async move { unleased(&cache, 4).await.unwrap() })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap(), 4);
    }
    assert_eq!(SLOW_LOADS.load(Ordering::SeqCst), 3);
    let pattern = caches[0]
        .pattern("unleased:<id>")
        .expect("registered by the site");
    assert!(!pattern.policy().leased());
}

/// Within one process single flight leaves one load per key, so the lease of a key held by this
/// process is held by a load that an invalidation detached (its value may predate the
/// invalidation). The next load of the process takes the lease over at once instead of waiting
/// for it as for another instance's (under the catalog's load with 2 % writes such waits were 3 %
/// of requests); the older load answers its own callers, its value is dropped, and it can no
/// longer release the newer load's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_detached_by_an_invalidation_hands_its_lease_to_the_next_load_of_its_process() {
    let server = RedisServer::start();
    // A waiter would wait up to 10 s for a lease that lasts 10 s.
    let cache = builder(&server, "handover")
        .fleet_lease_timing(Duration::from_secs(10), Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let (_, key) = key_of(&cache, policy(60));
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let older = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move {
            cache
                .get_or_load(&key, || async move {
                    gate.await.unwrap();
                    Ok::<_, Infallible>(1u8)
                })
                .await
                .unwrap()
        }
    });
    lease_taken(&server, "handover").await;
    cache.invalidate(&key).await;
    let newer = tokio::time::timeout(
        Duration::from_secs(3),
        cache.get_or_load(&key, || async { Ok::<_, Infallible>(2u8) }),
    )
    .await
    .expect("took the lease over instead of waiting for it")
    .unwrap();
    assert_eq!(*newer, 2);
    assert_eq!(cache.stats().total.lease_waits, 0);
    go.send(()).unwrap();
    assert_eq!(
        *older.await.unwrap(),
        1,
        "the older load answers its own caller"
    );
    let mut conn = server.connection().await;
    let lease: Option<String> = conn.get("handover:l:prod:1").await.unwrap();
    assert_eq!(lease, None, "released by the newer load's write-back");
    // The newer value stays: the older one, loaded before the invalidation, was dropped.
    let cached = cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(3u8) })
        .await
        .unwrap();
    assert_eq!(*cached, 2);
    assert_eq!(cache.stats().total.loads, 2);
}

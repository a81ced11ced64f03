//! The backplane: several `Cache` values on one Redis (each with its own connections) behave as
//! one cache. Every invalidation and overwrite made by one reaches the others' L1 within
//! milliseconds (each check allows 1 s); fills are not broadcast; an instance ignores its own
//! messages; a lost subscription resyncs; clocks skewed by ±5 s change nothing; an idle instance
//! costs Redis about one command a second.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::{Cache, Key, PatternConfig, TtlPolicy};
use support::*;
use tiercache_tests::RedisServer;

/// How long a message may take to arrive in these tests (expected: a few ms).
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

/// A shared "database": what every instance's loader reads.
#[derive(Clone, Default)]
struct Db(Arc<Mutex<HashMap<u64, String>>>);

impl Db {
    fn put(&self, id: u64, name: &str) {
        self.0.lock().unwrap().insert(id, name.to_owned());
    }

    fn read(&self, id: u64) -> Product {
        product(
            id,
            self.0
                .lock()
                .unwrap()
                .get(&id)
                .map_or("none", |s| s.as_str()),
        )
    }
}

/// A pattern cached 10 minutes (L1 well beyond any test's length), tagged `all` and `cat:<id>`.
fn register_prod(cache: &Cache) -> cache_core::Pattern {
    cache
        .register(
            PatternConfig::new(
                "prod:<id>",
                TtlPolicy::new(Duration::from_secs(600)).l1_ttl(Duration::from_secs(300)),
            )
            .tag("all")
            .tag("cat:<id>"),
        )
        .unwrap()
}

async fn read(cache: &Cache, key: &Key, db: &Db, id: u64) -> String {
    let db = db.clone();
    cache
        .get_or_load(key, || async move { Ok::<_, Infallible>(db.read(id)) })
        .await
        .unwrap()
        .name
        .clone()
}

/// Polls `cache` until it serves `expected` for `id`; returns how long it took.
async fn served_within(
    cache: &Cache,
    key: &Key,
    db: &Db,
    id: u64,
    expected: &str,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < PROPAGATION_BOUND {
        if read(cache, key, db, id).await == expected {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalidation_and_overwrite_reaches_the_other_instances_l1() {
    let server = RedisServer::start();
    let db = Db::default();
    let (a, b) = (cache(&server, "bp").await, cache(&server, "bp").await);
    let (pa, pb) = (register_prod(&a), register_prod(&b));
    type Change = fn(Cache, Key, u64) -> futures::future::BoxFuture<'static, ()>;
    let changes: [(&str, Change); 5] = [
        ("key evict", |a, k, _| {
            Box::pin(async move { a.invalidate(&k).await })
        }),
        ("tag evict", |a, _, id| {
            Box::pin(async move { a.invalidate_tag(&format!("cat:{id}")).await })
        }),
        ("pattern", |a, _, id| {
            Box::pin(async move { a.invalidate_pattern(&format!("prod:{id}")).await })
        }),
        ("clear", |a, _, _| Box::pin(async move { a.clear().await })),
        ("overwrite", |a, k, id| {
            Box::pin(async move { a.set(&k, product(id, "v2")).await })
        }),
    ];
    for (id, (what, change)) in (1u64..).zip(changes) {
        let (ka, kb) = (pa.key(&[&id]).unwrap(), pb.key(&[&id]).unwrap());
        db.put(id, "v1");
        assert_eq!(read(&b, &kb, &db, id).await, "v1");
        assert_eq!(read(&a, &ka, &db, id).await, "v1");
        let before = b.stats().total.l1_hits;
        assert_eq!(read(&b, &kb, &db, id).await, "v1");
        assert_eq!(
            b.stats().total.l1_hits,
            before + 1,
            "{what}: B holds v1 in L1"
        );
        db.put(id, "v2");
        change(a.clone(), ka.clone(), id).await;
        let took = served_within(&b, &kb, &db, id, "v2").await;
        assert!(took.is_some(), "{what} on A: B still serves v1 from its L1");
        assert_eq!(read(&a, &ka, &db, id).await, "v2", "{what}: A itself");
    }
    assert!(b.stats().backplane.received >= 5);
    assert_eq!(b.stats().backplane.resyncs, 0);
    assert!(b.stats().backplane.subscribed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_are_not_broadcast_and_own_messages_are_ignored() {
    let server = RedisServer::start();
    let db = Db::default();
    let (a, b) = (cache(&server, "own").await, cache(&server, "own").await);
    let (pa, pb) = (register_prod(&a), register_prod(&b));
    for id in 0..20u64 {
        db.put(id, "v1");
        read(&b, &pb.key(&[&id]).unwrap(), &db, id).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.stats().backplane.published, 0, "loads are not broadcast");
    assert_eq!(a.stats().backplane.received, 0);

    // A's own overwrite comes back to it through the stream: it must not drop its fresh copy.
    let key = pa.key(&[&100]).unwrap();
    a.set(&key, product(100, "mine")).await;
    assert_eq!(a.stats().backplane.published, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hits = a.stats().total.l1_hits;
    assert_eq!(a.get::<Product>(&key).await.unwrap().name, "mine");
    assert_eq!(a.stats().total.l1_hits, hits + 1, "still in A's L1");
    assert_eq!(a.stats().backplane.received, 0, "its own message ignored");
    assert!(
        eventually(PROPAGATION_BOUND, || async {
            b.stats().backplane.received == 1
        })
        .await,
        "B received it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_resyncs_and_no_stale_value_is_read_after() {
    let mut server = RedisServer::start();
    let db = Db::default();
    let (a, b) = (cache(&server, "gap").await, cache(&server, "gap").await);
    let (pa, pb) = (register_prod(&a), register_prod(&b));
    let (ka, kb) = (pa.key(&[&1]).unwrap(), pb.key(&[&1]).unwrap());
    db.put(1, "v1");
    assert_eq!(read(&b, &kb, &db, 1).await, "v1");

    server.stop();
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.stats().backplane.resyncs >= 1
        })
        .await,
        "B noticed the lost subscription: {:?}",
        b.stats().backplane
    );
    assert!(!b.stats().backplane.subscribed);
    // Meanwhile the value changes and A invalidates it (queued: Redis is down).
    db.put(1, "v2");
    a.invalidate(&ka).await;
    assert_eq!(
        read(&b, &kb, &db, 1).await,
        "v2",
        "B dropped its copy older than the outage"
    );

    server.restart();
    assert!(
        eventually(Duration::from_secs(10), || async {
            b.stats().backplane.subscribed && a.stats().backplane.subscribed
        })
        .await,
        "subscribed again: {:?}",
        b.stats().backplane
    );
    assert!(
        b.stats().backplane.resyncs >= 2,
        "Redis restarted empty: the gap cannot be replayed, L1 dropped again"
    );
    // And pushed invalidation works again.
    db.put(1, "v3");
    a.invalidate(&ka).await;
    assert!(
        served_within(&b, &kb, &db, 1, "v3").await.is_some(),
        "B serves the new value after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_disconnect_loses_no_message() {
    let server = RedisServer::start();
    let db = Db::default();
    let (a, b) = (
        cache(&server, "replay").await,
        cache(&server, "replay").await,
    );
    let (pa, pb) = (register_prod(&a), register_prod(&b));
    let mut admin = server.connection().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let readers: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains("cmd=xread"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(
        readers.len(),
        2,
        "one reader per instance, on its own connection"
    );
    let (ka, kb) = (pa.key(&[&7]).unwrap(), pb.key(&[&7]).unwrap());
    db.put(7, "v1");
    assert_eq!(read(&b, &kb, &db, 7).await, "v1");
    let (resyncs, received) = (b.stats().backplane.resyncs, b.stats().backplane.received);
    // Kill both readers (only them), and invalidate on A while they reconnect: B drops its L1
    // and must still learn of the invalidation, from the stream, without a second resync.
    for id in readers {
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    db.put(7, "v2");
    a.invalidate(&ka).await;
    assert!(
        served_within(&b, &kb, &db, 7, "v2").await.is_some(),
        "the invalidation reached B"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            b.stats().backplane.subscribed && b.stats().backplane.received == received + 1
        })
        .await,
        "B received A's message: {:?}",
        b.stats().backplane
    );
    assert_eq!(
        b.stats().backplane.resyncs,
        resyncs + 1,
        "the lost subscription dropped L1 once, and the gap was replayed: no second resync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_skewed_by_five_seconds_leave_no_stale_value() {
    let server = RedisServer::start();
    let db = Db::default();
    let skewed = |ms| builder(&server, "skew").test_clock_skew_ms(ms).build();
    // A's clock runs 5 s behind, B's 5 s ahead: with wall-clock stamps, A's marks and tombstones
    // would be older than what B loaded before them.
    let (a, b) = (skewed(-5_000).await.unwrap(), skewed(5_000).await.unwrap());
    let c = cache(&server, "skew").await;
    let (pa, pb, pc) = (register_prod(&a), register_prod(&b), register_prod(&c));
    let k = |p: &cache_core::Pattern, id: u64| p.key(&[&id]).unwrap();

    // A tag evict on A against a value B loaded before it.
    db.put(1, "v1");
    assert_eq!(read(&b, &k(&pb, 1), &db, 1).await, "v1");
    db.put(1, "v2");
    a.invalidate_tag("cat:1").await;
    assert!(served_within(&b, &k(&pb, 1), &db, 1, "v2").await.is_some());
    assert_eq!(
        read(&c, &k(&pc, 1), &db, 1).await,
        "v2",
        "L2 copy stale too"
    );

    // A clear on A.
    db.put(2, "v1");
    assert_eq!(read(&b, &k(&pb, 2), &db, 2).await, "v1");
    db.put(2, "v2");
    a.clear().await;
    assert!(served_within(&b, &k(&pb, 2), &db, 2, "v2").await.is_some());
    assert_eq!(read(&c, &k(&pc, 2), &db, 2).await, "v2");

    // A key evict on A while B's load of the old value is in flight: B must not write it back
    // to either tier (tombstone against B's stamp).
    db.put(3, "v1");
    let slow = {
        let (b, key, db) = (b.clone(), k(&pb, 3), db.clone());
        tokio::spawn(async move {
            b.get_or_load(&key, || async move {
                let old = db.read(3);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, Infallible>(old)
            })
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.put(3, "v2");
    a.invalidate(&k(&pa, 3)).await;
    assert_eq!(
        slow.await.unwrap().name,
        "v1",
        "the load in flight returns what it read"
    );
    assert!(served_within(&b, &k(&pb, 3), &db, 3, "v2").await.is_some());
    assert_eq!(read(&c, &k(&pc, 3), &db, 3).await, "v2");

    // An overwrite on A (behind) of a value B (ahead) wrote.
    b.set(&k(&pb, 4), product(4, "v1")).await;
    assert_eq!(read(&c, &k(&pc, 4), &db, 4).await, "v1");
    a.set(&k(&pa, 4), product(4, "v2")).await;
    assert!(served_within(&b, &k(&pb, 4), &db, 4, "v2").await.is_some());
    assert!(served_within(&c, &k(&pc, 4), &db, 4, "v2").await.is_some());
}

/// Sums `INFO commandstats` calls (the `INFO` calls themselves excluded) and reads
/// `keyspace_misses`.
async fn redis_counters(server: &RedisServer) -> (u64, u64) {
    let mut conn = server.connection().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let commands = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let misses = stats
        .lines()
        .find_map(|l| l.strip_prefix("keyspace_misses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    (commands, misses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_costs_about_one_command_a_second() {
    let server = RedisServer::start();
    let db = Db::default();
    let (a, b) = (cache(&server, "idle").await, cache(&server, "idle").await);
    let (pa, pb) = (register_prod(&a), register_prod(&b));
    // Both know hundreds of tags and their marks (what the per-second refresh used to poll).
    for id in 0..300u64 {
        db.put(id, "v1");
        read(&a, &pa.key(&[&id]).unwrap(), &db, id).await;
        read(&b, &pb.key(&[&id]).unwrap(), &db, id).await;
        if id % 3 == 0 {
            a.invalidate_tag(&format!("cat:{id}")).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (commands, misses) = redis_counters(&server).await;
    let idle = Duration::from_secs(4);
    tokio::time::sleep(idle).await;
    let (commands_after, misses_after) = redis_counters(&server).await;
    let per_instance_per_second = (commands_after - commands) as f64 / 2.0 / idle.as_secs_f64();
    assert!(
        per_instance_per_second <= 1.5,
        "{per_instance_per_second} commands per idle instance per second"
    );
    assert!(
        misses_after - misses <= 2,
        "{} keyspace misses while idle",
        misses_after - misses
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_while_redis_was_down_sends_what_it_kept_once_redis_answers() {
    let mut server = RedisServer::start();
    server.stop();
    let db = Db::default();
    let a = cache(&server, "late").await;
    let pa = register_prod(&a);
    assert!(!a.stats().backplane.subscribed);
    a.set(&pa.key(&[&1]).unwrap(), product(1, "offline")).await;
    a.invalidate(&pa.key(&[&2]).unwrap()).await;

    server.restart();
    let b = cache(&server, "late").await;
    let pb = register_prod(&b);
    let healthy = eventually(Duration::from_secs(10), || async {
        let _ = read(&a, &pa.key(&[&3]).unwrap(), &db, 3).await;
        let h = a.health().await;
        h.l2.status == cache_core::L2Status::Up && a.stats().backplane.subscribed
    })
    .await;
    assert!(healthy, "{:?} {:?}", a.health().await, a.stats().backplane);
    assert!(
        eventually(PROPAGATION_BOUND, || async {
            b.stats().backplane.received >= 2
        })
        .await,
        "B received A's kept messages: {:?}",
        b.stats().backplane
    );
    let _ = pb;
}

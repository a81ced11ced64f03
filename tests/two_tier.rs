//! The two tiers against a real Redis: hits per tier, write-through, every invalidation form,
//! TTLs and jitter, batches, and values in Redis that are not ours. The sharing between instances
//! and the invalidations run over plain TCP and over TLS (`over_plain_and_tls!`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::key::{Hashed, render_glob};
use cache_core::{PatternConfig, TtlPolicy};
use redis::AsyncCommands;
use support::*;
use tiercache_tests::RedisServer;

async fn load(
    cache: &cache_core::Cache,
    key: &cache_core::Key,
    value: Product,
    calls: &AtomicUsize,
) -> Arc<Product> {
    cache
        .get_or_load(key, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(value)
        })
        .await
        .unwrap()
}

over_plain_and_tls!(l1_hit_and_l2_hit_from_a_second_cache);
async fn l1_hit_and_l2_hit_from_a_second_cache(transport: Transport) {
    let server = transport.start();
    let a = cache(&server, "shop").await;
    let b = cache(&server, "shop").await;
    let (pa, pb) = (
        register(&a, "prod:<id>", policy(60)),
        register(&b, "prod:<id>", policy(60)),
    );
    let calls = AtomicUsize::new(0);

    let v = load(&a, &pa.key(&[&1]).unwrap(), product(1, "Lamp"), &calls).await;
    assert_eq!(v.name, "Lamp");
    let v = load(&a, &pa.key(&[&1]).unwrap(), product(1, "other"), &calls).await;
    assert_eq!(v.name, "Lamp", "second read is an L1 hit");
    let v = load(&b, &pb.key(&[&1]).unwrap(), product(1, "other"), &calls).await;
    assert_eq!(v.name, "Lamp", "another instance reads L2");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "loaded once in all");

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa.total.loads, sa.total.l1_hits, sa.total.misses),
        (1, 1, 1)
    );
    assert_eq!(
        (sb.total.loads, sb.total.l2_hits, sb.total.l1_hits),
        (0, 1, 0)
    );
    let v: Arc<Product> = b.get(&pb.key(&[&1]).unwrap()).await.unwrap();
    assert_eq!(v.name, "Lamp");
    assert_eq!(
        b.stats().pattern("prod:<id>").unwrap().counters.l1_hits,
        1,
        "copied into B's L1"
    );
    assert!(sa.hit_ratio() > 0.49 && sa.hit_ratio() < 0.51);
}

#[tokio::test]
async fn set_writes_through_to_both_tiers() {
    let server = RedisServer::start();
    let a = cache(&server, "w").await;
    let b = cache(&server, "w").await;
    let p = register(&a, "prod:<id>", policy(60));
    let pb = register(&b, "prod:<id>", policy(60));
    let key = p.key(&[&5]).unwrap();
    a.set(&key, product(5, "Desk")).await;
    assert!(raw_get(&server, "w", "prod:5").await.is_some(), "in Redis");
    let mut conn = server.connection().await;
    let pttl: i64 = conn.pttl("w:k:prod:5").await.unwrap();
    assert!(
        pttl > 0 && pttl <= 60_000,
        "written with its TTL, got {pttl}"
    );
    assert_eq!(a.get::<Product>(&key).await.unwrap().name, "Desk");
    assert_eq!(a.stats().total.l1_hits, 1);
    assert_eq!(
        b.get::<Product>(&pb.key(&[&5]).unwrap())
            .await
            .unwrap()
            .name,
        "Desk"
    );
    assert_eq!(b.stats().total.l2_hits, 1);

    let keys: Vec<_> = (10..20u64).map(|i| p.key(&[&i]).unwrap()).collect();
    a.set_many(
        keys.iter()
            .cloned()
            .map(|k| (k, product(0, "batch")))
            .collect(),
    )
    .await;
    let keys: Vec<_> = (10..20u64).map(|i| pb.key(&[&i]).unwrap()).collect();
    let got = b.get_many::<Product>(&keys).await;
    assert!(
        got.iter()
            .all(|v| v.as_ref().is_some_and(|p| p.name == "batch"))
    );
}

over_plain_and_tls!(invalidate_removes_a_key_from_both_tiers);
async fn invalidate_removes_a_key_from_both_tiers(transport: Transport) {
    let server = transport.start();
    let a = cache(&server, "inv").await;
    let p = register(&a, "prod:<id>", policy(60));
    let key = p.key(&[&1]).unwrap();
    let calls = AtomicUsize::new(0);
    load(&a, &key, product(1, "v1"), &calls).await;
    assert!(raw_get(&server, "inv", "prod:1").await.is_some());
    a.invalidate(&key).await;
    assert!(raw_get(&server, "inv", "prod:1").await.is_none());
    assert!(a.get::<Product>(&key).await.is_none());
    let v = load(&a, &key, product(1, "v2"), &calls).await;
    assert_eq!(v.name, "v2");
}

const NASTY: [&str; 10] = ["1", "*", "1*", "[1]", "?", "a b", "é:x", "\n", "\\", "%2A"];

#[tokio::test]
async fn glob_characters_in_values_never_widen_a_pattern_invalidation() {
    let server = RedisServer::start();
    let a = cache(&server, "glob").await;
    let p = register(&a, "prods:cat:<cat>:<page>", policy(60));
    let keys = |cat: &str| [p.key(&[&cat, &1]).unwrap(), p.key(&[&cat, &2]).unwrap()];
    let all: Vec<_> = NASTY.iter().flat_map(|c| keys(c)).collect();
    let mut texts: Vec<&str> = all.iter().map(|k| k.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), NASTY.len() * 2, "rendering is injective");
    a.set_many(all.iter().cloned().map(|k| (k, 1u8)).collect())
        .await;
    assert_eq!(dbsize(&server).await, (NASTY.len() * 2) as u64);

    for (i, cat) in NASTY.iter().enumerate() {
        let glob = render_glob("prods:cat:<cat>:*", &[cat]).unwrap();
        a.invalidate_pattern(&glob).await;
        for (j, other) in NASTY.iter().enumerate() {
            for key in keys(other) {
                let in_l2 = raw_get(&server, "glob", key.as_str()).await.is_some();
                let in_l1 = a.get::<u8>(&key).await.is_some();
                let expect = j > i;
                assert_eq!(
                    in_l2,
                    expect,
                    "L2 `{}` after invalidating cat {cat:?}",
                    key.as_str()
                );
                assert_eq!(
                    in_l1,
                    expect,
                    "L1 `{}` after invalidating cat {cat:?}",
                    key.as_str()
                );
            }
        }
    }
    // An operator's raw glob works on rendered keys.
    a.set(&p.key(&[&"x", &1]).unwrap(), 1u8).await;
    a.invalidate_pattern("prods:*").await;
    assert_eq!(dbsize(&server).await, 0);
}

over_plain_and_tls!(tag_invalidation_is_o1_and_seen_by_every_instance);
async fn tag_invalidation_is_o1_and_seen_by_every_instance(transport: Transport) {
    let server = transport.start();
    let a = cache(&server, "tags").await;
    let b = cache(&server, "tags").await;
    let cfg = PatternConfig::new("search:<q>", policy(60)).tag("search");
    let (pa, pb) = (a.register(cfg.clone()).unwrap(), b.register(cfg).unwrap());
    let other = register(&a, "prod:<id>", policy(60));
    let keys: Vec<_> = (0..200).map(|i| pa.key(&[&i]).unwrap()).collect();
    a.set_many(
        keys.iter()
            .cloned()
            .map(|k| (k, "result".to_string()))
            .collect(),
    )
    .await;
    a.set(&other.key(&[&1]).unwrap(), "untagged".to_string())
        .await;
    // B caches some in its L1.
    for i in 0..10 {
        assert!(b.get::<String>(&pb.key(&[&i]).unwrap()).await.is_some());
    }
    let before = dbsize(&server).await;
    a.invalidate_tag("search").await;
    assert_eq!(
        dbsize(&server).await,
        before + 1,
        "O(1): one mark written, no entry scanned or deleted"
    );
    for k in &keys {
        assert!(
            a.get::<String>(k).await.is_none(),
            "A sees the tag invalidation at once"
        );
    }
    assert!(
        a.get::<String>(&other.key(&[&1]).unwrap()).await.is_some(),
        "untagged entries stay"
    );
    // A fresh instance reading L2 sees the mark in the same round trip.
    let c = cache(&server, "tags").await;
    let pc = c
        .register(PatternConfig::new("search:<q>", policy(60)).tag("search"))
        .unwrap();
    assert!(c.get::<String>(&pc.key(&[&150]).unwrap()).await.is_none());
    // B's L1 learns the mark within its refresh interval.
    let seen = eventually(Duration::from_secs(3), || async {
        b.get::<String>(&pb.key(&[&3]).unwrap()).await.is_none()
    })
    .await;
    assert!(
        seen,
        "another instance's L1 honours the tag mark after a refresh"
    );
    // New values written after the invalidation are served.
    a.set(&keys[0], "new".to_string()).await;
    assert_eq!(*a.get::<String>(&keys[0]).await.unwrap(), "new");
}

#[tokio::test]
async fn clear_invalidates_the_namespace_only() {
    let server = RedisServer::start();
    let a = cache(&server, "one").await;
    let other_ns = cache(&server, "two").await;
    let p = register(&a, "prod:<id>", policy(60));
    let q = register(&other_ns, "prod:<id>", policy(60));
    a.set_many((0..50u64).map(|i| (p.key(&[&i]).unwrap(), i)).collect())
        .await;
    other_ns.set(&q.key(&[&1]).unwrap(), 1u64).await;
    a.clear().await;
    for i in 0..50u64 {
        assert!(a.get::<u64>(&p.key(&[&i]).unwrap()).await.is_none());
    }
    let fresh = cache(&server, "one").await;
    let pf = register(&fresh, "prod:<id>", policy(60));
    assert!(
        fresh.get::<u64>(&pf.key(&[&7]).unwrap()).await.is_none(),
        "a new instance sees the clear"
    );
    assert_eq!(
        *other_ns.get::<u64>(&q.key(&[&1]).unwrap()).await.unwrap(),
        1,
        "other namespaces untouched"
    );
    a.set(&p.key(&[&1]).unwrap(), 100u64).await;
    assert_eq!(
        *fresh.get::<u64>(&pf.key(&[&1]).unwrap()).await.unwrap(),
        100,
        "later writes are served"
    );
}

#[tokio::test]
async fn entries_expire_from_l1_then_l2() {
    let server = RedisServer::start();
    let a = cache(&server, "ttl").await;
    let p = register(
        &a,
        "prod:<id>",
        TtlPolicy::new(Duration::from_millis(600))
            .l1_ttl(Duration::from_millis(150))
            .jitter(0.0),
    );
    let key = p.key(&[&1]).unwrap();
    let calls = AtomicUsize::new(0);
    load(&a, &key, product(1, "v1"), &calls).await;
    let mut conn = server.connection().await;
    let pttl: i64 = conn.pttl("ttl:k:prod:1").await.unwrap();
    assert!(
        pttl > 0 && pttl <= 600,
        "Redis TTL is the L2 TTL, got {pttl}"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    load(&a, &key, product(1, "v2"), &calls).await;
    let s = a.stats().total;
    assert_eq!(
        (s.l2_hits, calls.load(Ordering::SeqCst)),
        (1, 1),
        "L1 expired, L2 still fresh"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = load(&a, &key, product(1, "v3"), &calls).await;
    assert_eq!(
        (v.name.as_str(), calls.load(Ordering::SeqCst)),
        ("v3", 2),
        "both tiers expired"
    );
}

#[tokio::test]
async fn jitter_spreads_expiry_of_keys_written_together() {
    let server = RedisServer::start();
    // This test reads what the write left in Redis: a timeout long enough for a loaded machine,
    // so that the write is not abandoned (fail-safe) before it lands.
    let a = builder(&server, "jit")
        .redis_timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("cache builds");
    let p = register(
        &a,
        "prod:<id>",
        TtlPolicy::new(Duration::from_secs(100)).jitter(0.2),
    );
    a.set_many((0..100u64).map(|i| (p.key(&[&i]).unwrap(), i)).collect())
        .await;
    let mut conn = server.connection().await;
    let mut ttls = Vec::new();
    for i in 0..100 {
        let t: i64 = conn.pttl(format!("jit:k:prod:{i}")).await.unwrap();
        ttls.push(t);
    }
    assert!(
        ttls.iter().all(|&t| (79_000..=100_000).contains(&t)),
        "{ttls:?}"
    );
    let spread = ttls.iter().max().unwrap() - ttls.iter().min().unwrap();
    assert!(
        spread > 5_000,
        "expiries spread over more than 5 s of 20 s, got {spread} ms"
    );
}

#[tokio::test]
async fn corrupt_or_foreign_values_are_misses_deleted_and_reloaded() {
    let server = RedisServer::start();
    let a = cache(&server, "bad").await;
    let p = register(&a, "prod:<id>", policy(60));
    let calls = AtomicUsize::new(0);
    let mut other_version = b"tc\x09\x00".to_vec();
    other_version.extend_from_slice(&[0; 26]);
    let wrong_type = {
        let s = cache(&server, "bad").await;
        let q = register(&s, "prod:<id>", policy(60));
        s.set(
            &q.key(&[&99]).unwrap(),
            "a string, not a product".to_string(),
        )
        .await;
        raw_get(&server, "bad", "prod:99").await.unwrap()
    };
    let plants: [&[u8]; 5] = [b"garbage", b"", b"tc", &other_version, &wrong_type];
    for (i, bytes) in plants.iter().enumerate() {
        let id = i as u64;
        let key = p.key(&[&id]).unwrap();
        raw_set(&server, "bad", &format!("prod:{id}"), bytes).await;
        // A plain read (no loader, so nothing can overwrite it) is a miss and deletes the value.
        assert!(
            a.get::<Product>(&key).await.is_none(),
            "plant {i} is a miss"
        );
        assert!(
            raw_get(&server, "bad", &format!("prod:{id}"))
                .await
                .is_none(),
            "plant {i} deleted from Redis by the read"
        );
        raw_set(&server, "bad", &format!("prod:{id}"), bytes).await;
        let v = load(&a, &key, product(id, "fresh"), &calls).await;
        assert_eq!(v.name, "fresh", "plant {i} reloaded");
        let now = raw_get(&server, "bad", &format!("prod:{id}"))
            .await
            .unwrap();
        assert_ne!(&now[..], *bytes, "plant {i} replaced by a valid value");
    }
    let s = a.stats().total;
    assert_eq!((s.decode_errors, s.loads), (10, 5));
}

#[tokio::test]
async fn get_many_is_one_round_trip_and_get_many_or_load_one_loader_call() {
    let server = RedisServer::start();
    // Nothing in the background sends MGETs (marks are not polled): only the calls under test.
    let quiet = || builder(&server, "many").build();
    let a = quiet().await.unwrap();
    let b = quiet().await.unwrap();
    let pa = register(&a, "prod:<id>", policy(60));
    let pb = register(&b, "prod:<id>", policy(60));
    a.set_many(
        (0..4u64)
            .map(|i| (pa.key(&[&i]).unwrap(), product(i, "cached")))
            .collect(),
    )
    .await;
    let keys: Vec<_> = (0..10u64).map(|i| pb.key(&[&i]).unwrap()).collect();

    let mut conn = server.connection().await;
    let mget_calls = |info: String| -> u64 {
        info.lines()
            .find(|l| l.starts_with("cmdstat_mget:"))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let before = mget_calls(
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap(),
    );
    let calls = AtomicUsize::new(0);
    let got = b
        .get_many_or_load(&keys, |missing: Vec<usize>| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(missing, vec![4, 5, 6, 7, 8, 9]);
            async move {
                Ok::<_, Infallible>(
                    missing
                        .iter()
                        .map(|&i| Some(product(i as u64, "loaded")))
                        .collect(),
                )
            }
        })
        .await
        .unwrap();
    let after = mget_calls(
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap(),
    );
    assert_eq!(
        after - before,
        1,
        "one round trip: a single MGET of entries and marks"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let names: Vec<_> = got
        .iter()
        .map(|v| v.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(&names[..4], ["cached"; 4]);
    assert_eq!(&names[4..], ["loaded"; 6]);
    let again = b
        .get_many_or_load(&keys, |_| async {
            Err::<Vec<Option<Product>>, _>("must not be called")
        })
        .await
        .unwrap();
    assert!(again.iter().all(Option::is_some));
    let s = b.stats().total;
    assert_eq!((s.l2_hits, s.misses, s.l1_hits), (4, 6, 10));
}

#[tokio::test]
async fn hash_placeholders_render_the_md5_of_the_messagepack_bytes() {
    #[derive(serde::Serialize)]
    struct Query {
        text: &'static str,
        page: u32,
    }
    let server = RedisServer::start();
    let a = cache(&server, "hash").await;
    let p = register(&a, "search:<q:hash>", policy(60));
    // ("red shoes", 2) in MessagePack, by hand: 0x92 (array of 2), 0xa9 (str of 9 bytes),
    // "red shoes", 0x02. `printf '\x92\xa9red shoes\x02' | md5sum` gives:
    const MD5: &str = "f40bbc5c69713d16fa636b93e751f283";
    let key = p.key(&[&Hashed(&("red shoes", 2u32))]).unwrap();
    assert_eq!(key.as_str(), format!("search:{MD5}"));
    // A struct serializes as the array of its fields, so it renders the same key.
    let q = Query {
        text: "red shoes",
        page: 2,
    };
    assert_eq!(p.key(&[&Hashed(&q)]).unwrap().as_str(), key.as_str());
    a.set(&key, 1u8).await;
    assert!(
        raw_get(&server, "hash", &format!("search:{MD5}"))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn load_latency_and_hit_ratios_are_recorded() {
    let server = RedisServer::start();
    let a = cache(&server, "lat").await;
    let b = cache(&server, "lat").await;
    let pa = register(&a, "prod:<id>", policy(60));
    let pb = register(&b, "prod:<id>", policy(60));
    let key = pa.key(&[&1]).unwrap();
    a.get_or_load(&key, || async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        Ok::<_, Infallible>(product(1, "slow"))
    })
    .await
    .unwrap();
    let stats = a.stats();
    let prod = stats.pattern("prod:<id>").unwrap();
    assert_eq!(prod.counters.loads, 1);
    assert!(
        prod.counters.load_time >= Duration::from_millis(120),
        "load time includes the loader's sleep: {:?}",
        prod.counters.load_time
    );
    // Cumulative histogram: no load within 0.1 s, the one load in the last bucket (+Inf).
    let at = |le: f64| {
        prod.load_latency_buckets
            .iter()
            .find(|(bound, _)| *bound == le)
            .unwrap()
            .1
    };
    assert_eq!(at(0.1), 0, "{:?}", prod.load_latency_buckets);
    assert_eq!(at(f64::INFINITY), 1);

    // B: one miss, one L2 hit, one L1 hit.
    let _ = b.get::<Product>(&pb.key(&[&2]).unwrap()).await;
    let _ = b.get::<Product>(&pb.key(&[&1]).unwrap()).await;
    let _ = b.get::<Product>(&pb.key(&[&1]).unwrap()).await;
    let c = b.stats().total;
    assert_eq!((c.misses, c.l2_hits, c.l1_hits), (1, 1, 1));
    assert!((c.l1_hit_ratio() - 1.0 / 3.0).abs() < 1e-9, "{c:?}");
    assert!((c.hit_ratio() - 2.0 / 3.0).abs() < 1e-9, "{c:?}");
}

#[tokio::test]
async fn registering_a_template_again_with_another_policy_or_tags_conflicts() {
    let server = RedisServer::start();
    let a = cache(&server, "conflict").await;
    let cfg = PatternConfig::new("prod:<id>", policy(60)).tag("products");
    a.register(cfg.clone()).unwrap();
    assert!(
        a.register(cfg).is_ok(),
        "the same configuration again is fine"
    );
    let other_policy = PatternConfig::new("prod:<id>", policy(30)).tag("products");
    assert!(matches!(
        a.register(other_policy),
        Err(cache_core::Error::PatternConflict { template }) if template == "prod:<id>"
    ));
    let other_tags = PatternConfig::new("prod:<id>", policy(60)).tag("catalog");
    assert!(matches!(
        a.register(other_tags),
        Err(cache_core::Error::PatternConflict { .. })
    ));
    assert_eq!(a.pattern("prod:<id>").unwrap().policy(), &policy(60));
}

#[tokio::test]
async fn jitter_is_on_by_default() {
    let server = RedisServer::start();
    let a = cache(&server, "defjit").await;
    // No .jitter(..): the default (5 %) applies.
    let p = register(&a, "prod:<id>", TtlPolicy::new(Duration::from_secs(100)));
    a.set_many((0..100u64).map(|i| (p.key(&[&i]).unwrap(), i)).collect())
        .await;
    let mut conn = server.connection().await;
    let mut ttls = Vec::new();
    for i in 0..100 {
        let t: i64 = conn.pttl(format!("defjit:k:prod:{i}")).await.unwrap();
        ttls.push(t);
    }
    assert!(
        ttls.iter().all(|&t| (94_000..=100_000).contains(&t)),
        "within 5 % below the TTL: {ttls:?}"
    );
    let spread = ttls.iter().max().unwrap() - ttls.iter().min().unwrap();
    assert!(
        spread > 1_000,
        "expiries spread over more than 1 s of the 5 s window, got {spread} ms"
    );
}

#[tokio::test]
async fn set_many_writes_every_value_with_its_ttl_in_one_batch() {
    let server = RedisServer::start();
    let a = cache(&server, "setmany").await;
    let b = cache(&server, "setmany").await;
    let p = register(&a, "prod:<id>", policy(60).jitter(0.0));
    let pb = register(&b, "prod:<id>", policy(60).jitter(0.0));
    let mut conn = server.connection().await;
    let set_calls = |info: String| -> u64 {
        info.lines()
            .find(|l| l.starts_with("cmdstat_set:"))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let info = || redis::cmd("INFO").arg("commandstats").clone();
    let before = set_calls(info().query_async(&mut conn).await.unwrap());
    a.set_many(
        (0..50u64)
            .map(|i| (p.key(&[&i]).unwrap(), product(i, "batch")))
            .collect(),
    )
    .await;
    let after = set_calls(info().query_async(&mut conn).await.unwrap());
    assert_eq!(after - before, 50, "one SET (with its TTL) per entry");
    for i in 0..50u64 {
        let pttl: i64 = conn.pttl(format!("setmany:k:prod:{i}")).await.unwrap();
        assert!(pttl > 0 && pttl <= 60_000, "key {i}: PTTL {pttl}");
    }
    let keys: Vec<_> = (0..50u64).map(|i| pb.key(&[&i]).unwrap()).collect();
    let got = b.get_many::<Product>(&keys).await;
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.as_deref(), Some(&product(i as u64, "batch")));
    }
    assert_eq!(b.stats().total.l2_hits, 50);
}

#[tokio::test]
async fn reclaim_cleared_frees_what_a_clear_made_stale_and_keeps_the_rest() {
    let server = RedisServer::start();
    let a = cache(&server, "reclaim").await;
    let p = register(&a, "prod:<id>", policy(600));
    a.set_many((0..50u64).map(|i| (p.key(&[&i]).unwrap(), i)).collect())
        .await;
    raw_set(&server, "reclaim", "foreign", b"not an envelope of ours").await;
    a.clear().await;
    a.set(&p.key(&[&1000]).unwrap(), 1000u64).await; // written after the clear
    let r = a.reclaim_cleared(100_000).await.unwrap();
    assert_eq!((r.scanned, r.deleted), (52, 50), "{r:?}");
    assert!(r.bytes >= 50 * 16, "{r:?}");
    assert!(raw_get(&server, "reclaim", "prod:1").await.is_none());
    assert!(raw_get(&server, "reclaim", "prod:1000").await.is_some());
    assert!(raw_get(&server, "reclaim", "foreign").await.is_some());
    assert_eq!(
        a.get::<u64>(&p.key(&[&1000]).unwrap()).await.as_deref(),
        Some(&1000)
    );
}

/// The L2's scripts go by hash: `EVALSHA` only, never `EVAL` with the script's text, and a Redis
/// that forgot them (`SCRIPT FLUSH`, as after a restart or a failover) gets them loaded again by
/// the next call, pipelined write-backs and marks included.
#[tokio::test]
async fn scripts_are_sent_by_hash_and_loaded_again_after_a_script_flush() {
    let server = RedisServer::start();
    let a = cache(&server, "sha").await;
    let p = register(&a, "prod:<id>", policy(60));
    let calls = AtomicUsize::new(0);
    let mut conn = server.connection().await;
    let count_of = |info: &str, command: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    };
    for round in 0..2u64 {
        // A miss (lease taken and released by script, value written back by script), a
        // write-through (by script), a tag invalidation (a mark, by script).
        let key = p.key(&[&round]).unwrap();
        load(&a, &key, product(round, "loaded"), &calls).await;
        assert!(
            raw_get(&server, "sha", &format!("prod:{round}"))
                .await
                .is_some(),
            "round {round}: the write-back reached Redis"
        );
        let other = p.key(&[&(round + 10)]).unwrap();
        a.set(&other, product(round + 10, "set")).await;
        assert!(
            raw_get(&server, "sha", &format!("prod:{}", round + 10))
                .await
                .is_some(),
            "round {round}: the write-through reached Redis"
        );
        a.invalidate_tag("search").await;
        let mark: Option<Vec<u8>> = conn.get("sha:t:search").await.unwrap();
        assert!(mark.is_some(), "round {round}: the tag mark reached Redis");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count_of(&info, "eval"), 0, "no script sent as text: {info}");
    assert!(count_of(&info, "evalsha") >= 6, "{info}");
    assert_eq!(a.stats().total.l2_errors, 0);
}

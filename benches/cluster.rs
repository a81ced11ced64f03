//! The L2 on a Redis Cluster (three primaries from the harness, redis-rs's cluster client on
//! both sides): an L2 hit (`get` with a fresh L1) against raw redis-rs on the same cluster (one
//! `GET` through a cluster connection + `rmp_serde::from_slice`), and `get_many` of 100 against a
//! raw `MGET` of the 100 keys (split by slot by redis-rs) + decode. Same shapes as `tls` and
//! `l2_hit`, so the runs show what the cluster adds and what tiercache adds on it.
//!
//! Fresh L1: the pattern's L1 TTL is 1 ms ([`l2_only_policy`]) and reads cycle through `ENTRIES`
//! keys, so every timed tiercache read is served by Redis (checked after the run).

use std::hint::black_box;
use std::time::Duration;

use cache_core::codec::encode_value;
use cache_core::{Cache, Key, PatternConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis::AsyncCommands;
use tiercache_benches::{ENTRIES, Ids, Product, config, l2_only_policy, product, runtime};
use tiercache_tests::RedisCluster;

const BATCH: usize = 100;

fn raw_key(id: u64) -> String {
    format!("raw:prod:{id}")
}

fn cluster(c: &mut Criterion) {
    let cluster = RedisCluster::start(3, 0);
    let rt = runtime();
    let tier = rt.block_on(async {
        Cache::builder()
            .namespace("bench-cluster")
            .redis_cluster(cluster.seeds())
            .require_redis(true)
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache on the cluster")
    });
    let conn = rt.block_on(async {
        redis::cluster::ClusterClient::new(cluster.seeds().iter().map(|s| format!("redis://{s}")))
            .expect("raw cluster client")
            .get_async_connection()
            .await
            .expect("raw cluster connection")
    });
    let pattern = tier
        .register(PatternConfig::new("prod:<id>", l2_only_policy()))
        .expect("pattern");
    let keys: Vec<Key> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    rt.block_on(async {
        // In chunks: one write of every entry could outlast the call timeout.
        for (chunk, ids) in keys.chunks(500).zip((0..).step_by(500)) {
            let entries: Vec<_> = chunk
                .iter()
                .zip(ids..)
                .map(|(k, id)| (k.clone(), product(id)))
                .collect();
            tier.set_many(entries).await;
        }
        // A cluster pipeline goes to one node: the raw entries are written one by one.
        let mut conn = conn.clone();
        for id in 0..ENTRIES {
            let () = conn
                .set(raw_key(id), encode_value(&product(id)).expect("encode"))
                .await
                .expect("raw write");
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // let every L1 copy go stale
    });
    let before = tier.stats().total;

    let mut g = c.benchmark_group("cluster");
    let mut ids = Ids::default();
    g.bench_function("raw_redis_get_decode", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let mut conn = conn.clone();
            async move {
                let bytes: Vec<u8> = conn.get(raw_key(id)).await.expect("GET");
                black_box(rmp_serde::from_slice::<Product>(&bytes).expect("decode"))
            }
        })
    });
    g.bench_function("tiercache_get", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let (tier, pattern) = (&tier, &pattern);
            async move {
                let key = pattern.key(&[&id]).expect("key");
                black_box(tier.get::<Product>(&key).await.expect("L2 hit"))
            }
        })
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    let chunks = ENTRIES as usize / BATCH;
    // Keys built outside the timing on both sides (`get_many` takes built keys too).
    let raw_keys: Vec<String> = (0..ENTRIES).map(raw_key).collect();
    let mut next = 0usize;
    g.bench_function("raw_redis_mget_decode_100", |b| {
        b.to_async(&rt).iter(|| {
            let start = (next % chunks) * BATCH;
            next += 1;
            let mut conn = conn.clone();
            let raw = &raw_keys[start..start + BATCH];
            async move {
                let values: Vec<Option<Vec<u8>>> = conn.mget(raw).await.expect("MGET");
                let decoded: Vec<Product> = values
                    .iter()
                    .map(|v| rmp_serde::from_slice(v.as_deref().expect("hit")).expect("decode"))
                    .collect();
                black_box(decoded)
            }
        })
    });
    let mut next = 0usize;
    g.bench_function("tiercache_get_many_100", |b| {
        b.to_async(&rt).iter(|| {
            let start = (next % chunks) * BATCH;
            next += 1;
            let batch = &keys[start..start + BATCH];
            let tier = &tier;
            async move {
                let found = tier.get_many::<Product>(batch).await;
                debug_assert!(found.iter().all(Option::is_some));
                black_box(found)
            }
        })
    });
    g.finish();

    let after = tier.stats().total;
    eprintln!(
        "cluster: tiercache counters over the timed reads: l1_hits={} l2_hits={} misses={}",
        after.l1_hits - before.l1_hits,
        after.l2_hits - before.l2_hits,
        after.misses - before.misses
    );
    assert_eq!(
        after.misses, before.misses,
        "every timed read was an L2 hit"
    );
    drop(cluster);
}

criterion_group! {
    name = benches;
    config = config();
    targets = cluster
}
criterion_main!(benches);

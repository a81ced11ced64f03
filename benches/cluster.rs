//! The L2 on a Redis Cluster (three primaries from the harness, redis-rs's cluster client on
//! both sides): an L2 hit (`get` with a fresh L1) against raw redis-rs on the same cluster (one
//! `GET` through a cluster connection + `rmp_serde::from_slice`), and `get_many` of 100 against a
//! raw `MGET` of the 100 keys (split by slot by redis-rs) + decode. Same shapes as `tls` and
//! `l2_hit`, so the runs show what the cluster adds and what tiercache adds on it.
//!
//! Fresh L1: the pattern's L1 TTL is 1 ms ([`l2_only_policy`]) and reads cycle through `ENTRIES`
//! keys, so every timed tiercache read is served by Redis (checked after the run).

use cache_core::codec::encode_value;
use cache_core::{Cache, PatternConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use tiercache_benches::deployment::{fill, l2_reads, raw_key};
use tiercache_benches::{ENTRIES, config, l2_only_policy, product, runtime};
use tiercache_tests::RedisCluster;

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
    let keys = fill(&rt, &tier, &pattern);
    rt.block_on(async {
        // A cluster pipeline goes to one node: the raw entries are written one by one.
        let mut conn = conn.clone();
        for id in 0..ENTRIES {
            let () = conn
                .set(raw_key(id), encode_value(&product(id)).expect("encode"))
                .await
                .expect("raw write");
        }
    });
    l2_reads(c, "cluster", &rt, &tier, &pattern, &keys, &conn);
    drop(cluster);
}

criterion_group! {
    name = benches;
    config = config();
    targets = cluster
}
criterion_main!(benches);

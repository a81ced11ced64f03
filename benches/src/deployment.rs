//! The reads that `benches/tls.rs` and `benches/cluster.rs` time on their deployment: an L2 hit
//! (`get` with a fresh L1) against raw redis-rs `GET` + decode, and `get_many` of 100 against a
//! raw `MGET` of the 100 keys + decode, over the same connection kind; then the check that every
//! timed tiercache read was an L2 hit. Each bench only starts its deployment, builds the cache
//! and the raw connection, and writes the raw entries (a pipeline where the deployment allows).

use std::hint::black_box;
use std::time::Duration;

use cache_core::{Cache, Key, Pattern};
use criterion::{Criterion, Throughput};
use redis::AsyncCommands;
use redis::aio::ConnectionLike;
use tokio::runtime::Runtime;

use crate::{ENTRIES, Ids, Product, print_counters, product};

/// Keys per `get_many` / `MGET`.
pub const BATCH: usize = 100;

/// The raw side's key of `id` (outside tiercache's namespace).
pub fn raw_key(id: u64) -> String {
    format!("raw:prod:{id}")
}

/// Writes the `ENTRIES` products through `tier` (in chunks: one write of every entry could
/// outlast the call timeout) and returns their keys.
pub fn fill(rt: &Runtime, tier: &Cache, pattern: &Pattern) -> Vec<Key> {
    let keys: Vec<Key> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    rt.block_on(async {
        for (chunk, ids) in keys.chunks(500).zip((0..).step_by(500)) {
            let entries: Vec<_> = chunk
                .iter()
                .zip(ids..)
                .map(|(k, id)| (k.clone(), product(id)))
                .collect();
            tier.set_many(entries).await;
        }
    });
    keys
}

/// Times the four contenders in the criterion group `name`, after letting every L1 copy go
/// stale; panics if a timed tiercache read was not an L2 hit.
pub fn l2_reads<C>(
    c: &mut Criterion,
    name: &str,
    rt: &Runtime,
    tier: &Cache,
    pattern: &Pattern,
    keys: &[Key],
    conn: &C,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    // Let every L1 copy go stale.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
    let before = tier.stats().total;
    let mut g = c.benchmark_group(name);
    let mut ids = Ids::default();
    g.bench_function("raw_redis_get_decode", |b| {
        b.to_async(rt).iter(|| {
            let id = ids.next();
            let mut conn = conn.clone();
            async move {
                let bytes: Vec<u8> = conn.get(raw_key(id)).await.expect("GET");
                black_box(rmp_serde::from_slice::<Product>(&bytes).expect("decode"))
            }
        })
    });
    g.bench_function("tiercache_get", |b| {
        b.to_async(rt).iter(|| {
            let id = ids.next();
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
        b.to_async(rt).iter(|| {
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
        b.to_async(rt).iter(|| {
            let start = (next % chunks) * BATCH;
            next += 1;
            let batch = &keys[start..start + BATCH];
            async move {
                let found = tier.get_many::<Product>(batch).await;
                debug_assert!(found.iter().all(Option::is_some));
                black_box(found)
            }
        })
    });
    g.finish();

    let after = tier.stats().total;
    print_counters(name, &before, &after);
    assert_eq!(
        after.misses, before.misses,
        "every timed read was an L2 hit"
    );
}

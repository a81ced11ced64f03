//! Batches on the L2 path (fresh L1, see [`l2_only_policy`]): `get_many` of 10 and 100 keys
//! (one pipelined round trip) against as many sequential `get`s, and the pipelined `set_many`
//! against as many `set`s.

use std::hint::black_box;
use std::time::Duration;

use cache_core::{Cache, Key, PatternConfig};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tiercache_benches::{
    ENTRIES, Product, RedisServer, config, l2_only_policy, print_counters, product, runtime,
};

const SIZES: [usize; 2] = [10, 100];

fn batch(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = runtime();
    let tier = rt.block_on(async {
        Cache::builder()
            .namespace("bench-batch")
            .redis_url(server.url())
            .require_redis(true)
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache")
    });
    let pattern = tier
        .register(PatternConfig::new("prod:<id>", l2_only_policy()))
        .expect("pattern");
    let keys: Vec<Key> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    rt.block_on(async {
        let entries: Vec<_> = keys
            .iter()
            .zip(0..)
            .map(|(k, id)| (k.clone(), product(id)))
            .collect();
        tier.set_many(entries).await;
        tokio::time::sleep(Duration::from_millis(5)).await; // let every L1 copy go stale
    });
    let before = tier.stats().total;

    // Consecutive chunks of `n` keys, cycling: no key is read twice within a millisecond.
    let chunks = |n: usize| {
        let mut next = 0usize;
        let keys = &keys;
        move || {
            let start = next * n;
            next = (next + 1) % (keys.len() / n);
            &keys[start..start + n]
        }
    };

    let mut g = c.benchmark_group("batch_get");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        let mut chunk = chunks(n);
        g.bench_function(BenchmarkId::new("get_many", n), |b| {
            b.to_async(&rt).iter(|| {
                let keys = chunk();
                let tier = &tier;
                async move {
                    let found = tier.get_many::<Product>(keys).await;
                    debug_assert!(found.iter().all(Option::is_some));
                    black_box(found)
                }
            })
        });
        let mut chunk = chunks(n);
        g.bench_function(BenchmarkId::new("sequential_get", n), |b| {
            b.to_async(&rt).iter(|| {
                let keys = chunk();
                let tier = &tier;
                async move {
                    let mut found = Vec::with_capacity(keys.len());
                    for key in keys {
                        found.push(tier.get::<Product>(key).await);
                    }
                    debug_assert!(found.iter().all(Option::is_some));
                    black_box(found)
                }
            })
        });
    }
    g.finish();

    let after = tier.stats().total;
    print_counters("batch", &before, &after);
    assert_eq!(
        after.l1_hits, before.l1_hits,
        "no timed read was served by L1"
    );
    assert_eq!(
        after.misses, before.misses,
        "every timed read was an L2 hit"
    );

    // Writes: the entries (keys and values) are built outside the timing.
    let mut g = c.benchmark_group("batch_set");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        let entries = |start: &mut u64| {
            let out: Vec<(Key, Product)> = (0..n as u64)
                .map(|i| {
                    let id = (*start + i) % ENTRIES;
                    (keys[id as usize].clone(), product(id))
                })
                .collect();
            *start = (*start + n as u64) % ENTRIES;
            out
        };
        let mut start = 0;
        g.bench_function(BenchmarkId::new("set_many", n), |b| {
            b.to_async(&rt).iter_batched(
                || entries(&mut start),
                |batch| tier.set_many(batch),
                BatchSize::SmallInput,
            )
        });
        let mut start = 0;
        g.bench_function(BenchmarkId::new("sequential_set", n), |b| {
            b.to_async(&rt).iter_batched(
                || entries(&mut start),
                |batch| async {
                    for (key, value) in batch {
                        tier.set(&key, value).await;
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = config();
    targets = batch
}
criterion_main!(benches);

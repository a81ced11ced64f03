//! L2 hit with a fresh L1: tiercache (`Cache::get` and `get_or_load`) against raw redis-rs (one
//! multiplexed `GET` + `rmp_serde::from_slice` of the same value) and the `cached` crate's
//! `AsyncRedisCache` (`#[concurrent_cached]`), also with `client_side_caching(true)` (RESP3).
//! Then cold misses (found nowhere: lookup, load, write-through).
//!
//! Fresh L1: the pattern's L1 TTL is 1 ms ([`l2_only_policy`]) and reads cycle through
//! `ENTRIES` keys, so no key is read twice within a millisecond: every timed tiercache read is
//! served by Redis (checked after the run with the cache's counters).
//!
//! Target: tiercache's L2 hit within 1.15x of the raw `GET` + decode.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::codec::encode_value;
use cache_core::{Cache, PatternConfig};
use cached::AsyncRedisCache;
use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use tiercache_benches::{
    Call, ENTRIES, Ids, LoadError, Product, RedisServer, command_calls, config, l2_only_policy,
    paired, print_counters, product, quick, runtime, write_extra,
};

static REDIS_URL: OnceLock<String> = OnceLock::new();

fn redis_url() -> &'static str {
    REDIS_URL.get().expect("redis started")
}

/// Ids never read before: the cold-miss benches' keys.
static COLD: AtomicU64 = AtomicU64::new(1_000_000_000);

fn cold_id() -> u64 {
    COLD.fetch_add(1, Ordering::Relaxed)
}

/// The `cached` crate's async Redis store (plain multiplexed connection, RESP2).
#[cached::macros::concurrent_cached(
    map_error = r##"|e| LoadError(format!("{e:?}"))"##,
    ty = "cached::AsyncRedisCache<u64, Product>",
    create = r##" {
        AsyncRedisCache::builder("bench-l2-cached")
            .connection_string(redis_url())
            .ttl(Duration::from_secs(1800))
            .build()
            .await
            .expect("cached AsyncRedisCache")
    } "##
)]
async fn cached_redis_get(id: u64) -> Result<Product, LoadError> {
    Ok(product(id))
}

/// The same with RESP3 client-side caching: hits may be answered from the client's own copy.
#[cached::macros::concurrent_cached(
    map_error = r##"|e| LoadError(format!("{e:?}"))"##,
    ty = "cached::AsyncRedisCache<u64, Product>",
    create = r##" {
        AsyncRedisCache::builder("bench-l2-cached-csc")
            .connection_string(redis_url())
            .ttl(Duration::from_secs(1800))
            .client_side_caching(true)
            .build()
            .await
            .expect("cached AsyncRedisCache with client-side caching")
    } "##
)]
async fn cached_redis_csc_get(id: u64) -> Result<Product, LoadError> {
    Ok(product(id))
}

fn raw_key(id: u64) -> String {
    format!("raw:prod:{id}")
}

fn l2(c: &mut Criterion) {
    let server = RedisServer::start();
    REDIS_URL.set(server.url()).expect("set once");
    let rt = runtime();
    let (tier, mut conn) = rt.block_on(async {
        let tier = Cache::builder()
            .namespace("bench-l2")
            .redis_url(server.url())
            .require_redis(true)
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache");
        (tier, server.connection().await)
    });
    // Decomposition: the same `get` with L1 disabled, so that nothing is copied into L1.
    let tier_no_l1 = rt.block_on(async {
        Cache::builder()
            .namespace("bench-l2-no-l1")
            .redis_url(server.url())
            .require_redis(true)
            .l1_capacity_bytes(0)
            .build()
            .await
            .expect("cache without L1")
    });
    let shaped = rt.block_on(async {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_millis(250)));
        server
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connection")
    });
    let pattern = tier
        .register(PatternConfig::new("prod:<id>", l2_only_policy()))
        .expect("pattern");
    let keys: Vec<_> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    let pattern_no_l1 = tier_no_l1
        .register(PatternConfig::new("prod:<id>", l2_only_policy()))
        .expect("pattern");

    // The same ENTRIES products in every store.
    rt.block_on(async {
        let entries: Vec<_> = (0..ENTRIES)
            .map(|id| (keys[id as usize].clone(), product(id)))
            .collect();
        tier.set_many(entries).await;
        let entries: Vec<_> = (0..ENTRIES)
            .map(|id| (pattern_no_l1.key(&[&id]).expect("key"), product(id)))
            .collect();
        tier_no_l1.set_many(entries).await;
        let mut pipe = redis::pipe();
        for id in 0..ENTRIES {
            pipe.set(raw_key(id), encode_value(&product(id)).expect("encode"))
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("raw writes");
        for id in 0..ENTRIES {
            black_box(cached_redis_get(id).await.expect("cached warm"));
            black_box(cached_redis_csc_get(id).await.expect("cached csc warm"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // let every L1 copy go stale
    });
    let before = tier.stats().total;

    let mut g = c.benchmark_group("l2_hit");
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
    // Decomposition: raw redis-rs with tiercache's call shape (one `MGET key clear-mark`,
    // 250 ms response timeout on the connection and a `tokio` timeout around the call).
    // tiercache over this one is the cache's own work; this one over the plain `GET` is the
    // protocol shape and the timeouts.
    g.bench_function("raw_redis_tiercache_shape", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let mut conn = shaped.clone();
            async move {
                let mut cmd = redis::cmd("MGET");
                cmd.arg(raw_key(id)).arg("raw:clear");
                let call = cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut conn);
                let mut values = tokio::time::timeout(Duration::from_millis(250), call)
                    .await
                    .expect("in time")
                    .expect("MGET");
                let mark = values.pop().flatten();
                let bytes = values.pop().flatten().expect("hit");
                black_box((
                    rmp_serde::from_slice::<Product>(&bytes).expect("decode"),
                    mark,
                ))
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
    g.bench_function("tiercache_get_no_l1", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let (tier, pattern) = (&tier_no_l1, &pattern_no_l1);
            async move {
                let key = pattern.key(&[&id]).expect("key");
                black_box(tier.get::<Product>(&key).await.expect("L2 hit"))
            }
        })
    });
    g.bench_function("tiercache_get_or_load", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let (tier, pattern) = (&tier, &pattern);
            async move {
                let key = pattern.key(&[&id]).expect("key");
                black_box(
                    tier.get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
                        .await
                        .expect("infallible"),
                )
            }
        })
    });
    g.bench_function("cached_async_redis", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            async move { black_box(cached_redis_get(id).await.expect("hit")) }
        })
    });
    g.bench_function("cached_async_redis_csc", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            async move { black_box(cached_redis_csc_get(id).await.expect("hit")) }
        })
    });
    g.finish();

    // Paired, interleaved measurement of the targeted ratios (robust to changing load).
    let blocks = if quick() { 30 } else { 100 };
    rt.block_on(async {
        let (tier, pattern, conn) = (&tier, &pattern, &conn);
        let raw: Call<'_> = Box::new(move |id| {
            let mut conn = conn.clone();
            Box::pin(async move {
                let bytes: Vec<u8> = conn.get(raw_key(id)).await.expect("GET");
                black_box(rmp_serde::from_slice::<Product>(&bytes).expect("decode"));
            })
        });
        let get: Call<'_> = Box::new(move |id| {
            Box::pin(async move {
                let key = pattern.key(&[&id]).expect("key");
                black_box(tier.get::<Product>(&key).await.expect("L2 hit"));
            })
        });
        let (tier_no_l1, pattern_no_l1) = (&tier_no_l1, &pattern_no_l1);
        let get_no_l1: Call<'_> = Box::new(move |id| {
            Box::pin(async move {
                let key = pattern_no_l1.key(&[&id]).expect("key");
                black_box(tier_no_l1.get::<Product>(&key).await.expect("L2 hit"));
            })
        });
        let get_or_load: Call<'_> = Box::new(move |id| {
            Box::pin(async move {
                let key = pattern.key(&[&id]).expect("key");
                let loaded = tier
                    .get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
                    .await
                    .expect("infallible");
                black_box(loaded);
            })
        });
        paired(
            "l2_hit",
            blocks,
            100,
            &mut [
                ("raw_redis_get_decode", raw),
                ("tiercache_get", get),
                ("tiercache_get_or_load", get_or_load),
                ("tiercache_get_no_l1", get_no_l1),
            ],
        )
        .await
    });

    let after = tier.stats().total;
    print_counters("l2_hit", &before, &after);
    assert_eq!(
        after.l1_hits, before.l1_hits,
        "no timed read was served by L1"
    );
    assert_eq!(
        after.misses, before.misses,
        "every timed read was an L2 hit"
    );

    // Cold misses: a key found in neither tier, loaded and written through.
    let mut g = c.benchmark_group("l2_miss");
    g.bench_function("raw_redis_get_miss_set", |b| {
        b.to_async(&rt).iter(|| {
            let id = cold_id();
            let mut conn = conn.clone();
            async move {
                let key = raw_key(id);
                let found: Option<Vec<u8>> = conn.get(&key).await.expect("GET");
                assert!(found.is_none());
                let value = product(id);
                let bytes = encode_value(&value).expect("encode");
                let () = conn.set_ex(&key, bytes, 1800).await.expect("SET");
                black_box(value)
            }
        })
    });
    g.bench_function("tiercache_get_or_load", |b| {
        b.to_async(&rt).iter(|| {
            let id = cold_id();
            let (tier, pattern) = (&tier, &pattern);
            async move {
                let key = pattern.key(&[&id]).expect("key");
                black_box(
                    tier.get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
                        .await
                        .expect("infallible"),
                )
            }
        })
    });
    g.bench_function("cached_async_redis", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cached_redis_get(cold_id()).await.expect("load")) })
    });
    g.finish();

    // Redis commands per operation (outside the timing), from `INFO commandstats`.
    let per_op = rt.block_on(async {
        const OPS: u64 = 100;
        let mut probe = server.connection().await;
        let mut out = BTreeMap::new();

        let before = command_calls(&mut probe).await;
        for id in 0..OPS {
            let bytes: Vec<u8> = conn.get(raw_key(id)).await.expect("GET");
            black_box(bytes);
        }
        let after = command_calls(&mut probe).await;
        out.insert("raw_redis_get_decode (hit)", per_op(&before, &after, OPS));

        let before = command_calls(&mut probe).await;
        for i in 0..OPS {
            let key = pattern.key(&[&(i * 97 % ENTRIES)]).expect("key");
            black_box(tier.get::<Product>(&key).await.expect("hit"));
        }
        let after = command_calls(&mut probe).await;
        out.insert("tiercache_get (L2 hit)", per_op(&before, &after, OPS));

        let before = command_calls(&mut probe).await;
        for _ in 0..OPS {
            let id = cold_id();
            let key = pattern.key(&[&id]).expect("key");
            let loaded = tier
                .get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
                .await
                .expect("infallible");
            black_box(loaded);
        }
        let after = command_calls(&mut probe).await;
        out.insert(
            "tiercache_get_or_load (cold miss)",
            per_op(&before, &after, OPS),
        );
        out
    });
    eprintln!("l2_hit: redis commands per operation: {per_op:?}");
    write_extra("l2_commands", &serde_json::json!(per_op));
    drop(server);
}

/// Commands per operation between two `INFO commandstats` snapshots.
fn per_op(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    ops: u64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(cmd, n)| {
            let was = before.get(cmd).copied().unwrap_or(0);
            (cmd.clone(), (n - was) as f64 / ops as f64)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

criterion_group! {
    name = benches;
    config = config();
    targets = l2
}
criterion_main!(benches);

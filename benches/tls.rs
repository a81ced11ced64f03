//! The L2 over TLS (a harness server with `--tls-port` and its test CA, rustls on the client): an
//! L2 hit (`get` with a fresh L1) against raw redis-rs over the same TLS server (one multiplexed
//! `GET` + `rmp_serde::from_slice`), and `get_many` of 100 against a raw `MGET` of the 100 keys +
//! decode. Same shapes as `l2_hit` and `batch`, so the two runs show what TLS adds.
//!
//! Fresh L1: the pattern's L1 TTL is 1 ms ([`l2_only_policy`]) and reads cycle through `ENTRIES`
//! keys, so every timed tiercache read is served by Redis (checked after the run).
//!
//! Target: within 1.15x of raw redis-rs over TLS, as over plain TCP.

use std::hint::black_box;
use std::time::Duration;

use cache_core::codec::encode_value;
use cache_core::{Cache, Key, PatternConfig, TlsConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis::AsyncCommands;
use tiercache_benches::{
    ENTRIES, Ids, Product, RedisServer, config, l2_only_policy, product, runtime,
};

const BATCH: usize = 100;

fn raw_key(id: u64) -> String {
    format!("raw:prod:{id}")
}

fn tls(c: &mut Criterion) {
    let server = RedisServer::start_tls(false);
    let rt = runtime();
    let ca = server.certificates().ca_pem.clone();
    let tier = rt.block_on(async {
        Cache::builder()
            .namespace("bench-tls")
            .redis_url(server.tls_url())
            .redis_tls(TlsConfig::new().ca_pem(ca.clone()))
            .require_redis(true)
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache over TLS")
    });
    let mut conn = rt.block_on(async {
        redis::Client::build_with_tls(
            server.tls_url(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.into_bytes()),
            },
        )
        .expect("raw TLS client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw TLS connection")
    });
    let pattern = tier
        .register(PatternConfig::new("prod:<id>", l2_only_policy()))
        .expect("pattern");
    let keys: Vec<Key> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    rt.block_on(async {
        // In chunks: one write of every entry could outlast the call timeout over TLS.
        for (chunk, ids) in keys.chunks(500).zip((0..).step_by(500)) {
            let entries: Vec<_> = chunk
                .iter()
                .zip(ids..)
                .map(|(k, id)| (k.clone(), product(id)))
                .collect();
            tier.set_many(entries).await;
        }
        let mut pipe = redis::pipe();
        for id in 0..ENTRIES {
            pipe.set(raw_key(id), encode_value(&product(id)).expect("encode"))
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("raw writes");
        tokio::time::sleep(Duration::from_millis(5)).await; // let every L1 copy go stale
    });
    let before = tier.stats().total;

    let mut g = c.benchmark_group("tls");
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
        "tls: tiercache counters over the timed reads: l1_hits={} l2_hits={} misses={}",
        after.l1_hits - before.l1_hits,
        after.l2_hits - before.l2_hits,
        after.misses - before.misses
    );
    assert_eq!(
        after.misses, before.misses,
        "every timed read was an L2 hit"
    );
    drop(server);
}

criterion_group! {
    name = benches;
    config = config();
    targets = tls
}
criterion_main!(benches);

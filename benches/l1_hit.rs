//! L1 hit: tiercache's `#[cached]` attribute, `Cache::get` and a hand-written `get_or_load`,
//! against raw `moka::future::Cache::get` and the `cached` crate's in-memory `#[cached]` and
//! `#[concurrent_cached]` (async). Every cache holds the same `ENTRIES` products; every contender
//! reads the same cycling ids. No L2: an L1 hit never touches Redis.
//!
//! Targets: the attribute on a function returning `Arc<Product>` within 1.5x of raw moka's `get` of an
//! `Arc` (like for like), and no slower than `cached`'s in-memory hit.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use cache_core::{Cache, PatternConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use tiercache_benches::l1::{
    memo_concurrent_get, memo_get, policy, set_cache, sync_moka, tier_get, tier_get_arc,
};
use tiercache_benches::{ENTRIES, Ids, Product, config, product, runtime};

fn l1_hit(c: &mut Criterion) {
    let rt = runtime();
    let tier = rt.block_on(async {
        Cache::builder()
            .namespace("bench-l1")
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache")
    });
    set_cache(tier.clone());
    let pattern = tier
        .register(PatternConfig::new("prod:<id>", policy()))
        .expect("pattern");
    let moka: moka::future::Cache<u64, Arc<Product>> = moka::future::Cache::new(ENTRIES * 2);
    let keys: Vec<_> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    // Decomposition: moka's synchronous cache keyed by the rendered string, as tiercache's L1 is,
    // bare and then with L1's weigher and per-entry expiry.
    let texts: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
    let (sync_bare, sync_l1_like) = (sync_moka(false), sync_moka(true));
    for (id, text) in texts.iter().enumerate() {
        let value = Arc::new(product(id as u64));
        sync_bare.insert(text.clone(), value.clone());
        sync_l1_like.insert(text.clone(), value);
    }
    sync_bare.run_pending_tasks();
    sync_l1_like.run_pending_tasks();

    // Warm every cache with the same ENTRIES products.
    rt.block_on(async {
        for id in 0..ENTRIES {
            moka.insert(id, Arc::new(product(id))).await;
            black_box(tier_get(id).await);
            black_box(tier_get_arc(id).await);
            black_box(memo_get(id).await);
            black_box(memo_concurrent_get(id).await);
        }
        moka.run_pending_tasks().await;
    });
    let warm = tier.stats().total;
    assert_eq!(
        warm.loads,
        2 * ENTRIES,
        "tiercache warmed through its loaders"
    );

    let mut g = c.benchmark_group("l1_hit");
    let mut ids = Ids::default();
    g.bench_function("raw_moka_get_arc", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let moka = &moka;
            async move { black_box(moka.get(&id).await.expect("hit")) }
        })
    });
    g.bench_function("moka_sync_string_key", |b| {
        b.to_async(&rt).iter(|| {
            let key = texts[ids.next() as usize].as_str();
            let moka = &sync_bare;
            async move { black_box(moka.get(key).expect("hit")) }
        })
    });
    g.bench_function("moka_sync_string_key_l1_config", |b| {
        b.to_async(&rt).iter(|| {
            let key = texts[ids.next() as usize].as_str();
            let moka = &sync_l1_like;
            async move { black_box(moka.get(key).expect("hit")) }
        })
    });
    g.bench_function("raw_moka_get_clone", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let moka = &moka;
            async move { black_box(Product::clone(&moka.get(&id).await.expect("hit"))) }
        })
    });
    g.bench_function("tiercache_attribute", |b| {
        b.to_async(&rt)
            .iter(|| black_box(tier_get(black_box(ids.next()))))
    });
    g.bench_function("tiercache_attribute_arc", |b| {
        b.to_async(&rt)
            .iter(|| black_box(tier_get_arc(black_box(ids.next()))))
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
    g.bench_function("tiercache_get_arc", |b| {
        b.to_async(&rt).iter(|| {
            let id = ids.next();
            let (tier, pattern) = (&tier, &pattern);
            async move {
                let key = pattern.key(&[&id]).expect("key");
                black_box(tier.get::<Product>(&key).await.expect("hit"))
            }
        })
    });
    g.bench_function("tiercache_get_arc_prebuilt_key", |b| {
        b.to_async(&rt).iter(|| {
            let key = &keys[ids.next() as usize];
            let tier = &tier;
            async move { black_box(tier.get::<Product>(key).await.expect("hit")) }
        })
    });
    g.bench_function("cached_cached", |b| {
        b.to_async(&rt)
            .iter(|| black_box(memo_get(black_box(ids.next()))))
    });
    g.bench_function("cached_concurrent_cached", |b| {
        b.to_async(&rt)
            .iter(|| black_box(memo_concurrent_get(black_box(ids.next()))))
    });
    g.finish();

    let after = tier.stats().total;
    eprintln!(
        "l1_hit: tiercache counters after the run: l1_hits={} misses={} loads={} (loads must stay {})",
        after.l1_hits,
        after.misses,
        after.loads,
        2 * ENTRIES
    );
    assert_eq!(
        after.loads,
        2 * ENTRIES,
        "every timed tiercache read was an L1 hit"
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = l1_hit
}
criterion_main!(benches);

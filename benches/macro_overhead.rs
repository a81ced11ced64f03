//! The cost of the `#[cached]` attribute over writing the same `get_or_load` call by hand:
//! a `#[cached]` method against the hand-written method it stands for (render the key, call
//! `get_or_load`, clone the value out of the `Arc`), on the same cache, pattern and L1 hits.
//! The hand-written call returning the `Arc` (no clone) is measured too, to show the clone.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, Pattern, PatternConfig, TtlPolicy, cached};
use criterion::{Criterion, criterion_group, criterion_main};
use tiercache_benches::{ENTRIES, Ids, Product, config, product, runtime};

#[derive(Debug)]
struct Repo {
    cache: Cache,
    pattern: Pattern,
}

impl Repo {
    /// With the attribute.
    #[cached(key = "prod:<id>", ttl = 1800, l1_ttl = 1800)]
    async fn get(&self, id: u64) -> Product {
        product(id)
    }

    /// By hand: what the attribute stands for.
    async fn get_by_hand(&self, id: u64) -> Product {
        let key = self.pattern.key(&[&id]).expect("key");
        let value = self
            .cache
            .get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
            .await
            .expect("infallible");
        Arc::unwrap_or_clone(value)
    }

    /// By hand, keeping the `Arc`.
    async fn get_arc_by_hand(&self, id: u64) -> Arc<Product> {
        let key = self.pattern.key(&[&id]).expect("key");
        self.cache
            .get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
            .await
            .expect("infallible")
    }
}

fn macro_overhead(c: &mut Criterion) {
    let rt = runtime();
    let repo = rt.block_on(async {
        let cache = Cache::builder()
            .namespace("bench-macro")
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache");
        let pattern = cache
            .register(PatternConfig::new(
                "prod:<id>",
                TtlPolicy::new(Duration::from_secs(1800)).l1_ttl(Duration::from_secs(1800)),
            ))
            .expect("pattern");
        let repo = Repo { cache, pattern };
        for id in 0..ENTRIES {
            black_box(repo.get(id).await);
        }
        repo
    });
    assert_eq!(repo.cache.stats().total.loads, ENTRIES);

    let mut g = c.benchmark_group("macro_overhead");
    let mut ids = Ids::default();
    g.bench_function("attribute", |b| {
        b.to_async(&rt).iter(|| black_box(repo.get(black_box(ids.next()))))
    });
    g.bench_function("hand_written", |b| {
        b.to_async(&rt)
            .iter(|| black_box(repo.get_by_hand(black_box(ids.next()))))
    });
    g.bench_function("hand_written_arc", |b| {
        b.to_async(&rt)
            .iter(|| black_box(repo.get_arc_by_hand(black_box(ids.next()))))
    });
    g.finish();
    assert_eq!(
        repo.cache.stats().total.loads,
        ENTRIES,
        "every timed call was an L1 hit"
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = macro_overhead
}
criterion_main!(benches);

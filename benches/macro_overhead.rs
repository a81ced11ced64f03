//! The cost of the `#[cached]` attribute over writing the same `get_or_load` call by hand:
//! a `#[cached]` method against the hand-written method it stands for (render the key, call
//! `get_or_load`, clone the value out of the `Arc`), on the same cache, pattern and L1 hits.
//! The hand-written call returning the `Arc` (no clone) is measured too, to show the clone.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, Pattern, PatternConfig, TtlPolicy, cached};
use criterion::{Criterion, criterion_group, criterion_main};
use tiercache_benches::{ENTRIES, Ids, Product, config, product, quick, runtime, write_paired};

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
        b.to_async(&rt)
            .iter(|| black_box(repo.get(black_box(ids.next()))))
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

    // Paired, interleaved measurement (robust to load that changes during the run): blocks of
    // calls alternate between the two, the order flipping every block (no boxing: these calls
    // take nanoseconds).
    let blocks = if quick() { 60 } else { 200 };
    const CALLS: u64 = 500;
    let times = rt.block_on(async {
        let mut times = [Vec::with_capacity(blocks), Vec::with_capacity(blocks)];
        let mut id = 0u64;
        for block in 0..blocks {
            for turn in 0..2 {
                let by_hand = (block + turn) % 2 == 0;
                let started = Instant::now();
                for _ in 0..CALLS {
                    id = (id + 1) % ENTRIES;
                    if by_hand {
                        black_box(repo.get_by_hand(black_box(id)).await);
                    } else {
                        black_box(repo.get(black_box(id)).await);
                    }
                }
                times[usize::from(!by_hand)].push(started.elapsed().as_secs_f64());
            }
        }
        times
    });
    write_paired(
        "macro_overhead",
        "hand_written",
        blocks,
        CALLS,
        ["hand_written", "attribute"].into_iter(),
        &times,
    );

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

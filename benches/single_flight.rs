//! Single-flight: 1,000 concurrent callers (tokio tasks) ask for one cold key whose loader
//! sleeps 10 ms. Times serving all of them; counts the loader's runs, asserted to be exactly one
//! per key (outside the timing). Baseline: moka's `try_get_with`, which coalesces the same way.
//!
//! Contenders: tiercache without L2 (like moka) and with L2 (the leader also misses in Redis and
//! writes the value through). The loader counts go to `target/criterion/tiercache-extra/`.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, Pattern, PatternConfig, TtlPolicy};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tiercache_benches::{Product, RedisServer, config, product, runtime, write_extra};

const CALLERS: usize = 1_000;
const LOAD_TIME: Duration = Duration::from_millis(10);

/// Cold ids: never asked for before.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Per contender: keys served and loader runs.
#[derive(Debug, Default)]
struct Tally {
    keys: AtomicU64,
    loads: AtomicU64,
}

impl Tally {
    fn json(&self) -> serde_json::Value {
        let keys = self.keys.load(Ordering::Relaxed);
        let loads = self.loads.load(Ordering::Relaxed);
        serde_json::json!({ "cold_keys": keys, "loader_calls": loads, "loader_calls_per_key": if keys == 0 { 0.0 } else { loads as f64 / keys as f64 } })
    }
}

async fn slow_load(id: u64, calls: &AtomicUsize) -> Product {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(LOAD_TIME).await;
    product(id)
}

/// One round: `CALLERS` tasks ask for a fresh key; returns the time to serve them all.
async fn tiercache_round(cache: &Cache, pattern: &Pattern, tally: &Tally) -> Duration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, pattern, calls) = (cache.clone(), pattern.clone(), calls.clone());
            tokio::spawn(async move {
                let key = pattern.key(&[&id]).expect("key");
                cache
                    .get_or_load(&key, || async move {
                        Ok::<_, Infallible>(slow_load(id, &calls).await)
                    })
                    .await
                    .expect("infallible")
            })
        })
        .collect();
    for task in tasks {
        black_box(task.await.expect("caller"));
    }
    let took = started.elapsed();
    let calls = calls.load(Ordering::SeqCst);
    assert_eq!(
        calls, 1,
        "{CALLERS} concurrent callers ran the loader {calls} times"
    );
    tally.keys.fetch_add(1, Ordering::Relaxed);
    tally.loads.fetch_add(calls as u64, Ordering::Relaxed);
    took
}

async fn moka_round(moka: &moka::future::Cache<u64, Arc<Product>>, tally: &Tally) -> Duration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (moka, calls) = (moka.clone(), calls.clone());
            tokio::spawn(async move {
                moka.try_get_with(id, async move {
                    Ok::<_, Infallible>(Arc::new(slow_load(id, &calls).await))
                })
                .await
                .expect("infallible")
            })
        })
        .collect();
    for task in tasks {
        black_box(task.await.expect("caller"));
    }
    let took = started.elapsed();
    let calls = calls.load(Ordering::SeqCst);
    assert_eq!(
        calls, 1,
        "{CALLERS} concurrent callers ran the loader {calls} times"
    );
    tally.keys.fetch_add(1, Ordering::Relaxed);
    tally.loads.fetch_add(calls as u64, Ordering::Relaxed);
    took
}

fn single_flight(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = runtime();
    let policy = || TtlPolicy::new(Duration::from_secs(1800));
    let (l1_only, with_l2) = rt.block_on(async {
        let l1_only = Cache::builder()
            .namespace("bench-sf")
            .build()
            .await
            .expect("cache");
        let with_l2 = Cache::builder()
            .namespace("bench-sf-l2")
            .redis_url(server.url())
            .require_redis(true)
            .build()
            .await
            .expect("cache");
        (l1_only, with_l2)
    });
    let p1 = l1_only
        .register(PatternConfig::new("prod:<id>", policy()))
        .expect("pattern");
    let p2 = with_l2
        .register(PatternConfig::new("prod:<id>", policy()))
        .expect("pattern");
    let moka: moka::future::Cache<u64, Arc<Product>> = moka::future::Cache::new(1_000_000);
    let tallies: [Tally; 3] = Default::default();

    let mut g = c.benchmark_group("single_flight");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("moka_try_get_with", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (moka, tally) = (&moka, &tallies[0]);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += moka_round(moka, tally).await;
                }
                total
            }
        })
    });
    g.bench_function("tiercache_l1_only", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cache, pattern, tally) = (&l1_only, &p1, &tallies[1]);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += tiercache_round(cache, pattern, tally).await;
                }
                total
            }
        })
    });
    g.bench_function("tiercache_l1_l2", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cache, pattern, tally) = (&with_l2, &p2, &tallies[2]);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += tiercache_round(cache, pattern, tally).await;
                }
                total
            }
        })
    });
    g.finish();

    let figures = serde_json::json!({
        "callers": CALLERS,
        "loader_sleep_ms": LOAD_TIME.as_millis() as u64,
        "moka_try_get_with": tallies[0].json(),
        "tiercache_l1_only": tallies[1].json(),
        "tiercache_l1_l2": tallies[2].json(),
    });
    eprintln!("single_flight: {figures}");
    write_extra("single_flight", &figures);
    drop(server);
}

criterion_group! {
    name = benches;
    config = config();
    targets = single_flight
}
criterion_main!(benches);

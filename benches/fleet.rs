//! A fleet on one Redis: four `Cache` instances (each with its own connection) stand for four
//! processes behind a load balancer.
//!
//! - `cold_key_4x250`: 250 concurrent callers on each instance ask for one cold key whose loader
//!   sleeps 10 ms; times serving all 1,000. With the fleet lease (`lease`) one instance loads and
//!   the others wait for its value (goal: 1 load, within 1.2x of `one_load`, one caller on one
//!   instance loading a cold key alone); without it (`no_lease`, the baseline) every instance
//!   loads. Loader runs per key go to `target/criterion/tiercache-extra/fleet.json` (asserted 1
//!   with the lease, outside the timing).
//! - `l2_miss`: what the lease adds to one L2 miss with an instant loader (the lease's acquire
//!   script before the load: its release rides on the write-back's script call), against the
//!   same miss with the lease off.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, Pattern, PatternConfig, TtlPolicy};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tiercache_benches::{Product, RedisServer, config, product, runtime, write_extra};

const INSTANCES: usize = 4;
const CALLERS: usize = 250;
const LOAD_TIME: Duration = Duration::from_millis(10);

/// Cold ids: never asked for before.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Per contender: cold keys served and loader runs.
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

/// A fleet of `INSTANCES` caches on `url`, in namespace `ns`, with the lease on or off.
async fn fleet(url: &str, ns: &str, lease: bool) -> Vec<(Cache, Pattern)> {
    let mut fleet = Vec::new();
    for _ in 0..INSTANCES {
        let cache = Cache::builder()
            .namespace(ns)
            .redis_url(url)
            .require_redis(true)
            .fleet_lease(lease)
            .build()
            .await
            .expect("cache");
        let pattern = cache
            .register(PatternConfig::new(
                "prod:<id>",
                TtlPolicy::new(Duration::from_secs(1800)),
            ))
            .expect("pattern");
        fleet.push((cache, pattern));
    }
    fleet
}

/// One round: `callers` tasks on each instance ask for a fresh key whose loader takes
/// `load_time`; returns the time to serve them all.
async fn round(
    fleet: &[(Cache, Pattern)],
    callers: usize,
    load_time: Duration,
    tally: &Tally,
    one_load: bool,
) -> Duration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let calls = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(fleet.len() * callers);
    for (cache, pattern) in fleet {
        for _ in 0..callers {
            let (cache, pattern, calls) = (cache.clone(), pattern.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let key = pattern.key(&[&id]).expect("key");
                cache
                    .get_or_load(&key, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        if !load_time.is_zero() {
                            tokio::time::sleep(load_time).await;
                        }
                        Ok::<Product, Infallible>(product(id))
                    })
                    .await
                    .expect("infallible")
            }));
        }
    }
    for task in tasks {
        black_box(task.await.expect("caller"));
    }
    let took = started.elapsed();
    let calls = calls.load(Ordering::SeqCst);
    if one_load {
        assert_eq!(calls, 1, "the fleet ran the loader {calls} times");
    }
    tally.keys.fetch_add(1, Ordering::Relaxed);
    tally.loads.fetch_add(calls as u64, Ordering::Relaxed);
    took
}

/// One measured configuration: which fleet, how many callers per instance, the loader's time,
/// where its loads are counted, and whether exactly one load per key is asserted.
struct Contender<'a> {
    name: &'static str,
    fleet: &'a [(Cache, Pattern)],
    callers: usize,
    load_time: Duration,
    tally: &'a Tally,
    one_load: bool,
}

impl<'a> Contender<'a> {
    fn new(
        name: &'static str,
        fleet: &'a [(Cache, Pattern)],
        callers: usize,
        load_time: Duration,
        tally: &'a Tally,
        one_load: bool,
    ) -> Self {
        Contender {
            name,
            fleet,
            callers,
            load_time,
            tally,
            one_load,
        }
    }
}

fn fleet_bench(c: &mut Criterion) {
    let server = RedisServer::start();
    let rt = runtime();
    let url = server.url();
    let (leased, unleased) = rt.block_on(async {
        (
            fleet(&url, "bench-fleet", true).await,
            fleet(&url, "bench-fleet-off", false).await,
        )
    });
    let tallies: [Tally; 3] = Default::default();
    let mut g = c.benchmark_group("fleet");
    g.sampling_mode(SamplingMode::Flat);
    let spare = [Tally::default(), Tally::default()];
    let contenders = [
        Contender::new("one_load", &unleased[..1], 1, LOAD_TIME, &tallies[0], true),
        Contender::new(
            "cold_key_4x250_lease",
            &leased,
            CALLERS,
            LOAD_TIME,
            &tallies[1],
            true,
        ),
        Contender::new(
            "cold_key_4x250_no_lease",
            &unleased,
            CALLERS,
            LOAD_TIME,
            &tallies[2],
            false,
        ),
        Contender::new(
            "l2_miss_lease",
            &leased[..1],
            1,
            Duration::ZERO,
            &spare[0],
            true,
        ),
        Contender::new(
            "l2_miss_no_lease",
            &unleased[..1],
            1,
            Duration::ZERO,
            &spare[1],
            true,
        ),
    ];
    for c in &contenders {
        g.bench_function(c.name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += round(c.fleet, c.callers, c.load_time, c.tally, c.one_load).await;
                }
                total
            })
        });
    }
    g.finish();

    let figures = serde_json::json!({
        "instances": INSTANCES,
        "callers_per_instance": CALLERS,
        "loader_sleep_ms": LOAD_TIME.as_millis() as u64,
        "one_load": tallies[0].json(),
        "cold_key_4x250_lease": tallies[1].json(),
        "cold_key_4x250_no_lease": tallies[2].json(),
    });
    eprintln!("fleet: {figures}");
    write_extra("fleet", &figures);
    drop(server);
}

criterion_group! {
    name = benches;
    config = config();
    targets = fleet_bench
}
criterion_main!(benches);

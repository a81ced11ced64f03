//! The backplane: how long an invalidation or an overwrite made by instance A takes to reach
//! instance B's L1 (two `Cache` values, each with its own connections, on one loopback Redis),
//! and what it adds to an invalidation.
//!
//! - `backplane/propagation/{key_evict,tag_evict,overwrite}`: B holds the key in L1; the timer
//!   runs from the start of A's call until B no longer serves its old copy (B polls its L1,
//!   yielding between probes). Every sample also goes into a list whose p50/p99 are written to
//!   `target/criterion/tiercache-extra/backplane.json` (goal: p99 under 5 ms).
//! - `backplane/invalidate/{tiercache,raw_pipeline,raw_xadd}`: a key invalidation through
//!   tiercache (L1, tombstone + UNLINK, then the broadcast) against the same Redis work done raw
//!   (the tombstone `SET` + `UNLINK` pipeline) and the broadcast alone (one `XADD MAXLEN ~`):
//!   what the backplane adds is about `raw_xadd`.
//! - `backplane/transport/{pubsub,stream}`: the transports themselves, raw redis-rs side by side
//!   (the measurement behind the stream's choice, `store/backplane.rs`): one message from a
//!   publishing connection to a receiver already waiting on a connection of its own, `PUBLISH` to
//!   a `SUBSCRIBE`d connection against `XADD MAXLEN ~` to an `XREAD BLOCK` loop. Timed from
//!   before the publish until the receiving task has the reply. Then 2,000 messages over each
//!   (10,000 in full mode), alternating, so that both see the same moments of a busy machine:
//!   their p50/p99 go to the JSON (`transport_paired`).
//! - idle cost (not a criterion bench; into the JSON): four instances that know 300 tags and
//!   patterns sit idle for 10 s on a Redis of their own; `INFO commandstats` and
//!   `keyspace_misses` before and after, per instance per second (`BENCH_IDLE_SECS` overrides the
//!   10 s).

#[path = "backplane/idle.rs"]
mod idle;
#[path = "backplane/transport.rs"]
mod transport;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache_core::{Cache, Key, Pattern, PatternConfig, TtlPolicy};
use criterion::{Criterion, criterion_group, criterion_main};
use tiercache_benches::{Product, RedisServer, config, product, runtime, write_extra};

async fn instance(url: &str) -> (Cache, Pattern) {
    let cache = Cache::builder()
        .namespace("bench-bp")
        .redis_url(url)
        .require_redis(true)
        .build()
        .await
        .expect("cache");
    let pattern = cache
        .register(
            PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(600)))
                .tag("prod:<id>:tag"),
        )
        .expect("pattern");
    (cache, pattern)
}

/// How a change is made on A.
#[derive(Clone, Copy)]
enum Change {
    KeyEvict,
    TagEvict,
    Overwrite,
}

/// One propagation: B caches the key (from L2), A changes it, B polls its L1 until its old
/// copy is gone. Returns the time from A's call to B's first read of the new state.
async fn propagate(a: &Cache, b: &Cache, ka: &Key, kb: &Key, id: u64, change: Change) -> Duration {
    a.set(ka, product(id)).await;
    // B reads the value into its L1 (wait for A's overwrite message to have passed first).
    loop {
        if b.get::<Product>(kb).await.is_some_and(|p| p.price >= 0.0) {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _ = b.get::<Product>(kb).await;
    let old = b.stats().total.l1_hits;
    let started = Instant::now();
    match change {
        Change::KeyEvict => a.invalidate(ka).await,
        Change::TagEvict => a.invalidate_tag(&format!("prod:{id}:tag")).await,
        Change::Overwrite => {
            let mut new = product(id);
            new.price = -1.0;
            a.set(ka, new).await;
        }
    }
    loop {
        let hits = b.stats().total.l1_hits;
        let value = b.get::<Product>(kb).await;
        let from_l1 = b.stats().total.l1_hits > hits;
        if !from_l1 || value.is_none_or(|p| p.price < 0.0) {
            break;
        }
        tokio::task::yield_now().await;
    }
    black_box(old);
    started.elapsed()
}

/// The `p` quantile of `sorted`, in microseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn backplane(c: &mut Criterion) {
    let rt = runtime();
    let server = RedisServer::start();
    let url = server.url();
    let ((a, pa), (b, pb)) = rt.block_on(async { (instance(&url).await, instance(&url).await) });
    let mut figures = serde_json::Map::new();

    let mut group = c.benchmark_group("backplane/propagation");
    for (name, change) in [
        ("key_evict", Change::KeyEvict),
        ("tag_evict", Change::TagEvict),
        ("overwrite", Change::Overwrite),
    ] {
        let samples = Mutex::new(Vec::new());
        let mut id = 0u64;
        group.bench_function(name, |bench| {
            bench.to_async(&rt).iter_custom(|iters| {
                let (a, b, pa, pb, samples) = (&a, &b, &pa, &pb, &samples);
                id += 1;
                let base = id * 1_000_000;
                async move {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let k = base + i % 1_000;
                        let (ka, kb) = (pa.key(&[&k]).expect("key"), pb.key(&[&k]).expect("key"));
                        let took = propagate(a, b, &ka, &kb, k, change).await;
                        samples.lock().expect("samples").push(took);
                        total += took;
                    }
                    total
                }
            });
        });
        let mut sorted = samples.into_inner().expect("samples");
        sorted.sort_unstable();
        figures.insert(
            name.to_owned(),
            serde_json::json!({
                "samples": sorted.len(),
                "p50_us": percentile(&sorted, 0.50),
                "p99_us": percentile(&sorted, 0.99),
            }),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("backplane/invalidate");
    let mut next = 0u64;
    group.bench_function("tiercache", |bench| {
        bench.to_async(&rt).iter(|| {
            next += 1;
            let key = pa.key(&[&(next % 10_000)]).expect("key");
            let a = &a;
            async move { a.invalidate(&key).await }
        });
    });
    let client = server.client();
    let conn = rt.block_on(async {
        client
            .get_multiplexed_async_connection()
            .await
            .expect("conn")
    });
    group.bench_function("raw_pipeline", |bench| {
        bench.to_async(&rt).iter(|| {
            next += 1;
            let id = next % 10_000;
            let mut conn = conn.clone();
            async move {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(format!("raw:d:prod:{id}"))
                    .arg(1u64)
                    .arg("PX")
                    .arg(120_000u64)
                    .ignore();
                pipe.cmd("UNLINK").arg(format!("raw:k:prod:{id}")).ignore();
                pipe.query_async::<()>(&mut conn).await.expect("pipeline");
            }
        });
    });
    group.bench_function("raw_xadd", |bench| {
        bench.to_async(&rt).iter(|| {
            next += 1;
            let id = next % 10_000;
            let mut conn = conn.clone();
            async move {
                let _: String = redis::cmd("XADD")
                    .arg("raw:bp")
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(10_000)
                    .arg("*")
                    .arg("i")
                    .arg(1u64)
                    .arg("a")
                    .arg(id)
                    .arg("e")
                    .arg("k")
                    .arg("v")
                    .arg(format!("prod:{id}"))
                    .query_async(&mut conn)
                    .await
                    .expect("xadd");
            }
        });
    });
    group.finish();

    transport::bench(c, &rt, &server, &mut figures);
    figures.insert("idle".to_owned(), rt.block_on(idle::measure()));

    let figures = serde_json::Value::Object(figures);
    eprintln!("backplane: {figures}");
    write_extra("backplane", &figures);
    drop(server);
}

criterion_group! {
    name = benches;
    config = config();
    targets = backplane
}
criterion_main!(benches);

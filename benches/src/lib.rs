//! Shared fixtures of the tiercache micro-benchmarks: the ~1 KB [`Product`] value, the entry
//! count, the tokio runtime, the Redis server and the criterion settings (quick or full).
//!
//! Every bench compares tiercache with its baseline in the same run, over the same number of
//! entries ([`ENTRIES`]) of the same value.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::Criterion;
use serde::{Deserialize, Serialize};

pub use tiercache_tests::RedisServer;

pub mod deployment;

/// Entries in every cache of every bench.
pub const ENTRIES: u64 = 10_000;

/// The cached value: about 1 KB once encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub price: f64,
    pub attributes: BTreeMap<String, String>,
}

const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation \
ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in \
voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non \
proident, sunt in culpa qui officia deserunt mollit anim id est laborum. Sed ut perspiciatis unde \
omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem aperiam, eaque \
ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae dicta sunt explicabo. Nemo \
enim ipsam voluptatem quia voluptas sit aspernatur aut odit aut fugit, sed quia consequuntur magni \
dolores eos qui ratione voluptatem sequi nesciunt.";

/// The product with this id (what the benches' "database" returns).
pub fn product(id: u64) -> Product {
    let mut attributes = BTreeMap::new();
    attributes.insert("color".to_owned(), format!("color-{}", id % 17));
    attributes.insert("size".to_owned(), format!("size-{}", id % 5));
    attributes.insert("material".to_owned(), "anodized aluminium".to_owned());
    attributes.insert("warranty".to_owned(), "2 years".to_owned());
    Product {
        id,
        sku: format!("SKU-{id:08}"),
        name: format!("Desk lamp model {id}"),
        description: LOREM[..800].to_owned(),
        brand: "Lumina".to_owned(),
        price: 19.99 + (id % 100) as f64,
        attributes,
    }
}

/// Error type of the loaders (the `cached` crate's fallible macros need one).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Whether `BENCH_QUICK` asks for the quick mode.
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Criterion settings: quick (`BENCH_QUICK=1`: 10 samples, 300 ms warm-up, 1 s measurement) or
/// full (default: 50 samples, 1 s warm-up, 3 s measurement). No plots either way.
pub fn config() -> Criterion {
    let c = Criterion::default().without_plots();
    if quick() {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c.sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
    }
}

/// The runtime every async bench runs on: multi-threaded, one worker per core (2 here).
pub fn runtime() -> tokio::runtime::Runtime {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Cycles through `0..ENTRIES`: the ids a bench reads, the same sequence for every contender.
#[derive(Debug, Default)]
pub struct Ids(u64);

impl Ids {
    /// The next id.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let id = self.0;
        self.0 = (self.0 + 1) % ENTRIES;
        id
    }

    /// The next `n` ids (wrapping).
    pub fn next_n(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Where the benches leave figures criterion does not record (for example single-flight loader
/// counts): `<target>/criterion/tiercache-extra/`.
pub fn extra_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion").join("tiercache-extra")
}

/// Writes `value` as `<extra_dir>/<name>.json`.
pub fn write_extra(name: &str, value: &serde_json::Value) {
    let dir = extra_dir();
    std::fs::create_dir_all(&dir).expect("create the extra figures directory");
    let text = serde_json::to_string_pretty(value).expect("serialize");
    std::fs::write(dir.join(format!("{name}.json")), text).expect("write extra figures");
}

/// Prints what the cache counted over a bench's timed reads (`before` and `after` them), so that
/// the log shows which tier served them.
pub fn print_counters(bench: &str, before: &cache_core::Counters, after: &cache_core::Counters) {
    eprintln!(
        "{bench}: tiercache counters over the timed reads: l1_hits={} l2_hits={} misses={}",
        after.l1_hits - before.l1_hits,
        after.l2_hits - before.l2_hits,
        after.misses - before.misses
    );
}

/// Calls per command so far, from `INFO commandstats` (`cmdstat_<name>:calls=N,...`), the
/// probe's own `INFO` excluded.
pub async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// A pattern policy whose L1 copies are fresh for 1 ms only (the shortest L1 TTL): every read of
/// a key not read in the last millisecond goes to L2, i.e. each read sees a fresh L1. The L1
/// insert of the value read from L2 still happens, as on any real L2 hit.
pub fn l2_only_policy() -> cache_core::TtlPolicy {
    cache_core::TtlPolicy::new(Duration::from_secs(1800))
        .l1_ttl(Duration::from_millis(1))
        .jitter(0.0)
}

/// One contender of a paired measurement: called with an id, returns the future of one call.
pub type Call<'a> = Box<dyn FnMut(u64) -> futures::future::BoxFuture<'a, ()> + 'a>;

/// Paired, interleaved measurement, robust to load that changes during the run (a shared
/// machine): `blocks` rounds; in each, every contender makes `calls` calls in turn (the order
/// rotating every round). Each round yields one ratio per contender (its time over the first
/// contender's, the baseline), summarised by median and quartiles; written to
/// `<extra_dir>/paired_<bench>.json` for the report. Returns the median ratios.
///
/// The boxed call adds the same small cost to every contender, so use it where a call takes
/// microseconds (Redis), not nanoseconds.
pub async fn paired(
    bench: &str,
    blocks: usize,
    calls: u64,
    contenders: &mut [(&str, Call<'_>)],
) -> Vec<f64> {
    let n = contenders.len();
    let mut times = vec![Vec::with_capacity(blocks); n];
    let mut id = 0u64;
    for block in 0..blocks {
        for turn in 0..n {
            let which = (block + turn) % n;
            let call = &mut contenders[which].1;
            let started = std::time::Instant::now();
            for _ in 0..calls {
                id = (id + 1) % ENTRIES;
                call(id).await;
            }
            times[which].push(started.elapsed().as_secs_f64());
        }
    }
    write_paired(
        bench,
        contenders[0].0,
        blocks,
        calls,
        contenders.iter().map(|c| c.0),
        &times,
    )
}

/// Summarises per-block times (first series: the baseline) and writes `paired_<bench>.json`.
pub fn write_paired<'n>(
    bench: &str,
    baseline: &str,
    blocks: usize,
    calls: u64,
    names: impl Iterator<Item = &'n str>,
    times: &[Vec<f64>],
) -> Vec<f64> {
    let mut rows = Vec::new();
    let mut medians = Vec::new();
    for (name, series) in names.zip(times).skip(1) {
        let mut ratios: Vec<f64> = series.iter().zip(&times[0]).map(|(t, b)| t / b).collect();
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        medians.push(at(0.5));
        rows.push(serde_json::json!({
            "library": name, "median": at(0.5), "p25": at(0.25), "p75": at(0.75),
        }));
    }
    let figures = serde_json::json!({
        "bench": bench, "baseline": baseline, "blocks": blocks, "calls_per_block": calls,
        "rows": rows,
    });
    eprintln!("{bench}: paired ratios: {figures}");
    write_extra(&format!("paired_{bench}"), &figures);
    medians
}

/// The L1 contenders shared by `benches/l1_hit.rs` and the `hit-profile` tool, so that both
/// measure the very same functions and caches.
pub mod l1 {
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use cache_core::{Cache, TtlPolicy};

    use crate::{ENTRIES, Product, product};

    /// The cache the free `#[cached]` functions use; [`set_cache`] before the first call.
    static CACHE: OnceLock<Cache> = OnceLock::new();

    /// Installs the cache of [`tier_get`] and [`tier_get_arc`] (once per process).
    pub fn set_cache(cache: Cache) {
        CACHE.set(cache).expect("the cache is installed once");
    }

    fn cache() -> &'static Cache {
        CACHE
            .get()
            .expect("cache initialised before the first call")
    }

    /// The policy of `prod:<id>`: L1 TTL = L2 TTL, so no entry expires during a run.
    pub fn policy() -> TtlPolicy {
        TtlPolicy::new(Duration::from_secs(1800)).l1_ttl(Duration::from_secs(1800))
    }

    /// tiercache's attribute on a function returning an owned `Product`.
    #[cache_core::cached(key = "prod:<id>", ttl = 1800, l1_ttl = 1800, cache = cache())]
    pub async fn tier_get(id: u64) -> Product {
        product(id)
    }

    /// The same attribute on a function returning `Arc<Product>`: a hit is one reference count.
    #[cache_core::cached(key = "prod_arc:<id>", ttl = 1800, l1_ttl = 1800, cache = cache())]
    pub async fn tier_get_arc(id: u64) -> Arc<Product> {
        Arc::new(product(id))
    }

    /// The `Arc` attribute with refresh-ahead: a hit also reads the entry's refresh deadline (the
    /// reload it would start is never due in a run: 90% of 30 minutes).
    #[cache_core::cached(
        key = "prod_ra:<id>",
        ttl = 1800,
        l1_ttl = 1800,
        refresh_ahead = 0.9,
        cache = cache()
    )]
    pub async fn tier_get_refresh(id: u64) -> Arc<Product> {
        Arc::new(product(id))
    }

    /// The `cached` crate: `#[cached]` on an async fn (an `UnboundCache` behind an async mutex).
    #[cached::macros::cached]
    pub async fn memo_get(id: u64) -> Product {
        product(id)
    }

    /// The `cached` crate: `#[concurrent_cached]` (a sharded in-memory store).
    #[cached::macros::concurrent_cached]
    pub async fn memo_concurrent_get(id: u64) -> Product {
        product(id)
    }

    /// moka's synchronous cache keyed by strings, as tiercache's L1 is.
    pub type SyncMoka = moka::sync::Cache<String, Arc<Product>, foldhash::quality::RandomState>;

    /// A 30-minute per-entry expiry: what tiercache's L1 configured in moka before it left expiry
    /// to its own stamps (the decomposition shows the cost).
    struct Lifetime;

    impl moka::Expiry<String, Arc<Product>> for Lifetime {
        fn expire_after_create(
            &self,
            _key: &String,
            _value: &Arc<Product>,
            _now: std::time::Instant,
        ) -> Option<Duration> {
            Some(Duration::from_secs(1800))
        }
    }

    /// moka's synchronous cache: bare, or with a weigher and per-entry expiry (`l1_config`).
    pub fn sync_moka(l1_config: bool) -> SyncMoka {
        let builder = moka::sync::Cache::builder();
        if l1_config {
            builder
                .max_capacity(256 * 1024 * 1024)
                .weigher(|_: &String, _: &Arc<Product>| 1200)
                .expire_after(Lifetime)
                .build_with_hasher(foldhash::quality::RandomState::default())
        } else {
            builder
                .max_capacity(ENTRIES * 2)
                .build_with_hasher(foldhash::quality::RandomState::default())
        }
    }
}

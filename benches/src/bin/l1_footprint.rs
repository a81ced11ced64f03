//! What an L1 of a given budget really holds: live heap bytes, counted by `dhat` as the global
//! allocator, against the budget and the weight tiercache charges.
//!
//! For each budget, an L1-only cache is filled (`set`) with more values than fit: the ~1 KB
//! products of the other benches, then one-byte values (what an entry costs beyond its value).
//! The bytes the cache held are the live heap bytes that dropping it frees. tiercache weighs each
//! entry by an estimate of its decoded size plus a fixed overhead; this checks that the heap held
//! stays within the budget.
//!
//! ```text
//! l1-footprint [budget MiB ...]             # default: 4 16
//! L1_FOOTPRINT_JSON=out.json l1-footprint   # also write the figures
//! ```

use std::time::Duration;

use cache_core::{Cache, PatternConfig, TtlPolicy};
use tiercache_benches::product;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> u64 {
    dhat::HeapStats::get().curr_bytes as u64
}

struct Row {
    values: &'static str,
    budget: u64,
    keys: u64,
    entries: u64,
    weighted: u64,
    held: u64,
}

async fn fill(budget: u64, tiny: bool) -> Row {
    let cache = Cache::builder()
        .namespace("footprint")
        .l1_capacity_bytes(budget)
        .build()
        .await
        .expect("cache");
    let pattern = cache
        .register(PatternConfig::new(
            "prod:<id>",
            TtlPolicy::new(Duration::from_secs(3600)),
        ))
        .expect("pattern");
    // More values than the budget holds (products weigh ~2 KB, one-byte values ~400 bytes).
    let keys = budget / if tiny { 256 } else { 512 };
    for id in 0..keys {
        let key = pattern.key(&[&id]).expect("key");
        if tiny {
            cache.set(&key, 1u8).await;
        } else {
            cache.set(&key, product(id)).await;
        }
    }
    let stats = cache.stats();
    drop(pattern);
    let filled = live_bytes();
    drop(cache);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let emptied = live_bytes();
    Row {
        values: if tiny {
            "one-byte values"
        } else {
            "~1 KB products"
        },
        budget,
        keys,
        entries: stats.l1_entries,
        weighted: stats.l1_weighted_bytes,
        held: filled.saturating_sub(emptied),
    }
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let budgets: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("budget in MiB") << 20)
        .collect();
    let budgets = if budgets.is_empty() {
        vec![4 << 20, 16 << 20]
    } else {
        budgets
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut json = Vec::new();
    println!("values budget_MiB keys entries weighted_MiB held_MiB held/budget held/entry");
    for (budget, tiny) in budgets
        .iter()
        .map(|&b| (b, false))
        .chain(budgets.first().map(|&b| (b, true)))
    {
        let r = rt.block_on(fill(budget, tiny));
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        println!(
            "{:?} {:.0} {} {} {:.2} {:.2} {:.2} {}",
            r.values,
            mib(r.budget),
            r.keys,
            r.entries,
            mib(r.weighted),
            mib(r.held),
            r.held as f64 / r.budget as f64,
            r.held / r.entries.max(1)
        );
        json.push(format!(
            "{{\"values\":\"{}\",\"budget\":{},\"keys\":{},\"entries\":{},\"weighted\":{},\"held\":{}}}",
            r.values, r.budget, r.keys, r.entries, r.weighted, r.held
        ));
    }
    if let Ok(path) = std::env::var("L1_FOOTPRINT_JSON") {
        if let Some(dir) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(dir).expect("directory");
        }
        std::fs::write(&path, format!("{{\"rows\":[{}]}}\n", json.join(","))).expect("write");
    }
}

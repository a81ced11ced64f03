//! The cache in thirty lines: cache-aside loads, hits from L1, invalidation and statistics.
//!
//! `cargo run -p cache-core --example quickstart` (set `REDIS_URL` to use Redis as L2).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use cache_core::{Cache, PatternConfig, TtlPolicy};

async fn slow_database_lookup(id: u64) -> Result<String, Infallible> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(format!("product #{id}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::builder()
        .namespace("quickstart")
        .redis_url_opt(std::env::var("REDIS_URL").ok())
        .build()
        .await?;
    let products = cache.register(
        PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))).tag("products"),
    )?;

    for round in 1..=3 {
        let started = Instant::now();
        for id in 1..=5u64 {
            let key = products.key(&[&id])?;
            let name = cache.get_or_load(&key, || slow_database_lookup(id)).await?;
            assert_eq!(*name, format!("product #{id}"));
        }
        println!("round {round}: 5 reads in {:?}", started.elapsed());
        if round == 2 {
            cache.invalidate_tag("products").await;
            println!("invalidated tag `products`");
        }
    }
    let stats = cache.stats();
    println!(
        "loads {}, L1 hits {}, L2 hits {}, misses {}, hit ratio {:.0}%",
        stats.total.loads,
        stats.total.l1_hits,
        stats.total.l2_hits,
        stats.total.misses,
        stats.hit_ratio() * 100.0
    );
    println!("L2: {:?}", cache.health().await.l2.status);
    Ok(())
}

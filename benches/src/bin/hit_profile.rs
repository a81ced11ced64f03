//! Instruction counts of one L1 hit (and of the client side of one L2 hit), for profiling the hot
//! path on a noisy machine.
//!
//! Runs `HITS` reads of one contender over the same 10,000 warm entries as `benches/l1_hit.rs`,
//! on a current-thread runtime. Under `valgrind --tool=callgrind` the instruction count is
//! repeatable whatever else the machine does; `scripts/hit-profile.sh` runs every contender twice
//! (with 0 and with `HITS` reads) and prints the instructions per hit, and their ratio to raw moka.
//!
//! ```text
//! hit-profile <contender> <hits>
//! contenders: raw_moka_arc moka_sync_string moka_sync_l1_config tiercache_attribute_arc
//!             tiercache_attribute tiercache_get_or_load cached_cached
//!             tiercache_attribute_refresh (the Arc attribute with `refresh_ahead`)
//!             l2_raw_get_decode l2_tiercache_get l2_tiercache_get_or_load
//!             l2_tiercache_get_no_l1
//!             l2_raw_mget_decode_100 l2_tiercache_get_many_100 (one "hit" is a batch of 100)
//!             (the l2_ ones start a redis-server; only this process's instructions are
//!             counted, not Redis's)
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, Pattern, PatternConfig};
use tiercache_benches::l1::{
    memo_get, policy, set_cache, sync_moka, tier_get, tier_get_arc, tier_get_refresh,
};
use tiercache_benches::{ENTRIES, Ids, Product, product};

/// Keys per batch of the `get_many` contenders.
const BATCH: usize = 100;

/// The client side of L2 hits: tiercache's `get` (L1 expired after 1 ms, or no L1) against
/// redis-rs `GET` + `rmp_serde` decode of the same product, and `get_many` of 100 keys against
/// `MGET` + decode of the same 100, over `ENTRIES` keys. The entries are written by another cache
/// straight to Redis (as [`envelope`]s), so that no backplane message is read while measuring.
async fn l2(contender: &str, hits: u64) {
    use redis::AsyncCommands;
    let server = tiercache_benches::RedisServer::start();
    let build = |l1: bool| {
        let mut builder = Cache::builder();
        if !l1 {
            builder = builder.l1_capacity_bytes(0);
        }
        // Under valgrind a call runs tens of times slower: a generous timeout keeps every
        // measured read a hit (a timed-out read would be a miss, and cheaper).
        builder
            .namespace("profile-l2")
            .redis_timeout(Duration::from_secs(30))
            .redis_url(server.url())
            .require_redis(true)
            .build()
    };
    let register = |cache: &Cache| {
        cache
            .register(PatternConfig::new(
                "prod:<id>",
                tiercache_benches::l2_only_policy(),
            ))
            .expect("pattern")
    };
    let mut conn = server.connection().await;
    for id in 0..ENTRIES {
        let (name, bytes) = if contender.starts_with("l2_raw") {
            let bytes = rmp_serde::to_vec(&product(id)).expect("encode");
            (format!("raw:prod:{id}"), bytes)
        } else {
            (format!("profile-l2:k:prod:{id}"), envelope(&product(id)))
        };
        let _: () = conn.set(name, bytes).await.expect("SET");
    }
    let tier = build(contender != "l2_tiercache_get_no_l1")
        .await
        .expect("cache");
    let pattern = register(&tier);
    let keys: Vec<_> = (0..ENTRIES)
        .map(|id| pattern.key(&[&id]).expect("key"))
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut ids = Ids::default();
    for _ in 0..hits {
        match contender {
            "l2_raw_get_decode" => {
                let id = ids.next();
                let bytes: Vec<u8> = conn.get(format!("raw:prod:{id}")).await.expect("GET");
                drop(black_box(
                    rmp_serde::from_slice::<Product>(&bytes).expect("decode"),
                ));
            }
            "l2_raw_mget_decode_100" => {
                let names: Vec<String> = ids
                    .next_n(BATCH)
                    .iter()
                    .map(|id| format!("raw:prod:{id}"))
                    .collect();
                let all: Vec<Vec<u8>> = conn.mget(&names).await.expect("MGET");
                let products: Vec<Product> = all
                    .iter()
                    .map(|bytes| rmp_serde::from_slice(bytes).expect("decode"))
                    .collect();
                drop(black_box(products));
            }
            "l2_tiercache_get_many_100" => {
                let batch: Vec<_> = ids
                    .next_n(BATCH)
                    .into_iter()
                    .map(|id| keys[id as usize].clone())
                    .collect();
                let found = tier.get_many::<Product>(&batch).await;
                assert!(found.iter().all(Option::is_some), "L2 hits");
                drop(black_box(found));
            }
            "l2_tiercache_get_or_load" => {
                let id = ids.next();
                let loaded = tier
                    .get_or_load(&keys[id as usize], || async move {
                        Ok::<_, Infallible>(product(id))
                    })
                    .await
                    .expect("infallible");
                drop(black_box(loaded));
            }
            _ => {
                let id = ids.next();
                drop(black_box(
                    tier.get::<Product>(&keys[id as usize])
                        .await
                        .expect("L2 hit"),
                ));
            }
        }
    }
}

/// `value` as tiercache stores it in Redis (the envelope of `cache_core::codec`: magic, format
/// version, flags, written/fresh/stale stamps in µs, no tags, the MessagePack payload), written
/// now and fresh for 30 minutes.
fn envelope(value: &Product) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let micros = |d: Duration| u64::try_from(d.as_micros()).expect("µs fit in u64");
    let (written, until) = (micros(now), micros(now + Duration::from_secs(1800)));
    let mut bytes = b"tc".to_vec();
    bytes.extend_from_slice(&[cache_core::codec::FORMAT_VERSION, 0]);
    for t in [written, until, until] {
        bytes.extend_from_slice(&t.to_be_bytes());
    }
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&cache_core::codec::encode_value(value).expect("encode"));
    bytes
}

/// The hand-written `get_or_load` of a product by id (key rendered on each call).
async fn get_or_load(tier: &Cache, pattern: &Pattern, id: u64) -> Arc<Product> {
    let key = pattern.key(&[&id]).expect("key");
    tier.get_or_load(&key, || async { Ok::<_, Infallible>(product(id)) })
        .await
        .expect("infallible")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(contender), Some(hits)) = (args.next(), args.next()) else {
        eprintln!("usage: hit-profile <contender> <hits>");
        std::process::exit(2);
    };
    let Ok(hits) = hits.parse::<u64>() else {
        eprintln!("hits: a whole number");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if contender.starts_with("l2_") {
        rt.block_on(l2(&contender, hits));
        return;
    }
    rt.block_on(async {
        let tier = Cache::builder()
            .namespace("profile")
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache");
        set_cache(tier.clone());
        let pattern = tier
            .register(PatternConfig::new("prod:<id>", policy()))
            .expect("pattern");
        let moka: moka::future::Cache<u64, Arc<Product>> = moka::future::Cache::new(ENTRIES * 2);
        let (sync, l1_like) = (sync_moka(false), sync_moka(true));
        let texts: Vec<String> = (0..ENTRIES).map(|id| format!("prod:{id}")).collect();
        for id in 0..ENTRIES {
            match contender.as_str() {
                "raw_moka_arc" => moka.insert(id, Arc::new(product(id))).await,
                "moka_sync_string" => {
                    sync.insert(texts[id as usize].clone(), Arc::new(product(id)));
                }
                "moka_sync_l1_config" => {
                    l1_like.insert(texts[id as usize].clone(), Arc::new(product(id)));
                }
                "tiercache_attribute" => drop(black_box(tier_get(id).await)),
                "tiercache_attribute_arc" => drop(black_box(tier_get_arc(id).await)),
                "tiercache_attribute_refresh" => drop(black_box(tier_get_refresh(id).await)),
                "tiercache_get_or_load" => drop(black_box(get_or_load(&tier, &pattern, id).await)),
                "cached_cached" => drop(black_box(memo_get(id).await)),
                other => {
                    eprintln!("unknown contender {other}");
                    std::process::exit(2);
                }
            }
        }
        moka.run_pending_tasks().await;
        sync.run_pending_tasks();
        l1_like.run_pending_tasks();
        let mut ids = Ids::default();
        for _ in 0..hits {
            let id = ids.next();
            match contender.as_str() {
                "raw_moka_arc" => drop(black_box(moka.get(&id).await)),
                "moka_sync_string" => drop(black_box(sync.get(texts[id as usize].as_str()))),
                "moka_sync_l1_config" => {
                    drop(black_box(l1_like.get(texts[id as usize].as_str())));
                }
                "tiercache_attribute" => drop(black_box(tier_get(black_box(id)).await)),
                "tiercache_attribute_arc" => drop(black_box(tier_get_arc(black_box(id)).await)),
                "tiercache_attribute_refresh" => {
                    drop(black_box(tier_get_refresh(black_box(id)).await));
                }
                "tiercache_get_or_load" => drop(black_box(get_or_load(&tier, &pattern, id).await)),
                _ => drop(black_box(memo_get(black_box(id)).await)),
            }
        }
        let loads = tier.stats().total.loads;
        assert!(loads <= ENTRIES, "every timed tiercache read was a hit");
    });
}

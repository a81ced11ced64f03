//! What idle instances cost Redis: four instances that have each loaded 300 keys (300 tags known
//! to each) and invalidated a few tags sit idle on a Redis of their own; `INFO commandstats`
//! (calls per command, `INFO` itself excluded) and `keyspace_misses` before and after, per
//! instance per second. The window is 10 s (`BENCH_IDLE_SECS` overrides it).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use tiercache_benches::{RedisServer, command_calls, product};

const INSTANCES: u64 = 4;
const TAGS: u64 = 300;

/// Calls per command (`cmdstat_<name>:calls=N,...`), `INFO` excluded; `keyspace_misses`.
async fn counters(server: &RedisServer) -> (BTreeMap<String, u64>, u64) {
    let mut conn = server.connection().await;
    let calls = command_calls(&mut conn).await;
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .expect("INFO stats");
    let misses = stats
        .lines()
        .find_map(|l| l.strip_prefix("keyspace_misses:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("keyspace_misses");
    (calls, misses)
}

/// The idle figures, as JSON.
pub async fn measure() -> serde_json::Value {
    let secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let server = RedisServer::start();
    let mut fleet = Vec::new();
    for _ in 0..INSTANCES {
        // The instances the propagation benches use (a tag per product).
        let (cache, pattern) = super::instance(&server.url()).await;
        for id in 0..TAGS {
            let key = pattern.key(&[&id]).expect("key");
            cache
                .get_or_load(&key, || async move { Ok::<_, Infallible>(product(id)) })
                .await
                .expect("load");
        }
        for id in 0..5u64 {
            cache.invalidate_tag(&format!("prod:{id}:tag")).await;
        }
        fleet.push(cache);
    }
    // Let the invalidations' messages reach every instance before the window opens.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, misses_before) = counters(&server).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (after, misses_after) = counters(&server).await;
    drop(fleet);

    let per_second = |n: u64| n as f64 / (INSTANCES * secs) as f64;
    let by_command: BTreeMap<&String, f64> = after
        .iter()
        .map(|(name, n)| (name, per_second(n - before.get(name).copied().unwrap_or(0))))
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    let total: f64 = by_command.values().sum();
    serde_json::json!({
        "instances": INSTANCES,
        "tags_known_per_instance": TAGS,
        "window_s": secs,
        "commands_per_instance_per_s": total,
        "by_command_per_instance_per_s": by_command,
        "keyspace_misses_per_instance_per_s": per_second(misses_after - misses_before),
    })
}

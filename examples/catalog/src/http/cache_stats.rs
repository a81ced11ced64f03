//! `GET /cache/stats`: the cache's statistics as JSON, for people rather than scrapers. Per key
//! pattern: hits per tier, misses, hit ratio, loads, errors and the pattern's TTLs; L1's entries
//! and bytes; Redis's memory and evictions (the reading `/metrics` shows, at most
//! [`READING_MAX_AGE`](crate::redis_info::READING_MAX_AGE) old; `null` without Redis).
//!
//! ```json
//! { "patterns": [ { "pattern": "prod:<id>", "hits": { "l1": 9, "l2": 1 }, "misses": 2,
//!     "hit_ratio": 0.83, "loads": 2, "errors": { "load": 0, "l2": 0, "decode": 0 },
//!     "stale_served": 0, "evictions": 0,
//!     "ttl": { "ttl_seconds": 1800, "l1_ttl_seconds": 1800, "stale_seconds": 0 } } ],
//!   "total": { "hits": { "l1": 9, "l2": 1 }, "misses": 2, "hit_ratio": 0.83, ... },
//!   "l1": { "entries": 12, "bytes": 20480, "capacity_bytes": 268435456 },
//!   "redis": { "up": true, "used_memory_bytes": 1048576, "max_memory_bytes": 0,
//!              "evicted_keys": 0, "ping_seconds": 0.0002 } }
//! ```

use axum::Json;
use axum::extract::State;
use cache_core::{Cache, Counters, TtlPolicy};
use serde_json::{Value, json};

use super::AppState;

/// The handler.
pub async fn cache_stats(State(s): State<AppState>) -> Json<Value> {
    let redis = s.http.redis_reading(&s.repo.cache).await;
    Json(report(&s.repo.cache, redis))
}

/// The JSON report of `cache`, with `redis`'s reading.
pub fn report(cache: &Cache, redis: Option<crate::redis_info::RedisReading>) -> Value {
    let stats = cache.stats();
    let patterns: Vec<Value> = stats
        .patterns
        .iter()
        .map(|p| {
            let mut row = counters(&p.counters);
            row["pattern"] = json!(p.pattern);
            row["ttl"] = cache
                .pattern(&p.pattern)
                .map_or(Value::Null, |pattern| ttls(pattern.policy()));
            row
        })
        .collect();
    json!({
        "patterns": patterns,
        "total": counters(&stats.total),
        "l1": {
            "entries": stats.l1_entries,
            "bytes": stats.l1_weighted_bytes,
            "capacity_bytes": stats.l1_capacity_bytes,
        },
        "redis": redis,
    })
}

fn counters(c: &Counters) -> Value {
    json!({
        "hits": { "l1": c.l1_hits, "l2": c.l2_hits },
        "misses": c.misses,
        "hit_ratio": c.hit_ratio(),
        "loads": c.loads,
        "load_seconds": c.load_time.as_secs_f64(),
        "errors": { "load": c.load_errors, "l2": c.l2_errors, "decode": c.decode_errors },
        "stale_served": c.stale_served,
        "evictions": c.evictions,
        "refresh_aheads": c.refresh_aheads,
        "lease_waits": c.lease_waits,
    })
}

fn ttls(policy: &TtlPolicy) -> Value {
    json!({
        "ttl_seconds": policy.ttl().as_secs_f64(),
        "l1_ttl_seconds": policy.effective_l1_ttl().as_secs_f64(),
        "stale_seconds": policy.stale_window().as_secs_f64(),
    })
}

//! `GET /cache/stats` (the cache's statistics as JSON) and the Redis series of `/metrics`, on
//! both backends, with and without Redis.

mod support;

use serde_json::Value;
use support::TestService;

/// The row of `pattern` in a `/cache/stats` report.
fn row<'a>(stats: &'a Value, pattern: &str) -> &'a Value {
    stats["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .find(|p| p["pattern"] == pattern)
        .unwrap_or_else(|| panic!("no row for {pattern}: {stats}"))
}

on_both_backends! {
#[tokio::test]
async fn cache_stats_count_per_pattern_and_show_ttls_l1_and_redis() {
    let s = TestService::with_redis().await;
    for _ in 0..3 {
        let _ = s.json("/products/7").await;
    }
    assert_eq!(s.get("/products/999999").await.status(), 404);

    let stats = s.json("/cache/stats").await;
    let prod = row(&stats, "prod:<id>");
    // Product 7 loaded once (its response body then cached and hit), 999999 once (not found).
    assert_eq!(prod["loads"], 2, "{stats}");
    assert_eq!(prod["misses"], 2, "{stats}");
    assert_eq!(prod["errors"]["load"], 0, "{stats}");
    assert_eq!(prod["ttl"]["ttl_seconds"], 1800.0, "{stats}");
    assert!(prod["ttl"]["l1_ttl_seconds"].as_f64().expect("l1 ttl") > 0.0, "{stats}");
    assert!(prod["ttl"]["stale_seconds"].is_number(), "{stats}");
    let body = row(&stats, "body:prod:<id>");
    assert_eq!(body["hits"]["l1"], 2, "{stats}");
    assert_eq!(body["hits"]["l2"], 0, "{stats}");
    let ratio = body["hit_ratio"].as_f64().expect("ratio");
    assert!((ratio - 0.5).abs() < 1e-9, "2 hits of 4 lookups: {stats}");

    let total = &stats["total"];
    assert!(total["loads"].as_u64().expect("loads") >= 2, "{stats}");
    assert!(stats["l1"]["entries"].as_u64().expect("entries") >= 2, "{stats}");
    assert!(stats["l1"]["bytes"].as_u64().expect("bytes") > 0, "{stats}");
    assert!(stats["l1"]["capacity_bytes"].as_u64().expect("capacity") > 0);

    let redis = &stats["redis"];
    assert_eq!(redis["up"], true, "{stats}");
    assert!(redis["used_memory_bytes"].as_u64().expect("used") > 0, "{stats}");
    assert!(redis["max_memory_bytes"].is_u64(), "{stats}");
    assert_eq!(redis["evicted_keys"], 0, "{stats}");

    // The same reading in /metrics.
    assert_eq!(s.metric_total("catalog_redis_up").await, 1.0);
    assert!(s.metric_total("catalog_redis_used_memory_bytes").await > 0.0);
    assert!(s.metrics().await.contains("catalog_redis_evicted_keys_total 0"));
    assert!(s.metric_total("catalog_redis_ping_seconds").await > 0.0);
}
}

on_both_backends! {
#[tokio::test]
async fn without_redis_the_report_says_so_and_metrics_have_no_redis_series() {
    let s = TestService::without_redis().await;
    let _ = s.json("/products/7").await;
    let stats = s.json("/cache/stats").await;
    assert!(stats["redis"].is_null(), "{stats}");
    assert_eq!(row(&stats, "prod:<id>")["loads"], 1, "{stats}");
    assert_eq!(row(&stats, "prod:<id>")["hits"]["l2"], 0, "{stats}");
    assert!(!s.metrics().await.contains("catalog_redis_"));
}
}

on_both_backends! {
#[tokio::test]
async fn with_redis_down_the_report_still_answers() {
    let s = TestService::with_redis_down().await;
    let _ = s.json("/products/7").await;
    let stats = s.json("/cache/stats").await;
    assert_eq!(stats["redis"]["up"], false, "{stats}");
    assert_eq!(row(&stats, "prod:<id>")["loads"], 1, "{stats}");
    assert_eq!(s.metric_total("catalog_redis_up").await, 0.0);
}
}

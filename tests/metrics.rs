//! The `metrics` feature: a cache's statistics reach the `metrics` facade (read back here through
//! the Prometheus exporter) from a background task, with the configured prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use support::*;
use tiercache_tests::RedisServer;

/// The value of the sample `series` (`name{labels}`) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("number"))
}

#[tokio::test]
async fn statistics_reach_the_metrics_facade() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the test's recorder");
    let server = RedisServer::start();
    let cache = builder(&server, "shop")
        .metrics_prefix("shop_cache")
        .metrics_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let p = register(&cache, "prod:<id>", policy(60));
    let key = p.key(&[&1u64]).unwrap();
    cache
        .get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "Lamp")) })
        .await
        .unwrap();
    for _ in 0..3 {
        cache.get::<Product>(&key).await.unwrap();
    }
    let _ = cache
        .get_or_load(&p.key(&[&2u64]).unwrap(), || async {
            Err::<Product, _>("db down")
        })
        .await;

    let expected = [
        (
            "shop_cache_hits_total{pattern=\"prod:<id>\",tier=\"l1\"}",
            3.0,
        ),
        (
            "shop_cache_hits_total{pattern=\"prod:<id>\",tier=\"l2\"}",
            0.0,
        ),
        ("shop_cache_misses_total{pattern=\"prod:<id>\"}", 2.0),
        ("shop_cache_loads_total{pattern=\"prod:<id>\"}", 2.0),
        ("shop_cache_load_errors_total{pattern=\"prod:<id>\"}", 1.0),
        ("shop_cache_load_seconds_count{pattern=\"prod:<id>\"}", 2.0),
        (
            "shop_cache_load_seconds_bucket{pattern=\"prod:<id>\",le=\"+Inf\"}",
            2.0,
        ),
        ("shop_cache_l1_entries", 1.0),
        ("shop_cache_loads_in_flight", 0.0),
        ("shop_cache_circuit_state", 0.0),
    ];
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            text = handle.render();
            let text = text.clone();
            async move {
                expected
                    .iter()
                    .all(|(series, value)| sample(&text, series) == Some(*value))
            }
        })
        .await,
        "{text}"
    );
    // Every call that reached Redis is timed: the lookups, the write-back, the marks.
    let l2_calls = sample(&text, "shop_cache_l2_seconds_count").expect("L2 latency");
    assert!(l2_calls >= 3.0, "{text}");
    assert!(text.contains("# HELP shop_cache_hits_total"), "{text}");

    // The circuit opens when Redis goes away, and the gauge says so.
    let mut server = server;
    server.stop();
    for id in 10..20u64 {
        let _ = cache.get::<Product>(&p.key(&[&id]).unwrap()).await;
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            let text = handle.render();
            async move { sample(&text, "shop_cache_circuit_state") == Some(2.0) }
        })
        .await,
        "{}",
        handle.render()
    );
}

#[tokio::test]
async fn a_bad_prefix_is_a_configuration_error() {
    let err = cache_core::Cache::builder()
        .metrics_prefix("no-dashes")
        .build()
        .await
        .expect_err("rejected");
    assert!(err.to_string().contains("metrics_prefix"), "{err}");
}

/// Two caches in one process, each with a recorder of its own (as the catalog gives each
/// instance), never mix their series; `report_metrics` brings a recorder up to date at once
/// (the interval here is an hour), with the lease, refresh-ahead and backplane series.
#[tokio::test]
async fn each_cache_reports_to_its_own_recorder_when_asked() {
    let server = RedisServer::start();
    let mut handles = Vec::new();
    let mut caches = Vec::new();
    for namespace in ["a", "b"] {
        let recorder = std::sync::Arc::new(PrometheusBuilder::new().build_recorder());
        handles.push(recorder.handle());
        let cache = builder(&server, namespace)
            .metrics_prefix("shop")
            .metrics_recorder(recorder)
            .metrics_interval(Duration::from_secs(3600))
            .build()
            .await
            .unwrap();
        caches.push(cache);
    }
    let patterns: Vec<_> = caches
        .iter()
        .map(|c| register(c, "prod:<id>", policy(60)))
        .collect();
    let key = patterns[0].key(&[&1u64]).unwrap();
    caches[0]
        .get_or_load(&key, || async { Ok::<_, Infallible>(product(1, "Lamp")) })
        .await
        .unwrap();
    caches[0].get::<Product>(&key).await.unwrap();
    caches[0].get::<Product>(&key).await.unwrap();
    caches[1]
        .get::<Product>(&patterns[1].key(&[&1u64]).unwrap())
        .await;
    for cache in &caches {
        cache.report_metrics();
    }
    let (a, b) = (handles[0].render(), handles[1].render());
    let l1_hits = "shop_hits_total{pattern=\"prod:<id>\",tier=\"l1\"}";
    assert_eq!(sample(&a, l1_hits), Some(2.0), "{a}");
    assert_eq!(sample(&b, l1_hits), Some(0.0), "{b}");
    assert_eq!(
        sample(&a, "shop_loads_total{pattern=\"prod:<id>\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&b, "shop_misses_total{pattern=\"prod:<id>\"}"),
        Some(1.0)
    );
    for series in [
        "shop_lease_waits_total{pattern=\"prod:<id>\"}",
        "shop_lease_timeouts_total{pattern=\"prod:<id>\"}",
        "shop_refresh_aheads_total{pattern=\"prod:<id>\"}",
        "shop_backplane_resyncs_total",
        "shop_backplane_messages_total{direction=\"received\"}",
    ] {
        assert_eq!(sample(&a, series), Some(0.0), "{series}: {a}");
    }
    let ratio = sample(&a, "shop_hit_ratio").expect("hit ratio");
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{a}");
    // The load wrote through and published nothing here (a fill); the backplane is read.
    assert!(sample(&a, "shop_backplane_subscribed").is_some(), "{a}");
}

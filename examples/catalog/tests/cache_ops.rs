//! Warmup, clear, statistics and degradation: the cache seen through `/metrics` and `/health`.

mod support;

use catalog::ops::{self, ClearScope};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::TestService;

#[tokio::test]
async fn warmup_fills_the_cache_and_reads_are_then_hits() {
    let s = TestService::with_redis().await;
    let repo = &s.server.app.repo;
    let report = ops::warmup(repo, true, false).await.expect("warmup");
    assert_eq!(report.failed, 0);
    assert!(report.loaded["categories"] > 10, "{report}");
    assert_eq!(report.loaded["rankings"], 3);
    assert!(report.loaded["filters"] >= 2);
    assert!(report.loaded["listings"] >= 1);
    assert_eq!(report.loaded["products"], ops::WARMUP_PRODUCTS);

    let patterns = [
        "top:sellers",
        "cat:tree",
        "cat:all",
        "stats:products",
        "filters:<cat>",
        "new:arrivals",
    ];
    let mut loads_before = Vec::new();
    for pattern in patterns {
        loads_before.push(s.loads(pattern).await);
    }
    assert_eq!(loads_before[0], 1.0);
    let hits_before = s
        .metric(
            "catalog_cache_hits_total",
            "pattern=\"top:sellers\",tier=\"l1\"",
        )
        .await;
    for path in [
        "/products/top-sellers",
        "/categories/tree",
        "/categories",
        "/stats",
        "/filters",
        "/products/new-arrivals",
    ] {
        let _ = s.json(path).await;
    }
    for (pattern, before) in patterns.iter().zip(loads_before) {
        assert_eq!(
            s.loads(pattern).await,
            before,
            "{pattern} served from the cache, not reloaded"
        );
    }
    assert_eq!(
        s.metric(
            "catalog_cache_hits_total",
            "pattern=\"top:sellers\",tier=\"l1\""
        )
        .await,
        hits_before + 1.0
    );

    // A second process sharing the Redis: served from L2 without loading.
    let url = s.redis.as_ref().expect("redis").url();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = catalog::Config::for_database(dir.path().join("other.sqlite3"));
    config.products = support::PRODUCTS;
    config.categories = support::CATEGORIES;
    config.redis_url = Some(url);
    config.namespace = "catalog-test".to_owned();
    let other = catalog::build_app(&config).await.expect("app");
    let _ = other.repo.top_sellers().await.expect("top sellers");
    let stats = other.repo.cache.stats();
    let top = stats.pattern("top:sellers").expect("pattern");
    assert_eq!((top.counters.l2_hits, top.counters.loads), (1, 0));
}

#[tokio::test]
async fn clear_commands_invalidate_what_they_say() {
    let s = TestService::with_redis().await;
    let repo = &s.server.app.repo;
    for path in ["/products/7", "/categories/tree", "/products/top-sellers"] {
        let _ = s.json(path).await;
    }
    ops::clear(repo, ClearScope::Product(7))
        .await
        .expect("clear");
    let _ = s.json("/products/7").await;
    let _ = s.json("/categories/tree").await;
    assert_eq!(s.loads("prod:<id>").await, 2.0);
    assert_eq!(s.loads("cat:tree").await, 1.0);
    ops::clear(repo, ClearScope::Categories)
        .await
        .expect("clear");
    let _ = s.json("/categories/tree").await;
    let _ = s.json("/products/top-sellers").await;
    assert_eq!(s.loads("cat:tree").await, 2.0);
    assert_eq!(s.loads("top:sellers").await, 1.0);
    ops::clear(repo, ClearScope::Products).await.expect("clear");
    let _ = s.json("/products/top-sellers").await;
    let _ = s.json("/categories/tree").await;
    assert_eq!(s.loads("top:sellers").await, 2.0);
    assert_eq!(s.loads("cat:tree").await, 2.0);
    ops::clear(repo, ClearScope::All).await.expect("clear");
    let _ = s.json("/categories/tree").await;
    assert_eq!(s.loads("cat:tree").await, 3.0);
    let text = ops::stats_text(repo).await;
    assert!(
        text.contains("cat:tree") && text.contains("\"status\": \"ok\""),
        "{text}"
    );
}

#[tokio::test]
async fn with_redis_stopped_every_request_still_succeeds() {
    let mut s = TestService::with_redis().await;
    let reads = [
        "/products/7",
        "/products/sku/SKU-0000008",
        "/products/9/variants",
        "/products/9/recommendations",
        "/products?category=1&per_page=5",
        "/products/top-sellers",
        "/products/new-arrivals",
        "/categories",
        "/categories/tree",
        "/categories/1",
        "/categories/1/children",
        "/filters?category=1",
        "/search?q=lamp",
        "/autocomplete?prefix=ul",
        "/stats",
    ];
    for path in reads {
        let _ = s.json(path).await;
    }
    s.redis.as_mut().expect("redis").stop();

    let started = std::time::Instant::now();
    for round in 0..3 {
        for path in reads {
            let _ = s.json(path).await;
        }
        let p = s.json("/products/7").await;
        let vid = p["variants"][0]["id"].as_i64().expect("vid");
        let (status, e) = s
            .send(
                Method::POST,
                &format!("/products/7/variants/{vid}/stock"),
                Some(json!({"delta": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{e}");
        assert_eq!(
            s.json("/products/7").await["variants"][0]["stock"],
            p["variants"][0]["stock"].as_i64().expect("stock") + 1
        );
        let mut body = p["product"].clone();
        for field in ["id", "created_at"] {
            body.as_object_mut().expect("object").remove(field);
        }
        body["name"] = json!(format!("Offline Lamp {round}"));
        let (status, e) = s.send(Method::PUT, "/products/7", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{e}");
        assert_eq!(
            s.json("/products/7").await["product"]["name"],
            format!("Offline Lamp {round}")
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let health = s.json("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["mode"]
            .as_str()
            .expect("mode")
            .contains("Redis is unavailable")
    );
    assert!(
        s.metric("catalog_cache_l2_errors_total", "pattern=\"prod:<id>\"")
            .await
            >= 0.0
    );

    s.redis.as_mut().expect("redis").restart();
    let mut up = false;
    for _ in 0..50 {
        let _ = s.json("/products/7").await;
        if s.json("/health").await["status"] == "ok" {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(up, "back to L2 once Redis answers");
    assert_eq!(
        s.json("/products/7").await["product"]["name"],
        "Offline Lamp 2"
    );
}

#[tokio::test]
async fn without_redis_the_service_runs_on_l1_and_says_so() {
    let s = TestService::without_redis().await;
    let health = s.json("/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["cache"]["l2"]["status"], "disabled");
    assert!(
        health["mode"]
            .as_str()
            .expect("mode")
            .contains("no REDIS_URL")
    );
    let _ = s.json("/products/7").await;
    let _ = s.json("/products/7").await;
    assert_eq!(s.loads("prod:<id>").await, 1.0);
    assert_eq!(
        s.metric(
            "catalog_cache_hits_total",
            "pattern=\"prod:<id>\",tier=\"l1\""
        )
        .await,
        1.0
    );
    let (status, _) = s.send(Method::GET, "/products/7", None).await;
    assert_eq!(status, StatusCode::OK);
}

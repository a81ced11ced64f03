//! Warmup, clear, statistics and degradation: the cache seen through `/metrics` and `/health`.

mod support;

use catalog::domain::{ListQuery, Sort};
use catalog::ops::{self, ClearScope};
use catalog::repo::batch::MAX_BATCH;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{TestService, ids};

on_both_backends! {
#[tokio::test]
async fn warmup_fills_the_cache_and_reads_are_then_hits() {
    let s = TestService::with_redis().await;
    let repo = &s.server.app.repo;
    let report = ops::warmup(repo, true, false).await.expect("warmup");
    assert_eq!(report.failed, 0);
    assert!(report.loaded["categories"] > 10, "{report}");
    assert_eq!(report.loaded["rankings"], 3);
    // What every page shows is warmed first and timed apart.
    assert!(
        !report.critical.is_zero() && report.critical <= report.elapsed,
        "{report}"
    );
    assert!(report.to_string().contains("; what every page shows (categories, colors, rankings, stats, filters) warm after "), "{report}");
    assert_eq!(report.loaded["colors"], 1);
    assert!(report.loaded["filters"] >= 2);
    // Every category's first page in each warmed sort; every product of this small catalog
    // (fewer than the depth); search terms and prefixes from the popular names.
    let depth = ops::WarmupDepth::default();
    assert_eq!(report.loaded["products"], support::PRODUCTS as usize);
    // Every category has products here (generated tree): all are listed.
    let listed = report.loaded["categories"] - 2 - roots(&s).await;
    assert_eq!(
        report.loaded["listings"],
        depth.listing_pages.iter().sum::<u32>() as usize * listed,
        "{report}"
    );
    assert!(report.loaded["search"] > 10 && report.loaded["search"] <= depth.search_terms);
    assert!(report.loaded["autocomplete"] > 10);
    // Every entry came from the database (the cache was empty): one load each, but one for
    // each batch of products and one for the pages of each listing (category and sort).
    let products = report.loaded["products"];
    let listings = listed * depth.listing_pages.iter().filter(|&&p| p > 0).count();
    let singles = report.loaded.values().sum::<usize>() - products - report.loaded["listings"];
    assert!(
        report.from_database as usize >= singles + products.div_ceil(MAX_BATCH) + listings,
        "{report}"
    );

    let patterns = [
        "top:sellers",
        "cat:tree",
        "cat:all",
        "stats:products",
        "filters:<cat>",
        "new:arrivals",
        "colors:all",
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
        "/colors",
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
}

on_both_backends! {
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
    let _ = s.json("/colors").await;
    ops::clear(repo, ClearScope::Colours).await.expect("clear");
    let _ = s.json("/colors").await;
    let _ = s.json("/categories/tree").await;
    assert_eq!(s.loads("colors:all").await, 2.0, "colours reloaded");
    assert_eq!(s.loads("cat:tree").await, 2.0, "nothing else");
    ops::clear(repo, ClearScope::All).await.expect("clear");
    let _ = s.json("/categories/tree").await;
    assert_eq!(s.loads("cat:tree").await, 3.0);
    let text = ops::stats_text(repo).await;
    assert!(
        text.contains("cat:tree") && text.contains("\"status\": \"ok\""),
        "{text}"
    );
}
}

on_both_backends! {
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
        let (status, e) = s.change_stock(7, vid, 1).await;
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
    // The failed Redis calls were counted (before the circuit opened and skipped the rest):
    // here the invalidations of the writes, which belong to no key pattern.
    let l2_errors = s.metric_total("catalog_cache_l2_errors_total").await
        + s.metric_total("catalog_cache_l2_errors_unattributed_total")
            .await;
    assert!(l2_errors > 0.0, "no L2 error counted while Redis was down");

    assert!(s.restart_redis().await, "back to L2 once Redis answers");
    assert_eq!(
        s.json("/products/7").await["product"]["name"],
        "Offline Lamp 2"
    );
}
}

on_both_backends! {
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
    // The second read is a hit of the cached response body (`http/bodies.rs`).
    assert_eq!(
        s.metric(
            "catalog_cache_hits_total",
            "pattern=\"body:prod:<id>\",tier=\"l1\""
        )
        .await,
        1.0
    );
    let (status, _) = s.send(Method::GET, "/products/7", None).await;
    assert_eq!(status, StatusCode::OK);
}
}

on_both_backends! {
#[tokio::test]
async fn with_redis_stopped_product_and_category_writes_succeed_and_show() {
    let mut s = TestService::with_redis().await;
    let cat = s.json("/products/1").await["product"]["category_id"]
        .as_i64()
        .expect("cat");
    let root = s.json("/categories/tree").await[0]["id"]
        .as_i64()
        .expect("root");
    let listing = format!("/products?category={cat}&sort=price_desc&per_page=5");
    let reads = [
        listing.clone(),
        "/products/6000".to_owned(),
        "/products/new-arrivals".to_owned(),
        "/search?q=ocelot".to_owned(),
        "/categories".to_owned(),
        "/categories/2000".to_owned(),
        format!("/categories/{root}/children"),
        "/stats".to_owned(),
    ];
    for path in &reads {
        let _ = s.get(path).await;
    }
    s.redis.as_mut().expect("redis").stop();

    let product = |sku: &str| {
        json!({"sku": sku, "name": "Ocelot Lamp", "brand": "Acme", "price": 800000.0,
               "category_id": cat, "variants": [{"colour": "red", "size": "S", "stock": 1}]})
    };
    let (status, e) = s
        .send(Method::POST, "/products/6000", Some(product("OCELOT-1")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let (status, auto) = s
        .send(Method::POST, "/products", Some(product("OCELOT-2")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{auto}");
    let auto_id = auto["product"]["id"].as_i64().expect("id");
    assert_eq!(s.json("/products/6000").await["product"]["sku"], "OCELOT-1");
    let mut found = ids(&s.json("/search?q=ocelot").await);
    found.sort_unstable();
    let mut expected = vec![auto_id, 6000];
    expected.sort_unstable();
    assert_eq!(found, expected);
    assert!(ids(&s.json(&listing).await).contains(&6000));
    assert!(ids(&s.json("/products/new-arrivals").await).contains(&auto_id));
    let (status, e) = s.send(Method::DELETE, "/products/6000", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    assert_eq!(
        s.get("/products/6000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(ids(&s.json("/search?q=ocelot").await), vec![auto_id]);

    let (status, e) = s.create_category(2000, "Offline Corner", root).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(s.json("/categories/2000").await["name"], "Offline Corner");
    assert!(ids(&s.json(&format!("/categories/{root}/children")).await).contains(&2000));
    let (status, e) = s
        .send(
            Method::PUT,
            "/categories/2000",
            Some(json!({"name": "Offline Nook", "parent_id": root})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(s.json("/categories/2000").await["name"], "Offline Nook");
    let (status, e) = s.send(Method::DELETE, "/categories/2000", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    assert_eq!(
        s.get("/categories/2000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!ids(&s.json("/categories").await).contains(&2000));
    assert_eq!(s.json("/health").await["status"], "degraded");
}
}

on_both_backends! {
#[tokio::test]
async fn starting_with_redis_down_the_service_runs_and_says_degraded() {
    let mut s = TestService::with_redis_down().await;
    let health = s.json("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_ne!(health["cache"]["l2"]["status"], "up", "{health}");
    assert!(
        health["mode"]
            .as_str()
            .expect("mode")
            .contains("Redis is unavailable"),
        "{health}"
    );
    for path in [
        "/products/7",
        "/categories/tree",
        "/search?q=lamp",
        "/stats",
    ] {
        let _ = s.json(path).await;
    }
    let p = s.json("/products/7").await;
    let vid = p["variants"][0]["id"].as_i64().expect("vid");
    let (status, e) = s.change_stock(7, vid, 1).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(
        s.json("/products/7").await["total_stock"],
        p["total_stock"].as_i64().expect("stock") + 1
    );

    assert!(s.restart_redis().await, "uses Redis once it answers");
}
}

on_both_backends! {
#[tokio::test]
async fn the_namespace_carries_the_cache_schema_version() {
    let s = TestService::with_redis().await;
    let expected = format!("catalog-test.v{}", catalog::CACHE_SCHEMA_VERSION);
    assert_eq!(s.json("/health").await["cache"]["namespace"], expected);
    let _ = s.json("/products/7").await;
    let _ = s.json("/categories/tree").await;
    let mut conn = s
        .redis
        .as_ref()
        .expect("redis")
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.contains(&format!("{expected}:")),
            "{key} is outside the versioned namespace {expected}"
        );
    }
}
}

/// Root categories of the test catalog (warmup loads their children lists as categories).
async fn roots(s: &TestService) -> usize {
    let all = s.json("/categories").await;
    all.as_array()
        .expect("categories")
        .iter()
        .filter(|c| c["parent_id"].is_null())
        .count()
}

on_both_backends! {
// Warmup keys listings, searches and prefixes as requests key them: right after it, those
// requests are hits, not loads; a second warmup finds everything cached and says so.
#[tokio::test]
async fn warmup_keys_entries_as_requests_do() {
    let s = TestService::with_redis().await;
    let repo = &s.server.app.repo;
    let report = ops::warmup(repo, false, false).await.expect("warmup");
    assert_eq!(report.failed, 0, "{report}");
    let popular = s.json("/products/popular").await;
    let popular = popular.as_array().expect("list");
    let names: Vec<String> = popular
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    let top = popular[0]["id"].as_i64().expect("id");
    let (terms, prefixes) = ops::terms_and_prefixes(&names);
    let category = s.json("/categories").await[0]["id"].as_i64().expect("id");
    let before = listing_search_loads(&s).await;
    for path in [
        format!("/products?category={category}&sort=popular&page=1"),
        format!("/products?category={category}&sort=price_asc&page=1"),
        format!("/products?category={category}&sort=newest&page=1"),
        format!("/products?category={category}&sort=top_selling&page=1"),
        format!("/products?category={category}&sort=popular&page=2"),
        format!("/products?category={category}&sort=popular&page=3"),
        format!("/products?category={category}&sort=price_asc&page=2"),
        format!("/products?category={category}&sort=newest&page=5"),
        format!("/products?category={category}&sort=top_selling&page=4"),
        format!("/search?q={}", terms[0].replace(' ', "+")),
        format!("/search?q={}", terms[1].replace(' ', "+")),
        format!("/autocomplete?prefix={}", prefixes[0]),
        format!("/autocomplete?prefix={}", prefixes[1]),
        format!("/products/{top}"),
        format!("/products/{top}/recommendations"),
        "/categories".to_owned(),
        "/categories/tree".to_owned(),
    ] {
        // The response body itself was warmed (the route's own key), not only the value behind
        // it: the first request is a hit of the body (this process's L1, warmup ran in it).
        let response = s.get(&path).await;
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let x_cache = response.headers()["x-cache"].to_str().expect("ascii").to_owned();
        assert!(x_cache.starts_with("hit"), "{path}: X-Cache {x_cache}");
    }
    assert_eq!(
        listing_search_loads(&s).await,
        before,
        "served from what warmup cached"
    );

    let again = ops::warmup(repo, false, false).await.expect("warmup");
    assert_eq!(again.from_database, 0, "{again}");
    assert!(
        again.already_cached as usize >= again.loaded.values().sum::<usize>(),
        "{again}"
    );
    assert!(
        again.to_string().contains(": 0 loads from the database"),
        "{again}"
    );
}
}

async fn listing_search_loads(s: &TestService) -> f64 {
    s.loads("prods:cat:<cat>:<query:hash>").await
        + s.loads("search:<query:hash>").await
        + s.loads("ac:<prefix>").await
}

on_both_backends! {
// Warmup reads all the pages of a listing by one query: each is the page that its own request
// reads, also past the end (empty) and from a later first page.
#[tokio::test]
async fn listing_pages_read_at_once_are_the_pages_read_one_by_one() {
    let s = TestService::without_redis().await;
    let repo = &s.server.app.repo;
    let category = s.json("/categories").await[0]["id"].as_i64().expect("id");
    let sorts = [Sort::Popular, Sort::PriceAsc, Sort::Newest, Sort::TopSelling, Sort::Name];
    for (category, sort) in [None, Some(category)]
        .into_iter()
        .flat_map(|c| sorts.map(|s| (c, s)))
    {
        let first = ListQuery {
            category,
            sort,
            per_page: Some(25),
            ..ListQuery::default()
        };
        let total = repo.list_products(&first).await.expect("page").total;
        assert!(total > 25, "{category:?} has more than one page");
        // Every page, and one past the end.
        let pages = u32::try_from(total.div_ceil(25)).expect("pages") + 1;
        let at_once = repo.listing_pages(&first, pages).await.expect("pages");
        assert_eq!(at_once.len(), pages as usize);
        assert!(at_once[pages as usize - 1].items.is_empty());
        for (i, page) in (1..).zip(&at_once) {
            let one = ListQuery {
                page: Some(i),
                ..first.clone()
            };
            let alone = repo.list_products(&one).await.expect("page");
            assert_eq!(page, &alone, "{category:?} by {sort:?}, page {i}");
        }
        let later = ListQuery {
            page: Some(2),
            ..first.clone()
        };
        assert_eq!(
            repo.listing_pages(&later, 2).await.expect("pages"),
            at_once[1..3]
        );
    }
}
}

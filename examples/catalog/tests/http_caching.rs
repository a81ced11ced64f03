//! HTTP caching of the read endpoints (cached response bytes): `ETag`, `304 Not Modified`,
//! `Cache-Control`, `X-Cache`, compression; and the batch endpoint `GET /products?ids=`.

mod support;

use catalog::Server;
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, ETAG, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestService;

/// GET with optional `If-None-Match`: (status, ETag, X-Cache, Cache-Control, body bytes).
async fn get(
    s: &TestService,
    base: &str,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, String, String, String, Vec<u8>) {
    let mut req = s.client.get(format!("{base}{path}"));
    if let Some(tag) = etag {
        req = req.header(IF_NONE_MATCH, tag);
    }
    let r = req.send().await.expect("GET");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default()
    };
    let (etag, x_cache, cache_control) = (
        header(ETAG.as_str()),
        header("x-cache"),
        header(CACHE_CONTROL.as_str()),
    );
    let status = r.status();
    let body = r.bytes().await.expect("body").to_vec();
    (status, etag, x_cache, cache_control, body)
}

#[tokio::test]
async fn etag_is_stable_across_hits_and_instances_304_on_match_and_changes_after_a_write() {
    let s = TestService::with_redis().await;
    let base = s.server.url();
    let (status, etag, x_cache, _, miss_body) = get(&s, &base, "/products/7", None).await;
    assert_eq!((status, x_cache.as_str()), (StatusCode::OK, "miss"));
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

    let (status, etag_hit, x_cache, _, hit_body) = get(&s, &base, "/products/7", None).await;
    assert_eq!((status, x_cache.as_str()), (StatusCode::OK, "hit-l1"));
    assert_eq!(etag_hit, etag);
    assert_eq!(hit_body, miss_body, "a hit sends the bytes of the miss");

    let (status, etag_304, x_cache, cache_control, body) =
        get(&s, &base, "/products/7", Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!((etag_304, x_cache.as_str()), (etag.clone(), "hit-l1"));
    assert!(cache_control.starts_with("max-age="), "{cache_control}");
    assert!(body.is_empty());
    // A stale tag is answered in full.
    let (status, ..) = get(&s, &base, "/products/7", Some("\"0000\"")).await;
    assert_eq!(status, StatusCode::OK);

    // A second instance on the same Redis: an L2 hit, the same tag, a 304.
    let url = s.redis.as_ref().expect("redis").url();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = catalog::Config::for_database(dir.path().join("other.sqlite3"));
    config.products = support::PRODUCTS;
    config.categories = support::CATEGORIES;
    config.redis_url = Some(url);
    config.namespace = "catalog-test".to_owned();
    let app = catalog::build_app(&config).await.expect("app");
    let other = Server::serve(app, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serves");
    let (status, etag_other, x_cache, _, body) = get(&s, &other.url(), "/products/7", None).await;
    assert_eq!((status, x_cache.as_str()), (StatusCode::OK, "hit-l2"));
    assert_eq!(etag_other, etag);
    assert_eq!(body, miss_body);
    let (status, _, x_cache, ..) = get(&s, &other.url(), "/products/7", Some(&etag)).await;
    assert_eq!(
        (status, x_cache.as_str()),
        (StatusCode::NOT_MODIFIED, "hit-l1")
    );

    // A write changes the product: a new body, a new tag; the old one no longer matches.
    let detail: Value = serde_json::from_slice(&miss_body).expect("json");
    let variant = detail["variants"][0]["id"].as_i64().expect("a variant");
    let (status, _) = s.change_stock(7, variant, 5).await;
    assert_eq!(status, StatusCode::OK);
    let (status, etag_new, x_cache, _, body) = get(&s, &base, "/products/7", Some(&etag)).await;
    assert_eq!((status, x_cache.as_str()), (StatusCode::OK, "miss"));
    assert_ne!(etag_new, etag);
    let after: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        after["total_stock"].as_i64(),
        detail["total_stock"].as_i64().map(|t| t + 5)
    );
    other.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn cached_bytes_equal_the_uncached_json_and_every_read_endpoint_is_cached() {
    let s = TestService::without_redis().await;
    let base = s.server.url();
    let repo = &s.server.app.repo;
    let listing_query = catalog::domain::ListQuery {
        page: Some(1),
        ..Default::default()
    };
    let search_query: catalog::domain::SearchQuery =
        serde_json::from_value(json!({ "q": "lamp" })).expect("query");
    let expected: Vec<(&str, Vec<u8>)> = vec![
        (
            "/products/7",
            serde_json::to_vec(&repo.product(7).await.expect("read")).expect("json"),
        ),
        (
            "/products?page=1",
            serde_json::to_vec(&repo.list_products(&listing_query).await.expect("read"))
                .expect("json"),
        ),
        (
            "/search?q=lamp",
            serde_json::to_vec(&repo.search(&search_query).await.expect("read")).expect("json"),
        ),
        (
            "/autocomplete?prefix=la",
            serde_json::to_vec(&repo.autocomplete("la").await.expect("read")).expect("json"),
        ),
        (
            "/products/7/recommendations",
            serde_json::to_vec(&repo.recommendations(7).await.expect("read")).expect("json"),
        ),
        (
            "/categories",
            serde_json::to_vec(&repo.categories().await.expect("read")).expect("json"),
        ),
        (
            "/categories/tree",
            serde_json::to_vec(&repo.category_tree().await.expect("read")).expect("json"),
        ),
    ];
    for (path, json) in expected {
        let (status, etag, x_cache, _, miss) = get(&s, &base, path, None).await;
        assert_eq!(
            (status, x_cache.as_str()),
            (StatusCode::OK, "miss"),
            "{path}"
        );
        assert_eq!(miss, json, "{path}: the body is the value's JSON");
        let (_, etag_hit, x_cache, _, hit) = get(&s, &base, path, None).await;
        assert_eq!(x_cache, "hit-l1", "{path}");
        assert_eq!(
            (etag_hit, hit),
            (etag, json),
            "{path}: byte-identical on a hit"
        );
    }
    // Not found stays the JSON error contract.
    let (status, body) = s.send(Method::GET, "/products/99999999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

#[tokio::test]
async fn cache_control_is_bounded_by_the_flag() {
    let s = TestService::with_limits(catalog::Limits {
        http_max_age: std::time::Duration::from_secs(5),
        ..catalog::Limits::DEFAULT
    })
    .await;
    let base = s.server.url();
    for path in ["/products/7", "/categories", "/products/7"] {
        let (_, _, _, cache_control, _) = get(&s, &base, path, None).await;
        let secs: u64 = cache_control
            .strip_prefix("max-age=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{path}: {cache_control}"));
        assert!((4..=5).contains(&secs), "{path}: {cache_control}");
    }
}

#[tokio::test]
async fn compression_follows_accept_encoding() {
    let s = TestService::without_redis().await;
    let url = s.url("/products?per_page=50");
    let plain = s.client.get(&url).send().await.expect("GET");
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let plain = plain.bytes().await.expect("body");
    for (encoding, magic) in [("gzip", &[0x1f_u8, 0x8b][..]), ("br", &[][..])] {
        let r = s
            .client
            .get(&url)
            .header(ACCEPT_ENCODING, encoding)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_ENCODING], encoding);
        assert_eq!(r.headers()["x-cache"], "hit-l1");
        let body = r.bytes().await.expect("body");
        assert!(body.starts_with(magic));
        assert!(
            body.len() * 2 < plain.len(),
            "{encoding}: {} of {} bytes",
            body.len(),
            plain.len()
        );
    }
}

/// `cmdstat_<name>:calls=N` of the server's `INFO commandstats` (0 if never called).
async fn redis_calls(s: &TestService, command: &str) -> u64 {
    let mut conn = s.redis.as_ref().expect("redis").connection().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("count"))
}

#[tokio::test]
async fn the_batch_endpoint_reads_with_one_mget_and_one_database_call() {
    let s = TestService::with_redis().await;
    // Two cached already (one in L1 of this instance), the rest cold.
    let _ = s.json("/products/3").await;
    let _ = s.json("/products/5").await;
    let loads = s.loads("prod:<id>").await;
    let mget = redis_calls(&s, "mget").await;

    let ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99_999_999];
    let path = format!("/products?ids={}", ids.map(|i| i.to_string()).join(","));
    let batch = s.json(&path).await;
    let items: Vec<i64> = batch["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["product"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(items, (1..=10).collect::<Vec<_>>(), "in the order asked");
    assert_eq!(batch["missing"], json!([99_999_999]));
    assert_eq!(
        s.loads("prod:<id>").await,
        loads + 1.0,
        "one database call for the misses"
    );
    // (The write-back of the loaded values runs its own script, whose GETs count too.)
    assert_eq!(redis_calls(&s, "mget").await, mget + 1, "one MGET");
    // Now all cached: no load, and the L1 answers without Redis (the absent id too).
    let again = s.json(&path).await;
    assert_eq!(again, batch);
    assert_eq!(s.loads("prod:<id>").await, loads + 1.0);
    assert_eq!(
        redis_calls(&s, "mget").await,
        mget + 1,
        "no MGET: all in L1"
    );
    // The batch shares the single read's entries: the same product, not loaded again.
    let single = s.json("/products/4").await;
    assert_eq!(batch["items"][3], single);
    assert_eq!(s.loads("prod:<id>").await, loads + 1.0);
}

#[tokio::test]
async fn the_batch_endpoint_refuses_bad_ids_with_the_json_error_contract() {
    let s = TestService::without_redis().await;
    let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let (status, body) = s
        .send(
            Method::GET,
            &format!("/products?ids={}", hundred.join(",")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(100));
    let too_many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    for path in [
        format!("/products?ids={}", too_many.join(",")),
        "/products?ids=".to_owned(),
        "/products?ids=1,x".to_owned(),
        "/products?ids=-3".to_owned(),
        "/products?ids=1&page=2".to_owned(),
        "/products?ids=1&ids=2".to_owned(),
    ] {
        let (status, body) = s.send(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
}

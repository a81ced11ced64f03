//! Every endpoint answers, with the right shape; bad input gets a 4xx JSON error and writes
//! nothing.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{CATEGORIES, PRODUCTS, TestService, ids};

on_both_backends! {
#[tokio::test]
async fn every_read_endpoint_answers() {
    let s = TestService::with_redis().await;

    let categories = s.json("/categories").await;
    let all = categories.as_array().expect("categories");
    assert!(all.len() >= CATEGORIES as usize, "{} categories", all.len());
    let tree = s.json("/categories/tree").await;
    let root = &tree[0];
    assert!(
        !root["children"][0]["children"]
            .as_array()
            .expect("leaves")
            .is_empty()
    );
    let root_id = root["id"].as_i64().expect("id");
    assert_eq!(s.json(&format!("/categories/{root_id}")).await["depth"], 0);
    let children = s.json(&format!("/categories/{root_id}/children")).await;
    assert!(
        children
            .as_array()
            .expect("children")
            .iter()
            .all(|c| c["parent_id"] == root_id)
    );

    let p = s.json("/products/7").await;
    assert_eq!(p["product"]["id"], 7);
    assert_eq!(p["product"]["sku"], "SKU-0000007");
    assert!(!p["variants"].as_array().expect("variants").is_empty());
    assert_eq!(s.json("/products/sku/SKU-0000007").await, p);
    assert_eq!(s.json("/products/7/variants").await, p["variants"]);
    let recs = s.json("/products/7/recommendations").await;
    assert!(
        recs.as_array()
            .expect("recs")
            .iter()
            .all(|r| r["category_id"] == p["product"]["category_id"])
    );

    let page = s.json("/products?per_page=5&sort=price_asc").await;
    assert_eq!(page["total"], PRODUCTS);
    let prices: Vec<f64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["price"].as_f64().expect("price"))
        .collect();
    assert_eq!(prices.len(), 5);
    assert!(prices.windows(2).all(|w| w[0] <= w[1]));
    let in_root = s
        .json(&format!(
            "/products?category={root_id}&brand=Acme&min_price=1&max_price=500&page=1&per_page=10"
        ))
        .await;
    assert!(
        in_root["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["brand"] == "Acme")
    );

    let top = s.json("/products/top-sellers").await;
    let sales: Vec<i64> = top
        .as_array()
        .expect("top")
        .iter()
        .map(|i| i["sales"].as_i64().expect("sales"))
        .collect();
    assert!(sales.windows(2).all(|w| w[0] >= w[1]) && !sales.is_empty());
    let newest = s.json("/products/new-arrivals").await;
    assert_eq!(newest.as_array().expect("new").len(), 20);
    assert_eq!(
        s.json("/products/popular")
            .await
            .as_array()
            .expect("popular")
            .len(),
        20
    );

    let filters = s.json(&format!("/filters?category={root_id}")).await;
    assert!(filters["total"].as_u64().expect("total") > 0);
    assert!(!filters["brands"].as_array().expect("brands").is_empty());
    assert!(!filters["colours"].as_array().expect("colours").is_empty());
    assert_eq!(s.json("/filters").await["total"], PRODUCTS);

    let name = p["product"]["name"].as_str().expect("name");
    let found = s
        .json(&format!("/search?q={}", name.replace(' ', "+")))
        .await;
    assert!(ids(&found).contains(&7), "search {name}: {found}");
    let in_cat = s
        .json(&format!("/search?q=lamp&category={root_id}&page=1"))
        .await;
    assert!(in_cat["total"].as_u64().is_some());
    let prefix = &name[..4];
    let suggestions = s.json(&format!("/autocomplete?prefix={prefix}")).await;
    assert!(
        suggestions
            .as_array()
            .expect("suggestions")
            .iter()
            .all(|n| n.as_str().expect("name").starts_with(prefix))
    );

    let stats = s.json("/stats").await;
    assert_eq!(stats["products"]["products"], PRODUCTS);
    assert_eq!(stats["categories"]["max_depth"], 2);

    let health = s.json("/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["status"], "up");
    assert_eq!(health["cache"]["l2"]["status"], "up");
    assert!(health["cache"]["l2"]["redis_version"].is_string());

    let metrics = s.metrics().await;
    assert!(
        metrics.contains("catalog_cache_loads_total{pattern=\"prod:<id>\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "catalog_http_requests_total{method=\"GET\",route=\"/products/{id}\",status=\"200\"}"
    ));
    assert!(metrics.contains("catalog_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("catalog_cache_load_seconds_bucket{pattern=\"cat:tree\""));
}
}

on_both_backends! {
#[tokio::test]
async fn missing_things_are_404() {
    let s = TestService::without_redis().await;
    for path in [
        "/products/999999",
        "/products/sku/NOPE",
        "/products/999999/variants",
        "/products/999999/recommendations",
        "/categories/999999",
        "/categories/999999/children",
        "/filters?category=999999",
        "/products?category=999999",
        "/no/such/route",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = r.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}
}

fn product_body() -> serde_json::Value {
    json!({
        "sku": "NEW-1", "name": "Test Lamp", "description": "a lamp", "brand": "Acme",
        "price": 10.5, "category_id": 10, "attributes": {"material": "wood"},
        "variants": [{"colour": "red", "size": "M", "stock": 3}]
    })
}

on_both_backends! {
#[tokio::test]
async fn bad_input_is_a_4xx_json_error_and_writes_nothing() {
    let s = TestService::without_redis().await;
    let long = "x".repeat(500);
    let bad_reads = [
        ("/products/abc", "malformed id"),
        ("/products/-3", "positive"),
        ("/products/7/variants/x/stock", "route"),
        ("/categories/1.5", "malformed id"),
        ("/products?per_page=1000", "per_page"),
        ("/products?page=0", "page"),
        ("/products?min_price=-1", "min_price"),
        ("/products?min_price=10&max_price=5", "max_price"),
        ("/products?sort=sideways", "sort"),
        ("/products?colour=red", "unknown field"),
        ("/products?category=abc", "category"),
        ("/search?q=", "empty"),
        ("/search", "q"),
        ("/autocomplete?prefix=", "empty"),
    ];
    for (path, expect) in bad_reads {
        let r = s.get(path).await;
        let status = r.status();
        assert!(status.is_client_error(), "{path}: {status}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            continue;
        }
        let body: serde_json::Value = r.json().await.expect("json error");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(expect), "{path}: {message}");
    }
    let (status, body) = s
        .send(Method::GET, &format!("/search?q={long}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("longer than")
    );

    let before = database_contents(&s).await;
    let mut unknown = product_body();
    unknown["colour"] = json!("red");
    let mut negative = product_body();
    negative["price"] = json!(-1.0);
    let mut bad_category = product_body();
    bad_category["category_id"] = json!(999_999);
    let mut bad_variant = product_body();
    bad_variant["variants"] = json!([{"colour": "red", "size": "M", "stock": -1}]);
    let mut duplicate_sku = product_body();
    duplicate_sku["sku"] = json!("SKU-0000001");
    let mut long_name = product_body();
    long_name["name"] = json!(long);
    for (body, status, expect) in [
        (
            unknown,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `colour`",
        ),
        (
            negative,
            StatusCode::BAD_REQUEST,
            "price must be a non-negative",
        ),
        (
            bad_category,
            StatusCode::UNPROCESSABLE_ENTITY,
            "category 999999 does not exist",
        ),
        (
            bad_variant,
            StatusCode::BAD_REQUEST,
            "stock must not be negative",
        ),
        (duplicate_sku, StatusCode::CONFLICT, "UNIQUE"),
        (long_name, StatusCode::BAD_REQUEST, "name is longer"),
    ] {
        let (got, error) = s.send(Method::POST, "/products", Some(body)).await;
        assert_eq!(got, status, "{error}");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains(expect), "{message}");
    }
    let r = s
        .client
        .post(s.url("/products"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .client
        .put(s.url("/products/7"))
        .body("{}")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = s
        .send(Method::PUT, "/products/999999", Some(product_body()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .send(
            Method::POST,
            "/categories",
            Some(json!({"name": "X", "parent_id": 999_999})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .send(
            Method::POST,
            "/categories",
            Some(json!({"name": "X", "slug": "Not A Slug"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, e) = s.send(Method::DELETE, "/categories/1", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let (status, e) = s
        .send(
            Method::PUT,
            "/categories/1",
            Some(json!({"name": "Loop", "parent_id": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // Stock: refusing to go below zero writes neither the stock nor a movement.
    let p = s.json("/products/7").await;
    let v = &p["variants"][0];
    let (vid, stock) = (
        v["id"].as_i64().expect("vid"),
        v["stock"].as_i64().expect("stock"),
    );
    let path = format!("/products/7/variants/{vid}/stock");
    let (status, e) = s
        .send(Method::POST, &path, Some(json!({"delta": -(stock + 1)})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .contains("cannot reduce")
    );
    let (status, _) = s.send(Method::POST, &path, Some(json!({"delta": 0}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .send(Method::POST, &path, Some(json!({"delta": 1, "by": "me"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s
        .send(
            Method::POST,
            "/products/8/variants/1/stock",
            Some(json!({"delta": 1})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "variant 1 belongs to product 1"
    );
    assert_eq!(s.json("/products/7").await, p);
    // Read from the database itself, not through the cache (a cached answer would hide a write).
    assert_eq!(database_contents(&s).await, before, "nothing was written");
}
}

/// Every row of the catalog's tables, read from the database (bypassing the cache).
async fn database_contents(s: &TestService) -> Vec<String> {
    let db = match &s.server.app.repo.db {
        catalog::db::Db::Sqlite(db) => db,
        catalog::db::Db::Postgres(db) => {
            let c = db.client().await.expect("connection");
            let mut out = Vec::new();
            for table in ["products", "variants", "categories", "stock_movements"] {
                let sql = format!("SELECT row_to_json(t)::TEXT FROM {table} t ORDER BY id");
                for row in c.query(&sql, &[]).await.expect("rows") {
                    out.push(row.get::<_, String>(0));
                }
                out.push("--".to_owned());
            }
            return out;
        }
    };
    db.read(|c| {
        let mut out = Vec::new();
        for sql in [
            "SELECT id, sku, name, description, brand, price, category_id, attributes,
                        created_at, popularity, sales FROM products ORDER BY id",
            "SELECT id, product_id, colour, size, stock, NULL, NULL, NULL, NULL, NULL, NULL
                 FROM variants ORDER BY id",
            "SELECT id, parent_id, name, slug, depth, NULL, NULL, NULL, NULL, NULL, NULL
                 FROM categories ORDER BY id",
            "SELECT id, variant_id, delta, reason, created_at, NULL, NULL, NULL, NULL, NULL, NULL
                 FROM stock_movements ORDER BY id",
        ] {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                let mut row = String::new();
                for i in 0..11 {
                    let v: rusqlite::types::Value = r.get(i)?;
                    row.push_str(&format!("{v:?}|"));
                }
                Ok(row)
            })?;
            for row in rows {
                out.push(row?);
            }
            out.push("--".to_owned());
        }
        Ok(out)
    })
    .await
    .expect("database")
}

on_both_backends! {
#[tokio::test]
async fn numbers_are_bounded_so_sums_and_stock_changes_cannot_overflow() {
    let s = TestService::without_redis().await;
    let mut body = product_body();
    body["sku"] = json!("BIG-1");
    for (field, value, expect) in [
        ("sales", json!(i64::MAX), "at most"),
        ("popularity", json!(10_000_000_000_000_i64), "at most"),
    ] {
        let mut b = body.clone();
        b[field] = value;
        let (status, e) = s.send(Method::POST, "/products", Some(b)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .expect("message")
                .contains(expect),
            "{e}"
        );
    }
    let mut b = body.clone();
    b["variants"] = json!([{"colour": "red", "size": "M", "stock": 2_000_000_000_i64}]);
    let (status, e) = s.send(Method::POST, "/products", Some(b)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .contains("stock must be at most")
    );

    // The largest values accepted: statistics still add up.
    let mut b = body.clone();
    b["sales"] = json!(catalog::domain::MAX_COUNTER);
    b["popularity"] = json!(catalog::domain::MAX_COUNTER);
    b["variants"] = json!([{"colour": "red", "size": "M", "stock": catalog::domain::MAX_STOCK}]);
    let (status, created) = s.send(Method::POST, "/products", Some(b)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["product"]["id"].as_i64().expect("id");
    let vid = created["variants"][0]["id"].as_i64().expect("vid");
    let stats = s.json("/stats").await;
    assert!(
        stats["products"]["total_sales"].as_i64().expect("sales") >= catalog::domain::MAX_COUNTER
    );

    // Stock cannot grow past the bound (nor overflow), and the refusal writes nothing.
    let path = format!("/products/{id}/variants/{vid}/stock");
    let (status, e) = s.send(Method::POST, &path, Some(json!({"delta": 1}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .contains("would exceed")
    );
    assert_eq!(
        s.json(&format!("/products/{id}")).await["total_stock"],
        catalog::domain::MAX_STOCK
    );
    let (status, e) = s
        .send(Method::POST, &path, Some(json!({"delta": -5})))
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["stock_after"], catalog::domain::MAX_STOCK - 5);
}
}

on_both_backends! {
#[tokio::test]
async fn colours_and_attributes_answer_and_agree_with_the_other_endpoints() {
    let s = TestService::with_redis().await;
    let colours = s.json("/colors").await;
    let colours = colours.as_array().expect("colours");
    assert!(!colours.is_empty());
    let filters = s.json("/filters").await;
    // The whole catalog's colour facet counts products per colour too.
    for c in colours {
        let facet = filters["colours"]
            .as_array()
            .expect("facet")
            .iter()
            .find(|f| f["value"] == c["colour"])
            .unwrap_or_else(|| panic!("{c} not in the filters"));
        assert_eq!(facet["count"], c["products"], "{c}");
        assert!(c["variants"].as_u64() >= c["products"].as_u64());
    }
    let products: Vec<u64> = colours
        .iter()
        .map(|c| c["products"].as_u64().expect("n"))
        .collect();
    assert!(
        products.windows(2).all(|w| w[0] >= w[1]),
        "most common first"
    );

    let root = s.json("/categories/tree").await[0]["id"]
        .as_i64()
        .expect("root");
    let total = s.json(&format!("/products?category={root}")).await["total"].clone();
    let attrs = s.json(&format!("/categories/{root}/attributes")).await;
    let material = attrs
        .as_array()
        .expect("attributes")
        .iter()
        .find(|a| a["name"] == "material")
        .expect("material")
        .clone();
    assert_eq!(material["products"], total, "every product has a material");
    let values = material["values"].as_array().expect("values");
    assert!(!values.is_empty() && values.len() <= catalog::domain::MAX_ATTRIBUTE_VALUES);
    let weight = attrs
        .as_array()
        .expect("attributes")
        .iter()
        .find(|a| a["name"] == "weight_g")
        .expect("weight");
    assert_eq!(
        weight["values"].as_array().expect("values").len(),
        catalog::domain::MAX_ATTRIBUTE_VALUES,
        "values are bounded"
    );
    assert!(weight["distinct_values"].as_u64().expect("n") > 20);

    let stats = s.json("/stats/attributes").await;
    let material = stats
        .as_array()
        .expect("stats")
        .iter()
        .find(|a| a["name"] == "material")
        .expect("material");
    assert_eq!(material["products"], PRODUCTS);

    assert_eq!(
        s.get("/categories/999999/attributes").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/categories/x/attributes").await.status(),
        StatusCode::BAD_REQUEST
    );
}
}

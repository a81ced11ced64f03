//! A write is visible to the next read of every endpoint that shows what it changed, while the
//! reads before it were served from the cache (Redis as L2).

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestService, ids};

/// A leaf category other than `not`.
async fn other_leaf(s: &TestService, not: i64) -> (i64, i64) {
    let all = s.json("/categories").await;
    let leaf = all
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| {
            c["depth"] == 2
                && c["id"] != not
                && ancestors_root(&all, c["id"].as_i64().expect("id")) != ancestors_root(&all, not)
        })
        .expect("another leaf");
    let id = leaf["id"].as_i64().expect("id");
    (id, ancestors_root(&all, id))
}

/// A product's category and the root of that category's tree.
async fn category_and_root_of(s: &TestService, product: i64) -> (i64, i64) {
    let cat = s.json(&format!("/products/{product}")).await["product"]["category_id"]
        .as_i64()
        .expect("category");
    (cat, ancestors_root(&s.json("/categories").await, cat))
}

fn ancestors_root(all: &Value, mut id: i64) -> i64 {
    loop {
        let c = all
            .as_array()
            .expect("categories")
            .iter()
            .find(|c| c["id"] == id)
            .expect("category");
        match c["parent_id"].as_i64() {
            Some(p) => id = p,
            None => return id,
        }
    }
}

fn listing(category: i64) -> String {
    format!("/products?category={category}&per_page=100&sort=price_desc")
}

on_both_backends! {
#[tokio::test]
async fn updating_a_product_shows_everywhere_on_the_next_read() {
    let s = TestService::with_redis().await;
    let before = s.json("/products/7").await;
    let old = &before["product"];
    let old_cat = old["category_id"].as_i64().expect("category");
    let all = s.json("/categories").await;
    let old_root = ancestors_root(&all, old_cat);
    let (new_cat, new_root) = other_leaf(&s, old_cat).await;

    // Read (and so cache) everything that shows product 7, or will.
    let reads = [
        "/products/sku/SKU-0000007".to_owned(),
        "/products/sku/ZZ-7".to_owned(),
        listing(old_cat),
        listing(old_root),
        listing(new_cat),
        listing(new_root),
        "/search?q=zyzzyva".to_owned(),
        "/autocomplete?prefix=zyzzyva".to_owned(),
        "/products/top-sellers".to_owned(),
        "/stats".to_owned(),
        format!("/filters?category={new_cat}"),
    ];
    for _ in 0..2 {
        for path in &reads {
            let _ = s.get(path).await;
        }
    }
    assert!(ids(&s.json(&listing(old_cat)).await).contains(&7));
    assert!(!ids(&s.json(&listing(new_cat)).await).contains(&7));
    assert_eq!(s.json("/search?q=zyzzyva").await["total"], 0);
    let stats_before = s.json("/stats").await;
    let loads_before = s.loads("prod:<id>").await;
    let _ = s.json("/products/7").await;
    assert_eq!(
        s.loads("prod:<id>").await,
        loads_before,
        "served from the cache"
    );

    let (status, updated) = s
        .send(
            Method::PUT,
            "/products/7",
            Some(json!({
                "sku": "ZZ-7", "name": "Zyzzyva Teapot", "description": "brand new",
                "brand": "Zyzzyva Works", "price": 99999.0, "category_id": new_cat,
                "attributes": {"material": "glass"}, "popularity": 5, "sales": 10000000
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");

    let detail = s.json("/products/7").await;
    assert_eq!(detail["product"]["name"], "Zyzzyva Teapot");
    assert_eq!(detail["variants"], before["variants"], "variants stay");
    assert_eq!(s.json("/products/sku/ZZ-7").await, detail);
    assert_eq!(
        s.get("/products/sku/SKU-0000007").await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        !ids(&s.json(&listing(old_cat)).await).contains(&7),
        "left the old category"
    );
    let new_listing = s.json(&listing(new_cat)).await;
    assert_eq!(
        ids(&new_listing)[0],
        7,
        "entered the new category, most expensive"
    );
    assert_eq!(ids(&s.json(&listing(new_root)).await)[0], 7, "and its root");
    assert!(!ids(&s.json(&listing(old_root)).await).contains(&7));
    assert_eq!(ids(&s.json("/search?q=zyzzyva").await), vec![7]);
    assert_eq!(
        s.json("/autocomplete?prefix=zyzzyva").await,
        json!(["Zyzzyva Teapot"])
    );
    assert_eq!(ids(&s.json("/products/top-sellers").await)[0], 7);
    let stats = s.json("/stats").await;
    assert_eq!(stats["products"]["max_price"], 99999.0);
    assert_ne!(
        stats["products"]["total_sales"],
        stats_before["products"]["total_sales"]
    );
    let filters = s.json(&format!("/filters?category={new_cat}")).await;
    assert!(
        filters["brands"]
            .as_array()
            .expect("brands")
            .iter()
            .any(|b| b["value"] == "Zyzzyva Works")
    );
    let recs = s.json("/products/7/recommendations").await;
    assert!(
        recs.as_array()
            .expect("recs")
            .iter()
            .all(|r| r["category_id"] == new_cat)
    );
}
}

on_both_backends! {
#[tokio::test]
async fn creating_and_deleting_a_product_shows_on_the_next_read() {
    let s = TestService::with_redis().await;
    let (cat, _) = category_and_root_of(&s, 1).await;
    let reads = [
        "/products/5000".to_owned(),
        "/products/sku/NEW-5000".to_owned(),
        listing(cat),
        "/search?q=quokka".to_owned(),
        "/stats".to_owned(),
        "/products/new-arrivals".to_owned(),
    ];
    for path in &reads {
        let _ = s.get(path).await;
    }
    assert_eq!(
        s.get("/products/5000").await.status(),
        StatusCode::NOT_FOUND
    );
    let count = s.json("/stats").await["products"]["products"]
        .as_i64()
        .expect("count");

    let (status, created) = s
        .send(
            Method::POST,
            "/products/5000",
            Some(json!({"sku": "NEW-5000", "name": "Quokka Lamp", "brand": "Acme", "price": 50000.0,
                        "category_id": cat, "variants": [{"colour": "red", "size": "M", "stock": 4}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(s.json("/products/5000").await["total_stock"], 4);
    assert_eq!(
        s.json("/products/sku/NEW-5000").await["product"]["id"],
        5000
    );
    assert_eq!(ids(&s.json(&listing(cat)).await)[0], 5000);
    assert_eq!(ids(&s.json("/search?q=quokka").await), vec![5000]);
    assert_eq!(ids(&s.json("/products/new-arrivals").await)[0], 5000);
    assert_eq!(s.json("/stats").await["products"]["products"], count + 1);
    let (status, _) = s
        .send(
            Method::POST,
            "/products/5000",
            Some(created["product"].clone()),
        )
        .await;
    assert!(status.is_client_error());

    let (status, _) = s.send(Method::DELETE, "/products/5000", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.get("/products/5000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/products/sku/NEW-5000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/products/5000/variants").await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!ids(&s.json(&listing(cat)).await).contains(&5000));
    assert_eq!(s.json("/search?q=quokka").await["total"], 0);
    assert_eq!(s.json("/stats").await["products"]["products"], count);
    assert_eq!(
        s.send(Method::DELETE, "/products/5000", None).await.0,
        StatusCode::NOT_FOUND
    );
}
}

on_both_backends! {
#[tokio::test]
async fn a_stock_change_invalidates_what_shows_stock_and_nothing_more() {
    let s = TestService::with_redis().await;
    let p = s.json("/products/7").await;
    let cat = p["product"]["category_id"].as_i64().expect("cat");
    let v = &p["variants"][0];
    let (vid, stock) = (
        v["id"].as_i64().expect("vid"),
        v["stock"].as_i64().expect("stock"),
    );
    let others = [
        listing(cat),
        "/products/top-sellers".to_owned(),
        "/search?q=lamp".to_owned(),
        format!("/filters?category={cat}"),
        "/products/7/recommendations".to_owned(),
    ];
    for path in others.iter().chain(
        [
            "/products/7/variants".to_owned(),
            "/stats".to_owned(),
            "/products/sku/SKU-0000007".to_owned(),
        ]
        .iter(),
    ) {
        let _ = s.json(path).await;
    }
    let total_stock = s.json("/stats").await["products"]["total_stock"]
        .as_i64()
        .expect("stock");
    let metrics_before = s.metrics().await;

    let (status, movement) = s
        .send(
            Method::POST,
            &format!("/products/7/variants/{vid}/stock"),
            Some(json!({"delta": 5, "reason": "restock"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{movement}");
    assert_eq!(movement["stock_after"], stock + 5);
    let (status, movement) = s.change_stock(7, vid, -2).await;
    assert_eq!(status, StatusCode::OK, "{movement}");
    assert_eq!(movement["stock_after"], stock + 3);

    assert_eq!(
        s.json("/products/7").await["variants"][0]["stock"],
        stock + 3
    );
    assert_eq!(
        s.json("/products/sku/SKU-0000007").await["variants"][0]["stock"],
        stock + 3
    );
    assert_eq!(s.json("/products/7/variants").await[0]["stock"], stock + 3);
    assert_eq!(
        s.json("/stats").await["products"]["total_stock"],
        total_stock + 3
    );

    // Nothing else was reloaded.
    for path in &others {
        let _ = s.json(path).await;
    }
    let after = s.metrics().await;
    for pattern in [
        "prods:cat:<cat>:<query:hash>",
        "top:sellers",
        "search:<query:hash>",
        "filters:<cat>",
        "recs:<id>",
    ] {
        let line = |text: &str| {
            let prefix = format!("catalog_cache_loads_total{{pattern=\"{pattern}\"}} ");
            text.lines()
                .find(|l| l.starts_with(&prefix))
                .map(str::to_owned)
        };
        assert_eq!(
            line(&metrics_before),
            line(&after),
            "{pattern} was not reloaded"
        );
    }
}
}

on_both_backends! {
#[tokio::test]
async fn category_writes_show_on_the_next_read() {
    let s = TestService::with_redis().await;
    let tree = s.json("/categories/tree").await;
    let root = tree[0]["id"].as_i64().expect("root");
    let other_root = tree[1]["id"].as_i64().expect("root");
    for path in [
        "/categories".to_owned(),
        format!("/categories/{root}/children"),
        "/categories/1000".to_owned(),
        "/stats".to_owned(),
    ] {
        let _ = s.get(&path).await;
    }
    let count = s.json("/stats").await["categories"]["categories"]
        .as_i64()
        .expect("count");

    let (status, c) = s.create_category(1000, "Aardvark Supplies", root).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["slug"], "aardvark-supplies");
    assert_eq!(c["depth"], 1);
    assert_eq!(
        s.json("/categories/1000").await["name"],
        "Aardvark Supplies"
    );
    assert!(ids(&s.json("/categories").await).contains(&1000));
    assert!(ids(&s.json(&format!("/categories/{root}/children")).await).contains(&1000));
    let tree = s.json("/categories/tree").await;
    assert!(
        tree[0]["children"]
            .as_array()
            .expect("children")
            .iter()
            .any(|c| c["id"] == 1000)
    );
    assert_eq!(
        s.json("/stats").await["categories"]["categories"],
        count + 1
    );

    let (status, _) = s
        .send(
            Method::PUT,
            "/categories/1000",
            Some(json!({"name": "Aardvark Goods", "slug": "aardvark-goods", "parent_id": root})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.json("/categories/1000").await["slug"], "aardvark-goods");

    // Moving a category with products moves them between the roots' listings.
    let mid = s.json(&format!("/categories/{root}/children")).await;
    let mid = mid
        .as_array()
        .expect("children")
        .iter()
        .find(|c| c["id"] != 1000)
        .expect("mid")["id"]
        .as_i64()
        .expect("id");
    let leaf = s.json(&format!("/categories/{mid}/children")).await[0].clone();
    let leaf_id = leaf["id"].as_i64().expect("leaf");
    let n = s.json(&listing(leaf_id)).await["total"]
        .as_i64()
        .expect("total");
    assert!(n > 0);
    let root_total = s.json(&format!("/products?category={root}")).await["total"]
        .as_i64()
        .expect("total");
    let other_total = s.json(&format!("/products?category={other_root}")).await["total"]
        .as_i64()
        .expect("total");
    let other_mid = s.json(&format!("/categories/{other_root}/children")).await[0]["id"]
        .as_i64()
        .expect("mid");
    let (status, moved) = s.move_category(leaf_id, &leaf, other_mid).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        s.json(&format!("/products?category={root}")).await["total"],
        root_total - n
    );
    assert_eq!(
        s.json(&format!("/products?category={other_root}")).await["total"],
        other_total + n
    );
    assert!(ids(&s.json(&format!("/categories/{other_mid}/children")).await).contains(&leaf_id));
    assert!(!ids(&s.json(&format!("/categories/{mid}/children")).await).contains(&leaf_id));

    let (status, auto) = s
        .send(
            Method::POST,
            "/categories",
            Some(json!({"name": "Zebra Corner"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{auto}");
    assert_eq!(auto["depth"], 0);
    let auto_id = auto["id"].as_i64().expect("id");
    assert!(
        s.json("/categories/tree")
            .await
            .as_array()
            .expect("roots")
            .iter()
            .any(|c| c["id"] == auto_id)
    );
    let (status, _) = s
        .send(Method::DELETE, &format!("/categories/{auto_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, _) = s.send(Method::DELETE, "/categories/1000", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.get("/categories/1000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!ids(&s.json("/categories").await).contains(&1000));
    assert_eq!(s.json("/stats").await["categories"]["categories"], count);
}
}

/// The body of `PUT /products/{id}` that keeps `detail`'s product but renames it.
fn renamed(detail: &Value, name: &str) -> Value {
    let mut body = detail["product"].clone();
    for field in ["id", "created_at"] {
        body.as_object_mut().expect("object").remove(field);
    }
    body["name"] = json!(name);
    body
}

on_both_backends! {
#[tokio::test]
async fn moving_a_category_updates_searches_within_the_old_and_new_ancestors() {
    let s = TestService::with_redis().await;
    let detail = s.json("/products/7").await;
    let leaf = detail["product"]["category_id"].as_i64().expect("category");
    let all = s.json("/categories").await;
    let old_root = ancestors_root(&all, leaf);
    let (other_leaf_id, new_root) = other_leaf(&s, leaf).await;
    let new_parent = all
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["id"] == other_leaf_id)
        .expect("leaf")["parent_id"]
        .as_i64()
        .expect("parent");
    let (status, e) = s
        .send(
            Method::PUT,
            "/products/7",
            Some(renamed(&detail, "Wombat Gadget")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let in_old = format!("/search?q=wombat&category={old_root}");
    let in_new = format!("/search?q=wombat&category={new_root}");
    for _ in 0..2 {
        assert_eq!(ids(&s.json(&in_old).await), vec![7]);
        assert_eq!(ids(&s.json(&in_new).await), Vec::<i64>::new());
    }
    let stats = s.json("/stats").await;
    let leaf_products = s.json(&listing(leaf)).await["total"]
        .as_u64()
        .expect("total");
    let count = |stats: &Value, root: i64| {
        root_prices(stats, root)["products"]
            .as_u64()
            .expect("count")
    };
    let (old_count, new_count) = (count(&stats, old_root), count(&stats, new_root));

    let c = all
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["id"] == leaf)
        .expect("leaf")
        .clone();
    let (status, moved) = s.move_category(leaf, &c, new_parent).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        ids(&s.json(&in_old).await),
        Vec::<i64>::new(),
        "left the old root"
    );
    assert_eq!(ids(&s.json(&in_new).await), vec![7], "entered the new root");
    let stats = s.json("/stats").await;
    assert_eq!(count(&stats, old_root), old_count - leaf_products);
    assert_eq!(count(&stats, new_root), new_count + leaf_products);
}
}

on_both_backends! {
#[tokio::test]
async fn creating_a_category_with_an_id_drops_its_cached_not_found() {
    let s = TestService::with_redis().await;
    let root = s.json("/categories/tree").await[0]["id"]
        .as_i64()
        .expect("root");
    let reads = [
        "/filters?category=1001",
        "/products?category=1001",
        "/categories/1001",
        "/categories/1001/children",
        "/categories/1001/attributes",
    ];
    for _ in 0..2 {
        for path in reads {
            assert_eq!(s.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
    let (status, c) = s.create_category(1001, "Okapi Outlet", root).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let filters = s.json("/filters?category=1001").await;
    assert_eq!(
        (filters["category"].clone(), filters["total"].clone()),
        (json!(1001), json!(0))
    );
    assert_eq!(s.json("/products?category=1001").await["total"], 0);
    assert_eq!(s.json("/categories/1001").await["name"], "Okapi Outlet");
    assert_eq!(s.json("/categories/1001/children").await, json!([]));
    assert_eq!(s.json("/categories/1001/attributes").await, json!([]));
}
}

on_both_backends! {
#[tokio::test]
async fn deleting_a_category_drops_its_cached_listings_and_filters() {
    let s = TestService::with_redis().await;
    let root = s.json("/categories/tree").await[0]["id"]
        .as_i64()
        .expect("root");
    let (status, c) = s.create_category(1002, "Tapir Trading", root).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let reads = [
        "/filters?category=1002",
        "/products?category=1002",
        "/products?category=1002&sort=newest&per_page=5",
        "/categories/1002",
        "/categories/1002/children",
        "/categories/1002/attributes",
    ];
    for _ in 0..2 {
        for path in reads {
            let _ = s.json(path).await;
        }
    }
    let (status, e) = s.send(Method::DELETE, "/categories/1002", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    for path in reads {
        assert_eq!(s.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
}
}

/// The `/stats` entry of root category `root`.
fn root_prices(stats: &Value, root: i64) -> Value {
    stats["price_by_category"]
        .as_array()
        .expect("price_by_category")
        .iter()
        .find(|c| c["category_id"] == root)
        .unwrap_or_else(|| panic!("no price statistics for root {root}: {stats}"))
        .clone()
}

on_both_backends! {
#[tokio::test]
async fn price_statistics_per_root_category_follow_product_writes() {
    let s = TestService::with_redis().await;
    let stats = s.json("/stats").await;
    let tree = s.json("/categories/tree").await;
    let roots: Vec<i64> = ids(&tree);
    let per_root = stats["price_by_category"].as_array().expect("list");
    assert_eq!(per_root.len(), roots.len(), "one entry per root");
    let sum: u64 = per_root
        .iter()
        .map(|c| c["products"].as_u64().expect("count"))
        .sum();
    assert_eq!(sum, stats["products"]["products"].as_u64().expect("count"));
    // Each entry agrees with the listing of that root.
    for &root in &roots {
        let entry = root_prices(&stats, root);
        let listing = s
            .json(&format!(
                "/products?category={root}&sort=price_desc&per_page=1"
            ))
            .await;
        assert_eq!(entry["products"], listing["total"], "root {root}");
        if entry["products"] != 0 {
            assert_eq!(entry["max_price"], listing["items"][0]["price"]);
            let cheapest = s
                .json(&format!(
                    "/products?category={root}&sort=price_asc&per_page=1"
                ))
                .await;
            assert_eq!(entry["min_price"], cheapest["items"][0]["price"]);
        }
    }

    let detail = s.json("/products/7").await;
    let cat = detail["product"]["category_id"].as_i64().expect("category");
    let all = s.json("/categories").await;
    let root = ancestors_root(&all, cat);
    let (new_cat, new_root) = other_leaf(&s, cat).await;
    let before_old = root_prices(&stats, root);
    let before_new = root_prices(&stats, new_root);

    // A stock change does not touch the price statistics (nor reload them).
    let loads = s.loads("stats:prices").await;
    let vid = detail["variants"][0]["id"].as_i64().expect("vid");
    let (status, e) = s.change_stock(7, vid, 1).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let _ = s.json("/stats").await;
    assert_eq!(s.loads("stats:prices").await, loads, "not reloaded");

    // A new price shows in its root's statistics.
    let mut body = renamed(&detail, "Pricey Lamp");
    body["price"] = json!(777_777.0);
    let (status, e) = s.send(Method::PUT, "/products/7", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let stats = s.json("/stats").await;
    assert_eq!(root_prices(&stats, root)["max_price"], 777_777.0);
    assert_eq!(
        root_prices(&stats, root)["products"],
        before_old["products"]
    );

    // Moving it to another root moves it between the roots' statistics.
    body["category_id"] = json!(new_cat);
    let (status, e) = s.send(Method::PUT, "/products/7", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let stats = s.json("/stats").await;
    let (old_now, new_now) = (root_prices(&stats, root), root_prices(&stats, new_root));
    assert_eq!(
        old_now["products"].as_u64(),
        before_old["products"].as_u64().map(|n| n - 1)
    );
    assert_eq!(
        new_now["products"].as_u64(),
        before_new["products"].as_u64().map(|n| n + 1)
    );
    assert_eq!(new_now["max_price"], 777_777.0);
    assert_ne!(old_now["max_price"], 777_777.0);
}
}

on_both_backends! {
#[tokio::test]
async fn creating_a_product_without_an_id_then_deleting_it_shows_everywhere() {
    let s = TestService::with_redis().await;
    let (cat, root) = category_and_root_of(&s, 1).await;
    let reads = [
        listing(cat),
        listing(root),
        listing(0).replace("category=0&", ""),
        "/search?q=narwhal".to_owned(),
        "/autocomplete?prefix=narwhal".to_owned(),
        "/products/top-sellers".to_owned(),
        "/products/new-arrivals".to_owned(),
        "/products/popular".to_owned(),
        "/products/sku/NARWHAL-1".to_owned(),
        "/stats".to_owned(),
    ];
    for _ in 0..2 {
        for path in &reads {
            let _ = s.get(path).await;
        }
    }
    let count = s.json("/stats").await["products"]["products"]
        .as_i64()
        .expect("count");

    let (status, created) = s
        .send(
            Method::POST,
            "/products",
            Some(
                json!({"sku": "NARWHAL-1", "name": "Narwhal Lamp", "brand": "Acme",
                        "price": 900000.0, "category_id": cat,
                        "popularity": 999_999_999, "sales": 999_999_999,
                        "variants": [{"colour": "teal", "size": "L", "stock": 2}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["product"]["id"].as_i64().expect("id");
    assert!(id > i64::from(support::PRODUCTS), "the next id: {id}");
    assert_eq!(s.json(&format!("/products/{id}")).await, created);
    assert_eq!(s.json("/products/sku/NARWHAL-1").await, created);
    for path in [
        listing(cat),
        listing(root),
        listing(0).replace("category=0&", ""),
    ] {
        assert_eq!(ids(&s.json(&path).await)[0], id, "{path}");
    }
    assert_eq!(ids(&s.json("/search?q=narwhal").await), vec![id]);
    assert_eq!(
        s.json("/autocomplete?prefix=narwhal").await,
        json!(["Narwhal Lamp"])
    );
    assert_eq!(ids(&s.json("/products/top-sellers").await)[0], id);
    assert_eq!(ids(&s.json("/products/new-arrivals").await)[0], id);
    assert_eq!(ids(&s.json("/products/popular").await)[0], id);
    assert_eq!(s.json("/stats").await["products"]["products"], count + 1);

    let (status, e) = s
        .send(Method::DELETE, &format!("/products/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    assert_eq!(
        s.get(&format!("/products/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/products/sku/NARWHAL-1").await.status(),
        StatusCode::NOT_FOUND
    );
    for path in [
        listing(cat),
        listing(root),
        "/products/top-sellers".to_owned(),
        "/products/new-arrivals".to_owned(),
        "/products/popular".to_owned(),
    ] {
        assert!(!ids(&s.json(&path).await).contains(&id), "{path}");
    }
    assert_eq!(s.json("/search?q=narwhal").await["total"], 0);
    assert_eq!(s.json("/autocomplete?prefix=narwhal").await, json!([]));
    assert_eq!(s.json("/stats").await["products"]["products"], count);
}
}

/// The attribute `name` of a `/categories/{id}/attributes` or `/stats/attributes` answer.
fn attribute(list: &Value, name: &str) -> Option<Value> {
    list.as_array()
        .expect("attributes")
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

on_both_backends! {
#[tokio::test]
async fn colours_and_attributes_follow_product_writes() {
    let s = TestService::with_redis().await;
    let (cat, root) = category_and_root_of(&s, 1).await;
    let (other_cat, _) = other_leaf(&s, cat).await;
    let reads = [
        "/colors".to_owned(),
        format!("/categories/{cat}/attributes"),
        format!("/categories/{root}/attributes"),
        format!("/categories/{other_cat}/attributes"),
        "/stats/attributes".to_owned(),
    ];
    for _ in 0..2 {
        for path in &reads {
            let _ = s.json(path).await;
        }
    }
    let colour = |colours: &Value, name: &str| {
        colours
            .as_array()
            .expect("colours")
            .iter()
            .find(|c| c["colour"] == name)
            .cloned()
    };
    assert_eq!(colour(&s.json("/colors").await, "ultraviolet"), None);
    let loads = s.loads("colors:all").await;

    let (status, created) = s
        .send(
            Method::POST,
            "/products",
            Some(
                json!({"sku": "UV-1", "name": "Glow Lamp", "brand": "Acme", "price": 10.0,
                        "category_id": cat, "attributes": {"glaze": "crackle"},
                        "variants": [{"colour": "ultraviolet", "size": "M", "stock": 1},
                                     {"colour": "ultraviolet", "size": "L", "stock": 1}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["product"]["id"].as_i64().expect("id");
    let uv = colour(&s.json("/colors").await, "ultraviolet").expect("new colour");
    assert_eq!(
        (uv["products"].clone(), uv["variants"].clone()),
        (json!(1), json!(2))
    );
    for c in [cat, root] {
        let glaze = attribute(
            &s.json(&format!("/categories/{c}/attributes")).await,
            "glaze",
        )
        .unwrap_or_else(|| panic!("glaze in category {c}"));
        assert_eq!(glaze["values"], json!([{"value": "crackle", "count": 1}]));
    }
    let glaze = attribute(&s.json("/stats/attributes").await, "glaze").expect("glaze");
    assert_eq!(
        (glaze["products"].clone(), glaze["distinct_values"].clone()),
        (json!(1), json!(1))
    );

    // A stock change or a product update does not change the colours: not reloaded.
    let loads_after_create = s.loads("colors:all").await;
    assert_eq!(loads_after_create, loads + 1.0);
    let vid = created["variants"][0]["id"].as_i64().expect("vid");
    let (status, e) = s.change_stock(id, vid, 3).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    // Moving the product with new attributes: both categories' attributes follow.
    let mut body = created["product"].clone();
    for field in ["id", "created_at"] {
        body.as_object_mut().expect("object").remove(field);
    }
    body["category_id"] = json!(other_cat);
    body["attributes"] = json!({"glaze": "matte"});
    let (status, e) = s
        .send(Method::PUT, &format!("/products/{id}"), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let _ = s.json("/colors").await;
    assert_eq!(
        s.loads("colors:all").await,
        loads_after_create,
        "not reloaded"
    );
    assert_eq!(
        attribute(
            &s.json(&format!("/categories/{cat}/attributes")).await,
            "glaze"
        ),
        None,
        "left the old category"
    );
    let glaze = attribute(
        &s.json(&format!("/categories/{other_cat}/attributes")).await,
        "glaze",
    )
    .expect("entered the new category");
    assert_eq!(glaze["values"], json!([{"value": "matte", "count": 1}]));

    let (status, e) = s
        .send(Method::DELETE, &format!("/products/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{e}");
    assert_eq!(colour(&s.json("/colors").await, "ultraviolet"), None);
    assert_eq!(
        attribute(
            &s.json(&format!("/categories/{other_cat}/attributes")).await,
            "glaze"
        ),
        None
    );
    assert_eq!(attribute(&s.json("/stats/attributes").await, "glaze"), None);
}
}

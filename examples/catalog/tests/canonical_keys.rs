//! Equivalent listing and search URLs share one cache entry (issue 14, item 5): the keys hash the
//! canonical query (`src/canonical.rs`), not the URL's spelling.

mod support;

use support::TestService;

#[tokio::test]
async fn equivalent_listing_urls_hit_one_entry() {
    let s = TestService::with_redis().await;
    let pattern = "prods:cat:<cat>:<query:hash>";
    let before = s.loads(pattern).await;
    let first = s.json("/products").await;
    assert_eq!(s.loads(pattern).await, before + 1.0);
    for path in [
        "/products?page=1",
        "/products?sort=popular",
        "/products?page=1&sort=popular&per_page=20",
        "/products?per_page=20&page=1",
        "/products?min_price=0",
    ] {
        assert_eq!(s.json(path).await, first, "{path}");
        assert_eq!(s.loads(pattern).await, before + 1.0, "{path} reloaded");
    }
    // A different query is its own entry.
    let _ = s.json("/products?page=2").await;
    assert_eq!(s.loads(pattern).await, before + 2.0);
}

#[tokio::test]
async fn equivalent_search_terms_hit_one_entry() {
    let s = TestService::with_redis().await;
    let pattern = "search:<query:hash>";
    let before = s.loads(pattern).await;
    let first = s.json("/search?q=red%20shoe").await;
    assert_eq!(s.loads(pattern).await, before + 1.0);
    for path in [
        "/search?q=Red%20%20Shoe",
        "/search?q=RED-shoe&page=1",
        "/search?q=%20red%20shoe%20",
    ] {
        assert_eq!(s.json(path).await, first, "{path}");
        assert_eq!(s.loads(pattern).await, before + 1.0, "{path} reloaded");
    }
    let _ = s.json("/search?q=red%20shoes").await;
    assert_eq!(s.loads(pattern).await, before + 2.0);
}

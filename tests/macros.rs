//! `#[cached]`, `#[cache_put]` and `#[cache_evict]` against a real Redis: two cache instances (two
//! "service replicas") share one `redis-server` and one namespace, and one in-memory database
//! that counts its queries, so every test can tell a load from an L1 hit from an L2 hit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::{Cache, Counters, Hashed, KeyArg, PatternConfig, cache_evict, cache_put, cached};
use serde::{Deserialize, Serialize};
use support::{cache, eventually, policy, raw_get};
use tiercache_tests::RedisServer;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    category_id: u64,
    draft: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SearchQuery {
    text: String,
    page: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Variant {
    product: Product,
    color: String,
}

#[derive(Clone, Debug, PartialEq)]
struct DbError(&'static str);

/// The database: rows, a query counter, and a switch that makes every query fail.
#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<u64, Product>>,
    queries: AtomicU32,
    down: AtomicBool,
}

impl Db {
    fn query(&self) -> Result<std::sync::MutexGuard<'_, HashMap<u64, Product>>, DbError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(DbError("database down"));
        }
        Ok(self.rows.lock().unwrap())
    }

    fn queries(&self) -> u32 {
        self.queries.load(Ordering::SeqCst)
    }
}

/// The repository of the issue, plus a method per remaining option.
struct ProductRepo {
    db: Arc<Db>,
    cache: Cache,
}

impl ProductRepo {
    #[cached(key = "prod:<id>", ttl = 1800, none_ttl = 60)]
    async fn get_product(&self, id: u64) -> Result<Option<Product>, DbError> {
        Ok(self.db.query()?.get(&id).cloned())
    }

    // No `none_ttl`: a `None` is not cached.
    #[cached(key = "find:<id>", ttl = 1800)]
    async fn find(&self, id: u64) -> Option<Product> {
        self.db.query().ok()?.get(&id).cloned()
    }

    #[cached(key = "search:<query:hash>", ttl = 600, tags = ["search"])]
    async fn search(&self, query: &SearchQuery) -> Result<Vec<Product>, DbError> {
        let rows = self.db.query()?;
        let mut found: Vec<Product> = rows
            .values()
            .filter(|p| p.name.contains(&query.text))
            .cloned()
            .collect();
        found.sort_by_key(|p| p.id);
        Ok(found)
    }

    #[cached(key = "prods:cat:<category_id>:all", ttl = 600, tags = ["cat:<category_id>"])]
    async fn list_category(&self, category_id: u64) -> Result<Vec<u64>, DbError> {
        let rows = self.db.query()?;
        let mut ids: Vec<u64> = rows
            .values()
            .filter(|p| p.category_id == category_id)
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    // `T`, with `unless` given `&T`.
    #[cached(key = "name:<id>", ttl = 600, unless = |name: &String| name.is_empty())]
    async fn name(&self, id: u64) -> String {
        self.db
            .query()
            .ok()
            .and_then(|rows| rows.get(&id).map(|p| p.name.clone()))
            .unwrap_or_default()
    }

    // Short-lived, with a fail-safe window.
    #[cached(key = "price:<id>", ttl = 1, l1_ttl = 1, stale = 60)]
    async fn price(&self, id: u64) -> Result<u64, DbError> {
        let rows = self.db.query()?;
        Ok(rows.get(&id).map_or(0, |p| p.id * 100))
    }

    // A slow query, for single-flight.
    #[cached(key = "slow:<id>", ttl = 600)]
    async fn slow(&self, id: u64) -> Result<u64, DbError> {
        drop(self.db.query()?);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(id)
    }

    // No `ttl`: the policy registered for the template applies.
    #[cached(key = "registered:<id>")]
    async fn registered(&self, id: u64) -> u64 {
        self.db.queries.fetch_add(1, Ordering::SeqCst);
        id
    }

    // No `ttl`, no `tags`: the policy and the tags registered for the template apply (the
    // placeholder is named differently from the registered `<id>`: same shape, same pattern).
    #[cached(key = "tagged:<product_id>")]
    async fn tagged(&self, product_id: u64) -> Result<Option<Product>, DbError> {
        Ok(self.db.query()?.get(&product_id).cloned())
    }

    // Tags of its own, added to the registered ones.
    #[cached(key = "tagged-name:<id>", tags = ["names"])]
    async fn tagged_name(&self, id: u64) -> Result<String, DbError> {
        Ok(self
            .db
            .query()?
            .get(&id)
            .map(|p| p.name.clone())
            .unwrap_or_default())
    }

    // L1 expires long before L2.
    #[cached(key = "short-l1:<id>", ttl = 30, l1_ttl = 1)]
    async fn short_l1(&self, id: u64) -> Result<u64, DbError> {
        drop(self.db.query()?);
        Ok(id)
    }

    // A `None` is cached for one second.
    #[cached(key = "maybe:<id>", ttl = 600, none_ttl = 1)]
    async fn maybe(&self, id: u64) -> Option<String> {
        self.db.query().ok()?.get(&id).map(|p| p.name.clone())
    }

    // A two-level field path.
    #[cached(key = "variant:<variant.product.id>:<variant.color>", ttl = 600)]
    async fn variant(&self, variant: &Variant) -> Result<String, DbError> {
        let rows = self.db.query()?;
        let name = rows.get(&variant.product.id).map(|p| p.name.clone());
        Ok(format!("{} {}", variant.color, name.unwrap_or_default()))
    }

    // `Result<T, E>`, with `unless` given `&T`: an empty stock is not cached.
    #[cached(key = "stock:<id>", ttl = 600, unless = |stock: &u64| *stock == 0)]
    async fn stock(&self, id: u64) -> Result<u64, DbError> {
        Ok(self.db.query()?.get(&id).map_or(0, |p| p.category_id))
    }

    // `Result<Option<T>, E>`, with `unless` given `&Option<T>`: a draft is not cached, a `None` is.
    #[cached(
        key = "published:<id>",
        ttl = 600,
        none_ttl = 600,
        unless = |p: &Option<Product>| p.as_ref().is_some_and(|p| p.draft)
    )]
    async fn published(&self, id: u64) -> Result<Option<Product>, DbError> {
        Ok(self.db.query()?.get(&id).cloned())
    }

    #[cache_put(key = "prod:<product.id>", ttl = 1800, unless = |p: &Product| p.draft)]
    async fn save_product(&self, product: Product) -> Result<Product, DbError> {
        self.db.query()?.insert(product.id, product.clone());
        Ok(product)
    }

    #[cache_evict(key = "prod:<id>", tags = ["search", "cat:<category_id>"])]
    async fn delete_product(&self, id: u64, category_id: u64) -> Result<(), DbError> {
        let _ = category_id;
        self.db.query()?.remove(&id);
        Ok(())
    }

    #[cache_evict(pattern = "prods:cat:<category_id>:*", before = true)]
    async fn reindex_category(&self, category_id: u64) -> Result<(), DbError> {
        let _ = category_id;
        drop(self.db.query()?);
        Ok(())
    }

    #[cache_evict(all = true)]
    async fn clear_all(&self) {}
}

/// `&mut self` methods, whose bodies call other `&mut self` methods.
struct Counter {
    cache: Cache,
    count: u64,
}

impl Counter {
    fn bump(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[cached(key = "counter:<name>", ttl = 600)]
    async fn next(&mut self, name: &str) -> u64 {
        self.bump()
    }

    #[cache_put(key = "counter:<name>", ttl = 600)]
    async fn set(&mut self, name: String, to: u64) -> u64 {
        drop(name);
        self.count = to;
        to
    }

    #[cache_evict(key = "counter:<name>")]
    async fn reset(&mut self, name: &str) {
        self.count = 0;
    }
}

// A free function: the cache is a parameter.
#[cached(key = "rate:<from>:<to>", ttl = 600, cache = cache)]
async fn exchange_rate(
    cache: &Cache,
    calls: &AtomicU32,
    from: &str,
    to: &str,
) -> Result<f64, DbError> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(if from == to { 1.0 } else { 1.1 })
}

/// A trait with a native `async fn`, implemented with `#[cached]`.
trait Catalog {
    async fn entry(&self, id: u64) -> Result<Option<Product>, DbError>;
}

impl Catalog for ProductRepo {
    #[cached(key = "native:<id>", ttl = 600)]
    async fn entry(&self, id: u64) -> Result<Option<Product>, DbError> {
        Ok(self.db.query()?.get(&id).cloned())
    }
}

/// The same through `#[async_trait]` (boxed `Send` futures).
#[async_trait::async_trait]
trait BoxedCatalog {
    async fn boxed_entry(&self, id: u64) -> Result<Product, DbError>;
}

#[async_trait::async_trait]
impl BoxedCatalog for ProductRepo {
    #[cached(key = "boxed:<id>", ttl = 600)]
    async fn boxed_entry(&self, id: u64) -> Result<Product, DbError> {
        self.db
            .query()?
            .get(&id)
            .cloned()
            .ok_or(DbError("not found"))
    }
}

// A generic function: the key argument is any `Display` type.
#[cached(key = "label:<id>", ttl = 600, cache = cache)]
async fn label<K: std::fmt::Display + Sync + ?Sized>(
    cache: &Cache,
    calls: &AtomicU32,
    id: &K,
) -> Result<String, DbError> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(format!("label {id}"))
}

// Integer parameters, by value and behind references: rendered without `core::fmt`.
#[cached(key = "ints:<a>:<b>:<c>:<d>", ttl = 600, cache = cache)]
async fn integers(
    cache: &Cache,
    calls: &AtomicU32,
    a: i64,
    b: &u32,
    c: &&usize,
    d: u128,
) -> Result<String, DbError> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(format!("{a} {b} {c} {d}"))
}

// A `ref` binding of an integer: the binding is a reference the type does not show.
#[cached(key = "ref_int:<id>", ttl = 600, cache = cache)]
#[allow(clippy::toplevel_ref_arg)]
async fn ref_integer(cache: &Cache, calls: &AtomicU32, ref id: u64) -> Result<u64, DbError> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(*id + 1)
}

fn product(id: u64, name: &str, category_id: u64) -> Product {
    Product {
        id,
        name: name.to_owned(),
        category_id,
        draft: false,
    }
}

/// Two instances (`a`, `b`) of the repository on one Redis and one database.
async fn replicas(server: &RedisServer, namespace: &str) -> (ProductRepo, ProductRepo) {
    let db = Arc::new(Db::default());
    {
        let mut rows = db.rows.lock().unwrap();
        for p in [
            product(1, "red shoe", 7),
            product(2, "blue shoe", 7),
            product(3, "hat", 8),
        ] {
            rows.insert(p.id, p);
        }
    }
    let a = ProductRepo {
        db: db.clone(),
        cache: cache(server, namespace).await,
    };
    let b = ProductRepo {
        db,
        cache: cache(server, namespace).await,
    };
    (a, b)
}

/// The counters of the pattern a template belongs to. Templates of one shape share a pattern
/// (`prod:<id>` and `prod:<product.id>`), named after the first one used.
fn counters(cache: &Cache, template: &str) -> Counters {
    let pattern = cache
        .pattern(template)
        .unwrap_or_else(|| panic!("no pattern for `{template}`"));
    let stats = cache.stats();
    let found = stats
        .patterns
        .into_iter()
        .find(|p| p.pattern == pattern.template());
    found
        .map(|p| p.counters)
        .unwrap_or_else(|| panic!("no pattern `{template}` in the stats"))
}

fn hash_of(value: &impl Serialize) -> String {
    let mut out = String::new();
    Hashed(value).write_key_value(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_loads_once_then_serves_from_l1_and_from_l2_on_another_instance() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-tiers").await;

    assert_eq!(a.get_product(1).await, Ok(Some(product(1, "red shoe", 7))));
    let c = counters(&a.cache, "prod:<id>");
    assert_eq!((c.misses, c.loads, c.l1_hits, c.l2_hits), (1, 1, 0, 0));
    assert!(
        raw_get(&server, "m-tiers", "prod:1").await.is_some(),
        "written to Redis under the rendered key"
    );

    assert_eq!(a.get_product(1).await, Ok(Some(product(1, "red shoe", 7))));
    assert_eq!(counters(&a.cache, "prod:<id>").l1_hits, 1);

    assert_eq!(b.get_product(1).await, Ok(Some(product(1, "red shoe", 7))));
    let c = counters(&b.cache, "prod:<id>");
    assert_eq!((c.l2_hits, c.loads), (1, 0), "the other instance reads L2");
    assert_eq!(a.db.queries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_is_cached_only_with_none_ttl() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-none").await;

    assert_eq!(a.get_product(404).await, Ok(None));
    assert_eq!(a.get_product(404).await, Ok(None));
    assert_eq!(b.get_product(404).await, Ok(None));
    assert_eq!(
        a.db.queries(),
        1,
        "`none_ttl` caches the `None`, in both tiers"
    );

    assert_eq!(a.find(404).await, None);
    assert_eq!(a.find(404).await, None);
    assert_eq!(
        a.db.queries(),
        3,
        "without `none_ttl` a `None` is loaded every time"
    );
    assert_eq!(a.find(1).await.map(|p| p.id), Some(1));
    assert_eq!(a.find(1).await.map(|p| p.id), Some(1));
    assert_eq!(a.db.queries(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_never_cached_and_unless_vetoes_a_value() {
    let server = RedisServer::start();
    let (a, _b) = replicas(&server, "m-errors").await;

    a.db.down.store(true, Ordering::SeqCst);
    assert_eq!(a.get_product(1).await, Err(DbError("database down")));
    assert_eq!(a.get_product(1).await, Err(DbError("database down")));
    assert_eq!(counters(&a.cache, "prod:<id>").load_errors, 2);
    a.db.down.store(false, Ordering::SeqCst);
    assert_eq!(a.get_product(1).await.unwrap().map(|p| p.id), Some(1));
    assert_eq!(a.db.queries(), 3, "the errors were not cached");
    assert!(raw_get(&server, "m-errors", "prod:1").await.is_some());

    assert_eq!(a.name(99).await, "");
    assert_eq!(a.name(99).await, "");
    assert_eq!(
        a.db.queries(),
        5,
        "`unless` kept the empty name out of the cache"
    );
    assert!(raw_get(&server, "m-errors", "name:99").await.is_none());
    assert_eq!(a.name(1).await, "red shoe");
    assert_eq!(a.name(1).await, "red shoe");
    assert_eq!(a.db.queries(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_and_field_placeholders_render_the_expected_keys() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-keys").await;

    let shoes = SearchQuery {
        text: "shoe".into(),
        page: 1,
    };
    let found = a.search(&shoes).await.unwrap();
    assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(b.search(&shoes).await.unwrap(), found);
    assert_eq!(a.db.queries(), 1);
    let key = format!("search:{}", hash_of(&shoes));
    assert!(
        raw_get(&server, "m-keys", &key).await.is_some(),
        "`<query:hash>` is the MD5 of the query"
    );

    let page_two = SearchQuery {
        text: "shoe".into(),
        page: 2,
    };
    a.search(&page_two).await.unwrap();
    assert_eq!(a.db.queries(), 2, "another query, another key");

    // `<product.id>`: rendered from the argument before the body consumed it.
    a.save_product(product(9, "scarf", 8)).await.unwrap();
    assert!(raw_get(&server, "m-keys", "prod:9").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_parameters_render_as_their_display_form() {
    let server = RedisServer::start();
    let cache = cache(&server, "m-ints").await;
    let calls = AtomicU32::new(0);
    let (b, c) = (7u32, &3usize);
    let first = integers(&cache, &calls, -5, &b, &c, u128::MAX)
        .await
        .unwrap();
    let key = format!("ints:-5:7:3:{}", u128::MAX);
    assert!(
        raw_get(&server, "m-ints", &key).await.is_some(),
        "{key} in Redis"
    );
    let again = integers(&cache, &calls, -5, &b, &c, u128::MAX)
        .await
        .unwrap();
    assert_eq!((first, calls.load(Ordering::SeqCst)), (again, 1));
    // The same key rendered from `Display` arguments (a registered pattern) finds the entry.
    let pattern = cache
        .register(PatternConfig::new("ints:<a>:<b>:<c>:<d>", policy(600)))
        .unwrap();
    let by_display = pattern.key(&[&-5i64, &7u32, &3usize, &u128::MAX]).unwrap();
    assert_eq!(by_display.as_str(), key);
    assert!(cache.get::<String>(&by_display).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_bound_integer_parameter_renders_its_value() {
    let server = RedisServer::start();
    let cache = cache(&server, "m-ref-int").await;
    let calls = AtomicU32::new(0);
    assert_eq!(ref_integer(&cache, &calls, 41).await.unwrap(), 42);
    assert!(raw_get(&server, "m-ref-int", "ref_int:41").await.is_some());
    assert_eq!(ref_integer(&cache, &calls, 41).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_writes_the_result_through_to_both_tiers() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-put").await;

    let renamed = product(1, "crimson shoe", 7);
    assert_eq!(a.save_product(renamed.clone()).await, Ok(renamed.clone()));
    let queries = a.db.queries();
    assert_eq!(a.get_product(1).await, Ok(Some(renamed.clone())));
    assert_eq!(b.get_product(1).await, Ok(Some(renamed.clone())));
    assert_eq!(
        a.db.queries(),
        queries,
        "both instances were served by the write"
    );
    assert_eq!(counters(&a.cache, "prod:<id>").l1_hits, 1);
    assert_eq!(counters(&b.cache, "prod:<id>").l2_hits, 1);

    // `unless`: a draft is saved but not written to the cache.
    let draft = Product {
        draft: true,
        ..product(5, "draft", 7)
    };
    assert_eq!(a.save_product(draft).await.map(|p| p.id), Ok(5));
    assert!(raw_get(&server, "m-put", "prod:5").await.is_none());

    // A failed write writes nothing.
    a.db.down.store(true, Ordering::SeqCst);
    assert!(a.save_product(product(6, "lost", 7)).await.is_err());
    assert!(raw_get(&server, "m-put", "prod:6").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_invalidates_key_and_tags_after_success_only() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-evict").await;
    let shoes = SearchQuery {
        text: "shoe".into(),
        page: 1,
    };

    a.get_product(1).await.unwrap();
    a.search(&shoes).await.unwrap();
    a.list_category(7).await.unwrap();
    a.list_category(8).await.unwrap();
    b.search(&shoes).await.unwrap();
    assert_eq!(a.db.queries(), 4);

    // A failed delete invalidates nothing.
    a.db.down.store(true, Ordering::SeqCst);
    assert!(a.delete_product(1, 7).await.is_err());
    a.db.down.store(false, Ordering::SeqCst);
    a.get_product(1).await.unwrap();
    a.search(&shoes).await.unwrap();
    assert_eq!(a.db.queries(), 5, "only the failed delete queried");

    a.delete_product(1, 7).await.unwrap();
    assert!(
        raw_get(&server, "m-evict", "prod:1").await.is_none(),
        "the key left Redis"
    );
    assert_eq!(a.get_product(1).await, Ok(None));
    assert_eq!(
        a.search(&shoes).await.unwrap().len(),
        1,
        "tag `search` invalidated"
    );
    assert_eq!(
        a.list_category(7).await,
        Ok(vec![2]),
        "tag `cat:7` invalidated"
    );
    assert_eq!(a.list_category(8).await, Ok(vec![3]));
    assert_eq!(a.db.queries(), 9, "category 8 was still cached");

    // Tags reach the other instance's L1 through their marks.
    let replica_sees_it = eventually(Duration::from_secs(3), || async {
        b.search(&shoes).await.map(|found| found.len()) == Ok(1)
    })
    .await;
    assert!(
        replica_sees_it,
        "the other instance dropped its `search` entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_by_pattern_before_the_body_and_all() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-pattern").await;

    a.list_category(7).await.unwrap();
    a.list_category(8).await.unwrap();
    assert_eq!(a.db.queries(), 2);

    // `before = true`: invalidated even though the body then fails.
    a.db.down.store(true, Ordering::SeqCst);
    assert!(a.reindex_category(7).await.is_err());
    a.db.down.store(false, Ordering::SeqCst);
    assert!(
        raw_get(&server, "m-pattern", "prods:cat:7:all")
            .await
            .is_none()
    );
    assert!(
        raw_get(&server, "m-pattern", "prods:cat:8:all")
            .await
            .is_some()
    );
    a.list_category(7).await.unwrap();
    a.list_category(8).await.unwrap();
    assert_eq!(a.db.queries(), 4, "category 7 reloaded, 8 still cached");

    b.get_product(2).await.unwrap();
    let queries = a.db.queries();
    a.clear_all().await;
    a.list_category(8).await.unwrap();
    assert_eq!(
        a.db.queries(),
        queries + 1,
        "`all = true` cleared this instance"
    );
    let replica_cleared = eventually(Duration::from_secs(3), || async {
        let before = b.db.queries();
        b.get_product(2).await.unwrap();
        b.db.queries() > before
    })
    .await;
    assert!(replica_cleared, "and the other one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mut_self_methods_and_free_functions() {
    let server = RedisServer::start();
    let mut counter = Counter {
        cache: cache(&server, "m-mut").await,
        count: 0,
    };

    assert_eq!(counter.next("a").await, 1);
    assert_eq!(counter.next("a").await, 1, "cached");
    assert_eq!(counter.next("b").await, 2);
    assert_eq!(counter.set("a".to_owned(), 10).await, 10);
    assert_eq!(counter.next("a").await, 10, "written through");
    counter.reset("a").await;
    assert_eq!(counter.next("a").await, 1, "evicted");

    let cache = cache(&server, "m-free").await;
    let calls = AtomicU32::new(0);
    assert_eq!(exchange_rate(&cache, &calls, "EUR", "USD").await, Ok(1.1));
    assert_eq!(exchange_rate(&cache, &calls, "EUR", "USD").await, Ok(1.1));
    assert_eq!(exchange_rate(&cache, &calls, "USD", "USD").await, Ok(1.0));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(raw_get(&server, "m-free", "rate:EUR:USD").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_load() {
    let server = RedisServer::start();
    let (a, _b) = replicas(&server, "m-flight").await;
    let repo = Arc::new(a);

    // `tokio::spawn` needs the generated futures to be `Send`.
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.slow(5).await })
        })
        .collect();
    for caller in futures::future::join_all(callers).await {
        assert_eq!(caller.unwrap(), Ok(5));
    }
    assert_eq!(repo.db.queries(), 1);
    assert_eq!(counters(&repo.cache, "slow:<id>").loads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_serves_the_stale_value_when_the_body_fails() {
    let server = RedisServer::start();
    let (a, _b) = replicas(&server, "m-stale").await;

    assert_eq!(a.price(2).await, Ok(200));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    a.db.down.store(true, Ordering::SeqCst);
    assert_eq!(
        a.price(2).await,
        Ok(200),
        "expired, but within `stale`: served while the database is down"
    );
    let c = counters(&a.cache, "price:<id>");
    assert_eq!((c.load_errors, c.stale_served), (1, 1));
    a.db.down.store(false, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_without_ttl_uses_the_registered_policy() {
    let server = RedisServer::start();
    let (a, _b) = replicas(&server, "m-registered").await;
    a.cache
        .register(PatternConfig::new("registered:<id>", policy(42)))
        .unwrap();

    assert_eq!(a.registered(1).await, 1);
    assert_eq!(a.registered(1).await, 1);
    assert_eq!(a.db.queries(), 1);
    let pattern = a.cache.pattern("registered:<id>").unwrap();
    assert_eq!(pattern.policy().ttl(), Duration::from_secs(42));
}

/// Registers, on `cache`, the patterns of `tagged` and `tagged_name` with their tags.
fn register_tagged(cache: &Cache) {
    cache
        .register(
            PatternConfig::new("tagged:<id>", policy(600))
                .tag("products")
                .tag("item:<id>"),
        )
        .unwrap();
    cache
        .register(PatternConfig::new("tagged-name:<id>", policy(600)).tag("products"))
        .unwrap();
}

fn rename(repo: &ProductRepo, id: u64, name: &str) {
    let mut rows = repo.db.rows.lock().unwrap();
    rows.get_mut(&id).unwrap().name = name.to_owned();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_by_a_site_carry_the_tags_registered_with_its_pattern() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-regtags").await;
    register_tagged(&a.cache);
    register_tagged(&b.cache);

    assert_eq!(a.tagged(1).await.unwrap().unwrap().name, "red shoe");
    assert_eq!(a.tagged(2).await.unwrap().unwrap().name, "blue shoe");
    assert_eq!(a.tagged_name(3).await.unwrap(), "hat");
    assert_eq!(b.tagged(1).await.unwrap().unwrap().name, "red shoe");
    assert_eq!(counters(&b.cache, "tagged:<id>").l2_hits, 1);
    assert_eq!(a.db.queries(), 3);

    // A templated registered tag, rendered from the site's argument.
    rename(&a, 2, "navy shoe");
    a.cache.invalidate_tag("item:2").await;
    assert_eq!(a.tagged(2).await.unwrap().unwrap().name, "navy shoe");
    assert_eq!(a.db.queries(), 4);
    assert_eq!(
        a.tagged(1).await.unwrap().unwrap().name,
        "red shoe",
        "`item:2` left `tagged:1` alone"
    );
    assert_eq!(a.db.queries(), 4);

    // The literal registered tag: both tiers, both instances, both sites.
    rename(&a, 1, "crimson shoe");
    rename(&a, 3, "cap");
    a.cache.invalidate_tag("products").await;
    let c = ProductRepo {
        db: a.db.clone(),
        cache: cache(&server, "m-regtags").await,
    };
    register_tagged(&c.cache);
    assert_eq!(
        c.tagged(1).await.unwrap().unwrap().name,
        "crimson shoe",
        "a fresh instance does not read the invalidated L2 entry"
    );
    assert_eq!(counters(&c.cache, "tagged:<id>").l2_hits, 0);
    assert_eq!(
        a.tagged(1).await.unwrap().unwrap().name,
        "crimson shoe",
        "the L1 entry is gone"
    );
    assert_eq!(
        a.tagged_name(3).await.unwrap(),
        "cap",
        "with the site's own tags too"
    );
    let replica_sees_it = eventually(Duration::from_secs(3), || async {
        b.tagged(1).await.unwrap().unwrap().name == "crimson shoe"
    })
    .await;
    assert!(replica_sees_it, "the other instance dropped its L1 entry");

    // The site's own tag still works beside the registered ones.
    rename(&a, 3, "beret");
    a.cache.invalidate_tag("names").await;
    assert_eq!(a.tagged_name(3).await.unwrap(), "beret");
}

/// The Redis TTL of an entry key (without namespace), in milliseconds.
async fn redis_pttl(server: &RedisServer, namespace: &str, key: &str) -> i64 {
    let mut conn = server.connection().await;
    redis::cmd("PTTL")
        .arg(format!("{namespace}:k:{key}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_sets_the_redis_ttl_and_l1_ttl_expires_l1_first() {
    let server = RedisServer::start();
    let (a, _b) = replicas(&server, "m-ttl").await;

    // `ttl = 1800`: the Redis TTL, shortened by at most the default jitter (5 %).
    a.get_product(1).await.unwrap();
    let pttl = redis_pttl(&server, "m-ttl", "prod:1").await;
    assert!(
        (1_700_000..=1_800_000).contains(&pttl),
        "`ttl = 1800` is the Redis TTL, got {pttl} ms"
    );

    // `ttl = 30, l1_ttl = 1`.
    assert_eq!(a.short_l1(4).await, Ok(4));
    let pttl = redis_pttl(&server, "m-ttl", "short-l1:4").await;
    assert!(
        (28_000..=30_000).contains(&pttl),
        "`ttl = 30` is the Redis TTL, not `l1_ttl`, got {pttl} ms"
    );
    assert_eq!(a.short_l1(4).await, Ok(4));
    let c = counters(&a.cache, "short-l1:<id>");
    assert_eq!((c.loads, c.l1_hits, c.l2_hits), (1, 1, 0));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(a.short_l1(4).await, Ok(4));
    let c = counters(&a.cache, "short-l1:<id>");
    assert_eq!(
        (c.loads, c.l1_hits, c.l2_hits),
        (1, 1, 1),
        "after `l1_ttl` the value comes from L2"
    );
    assert_eq!(a.short_l1(4).await, Ok(4));
    assert_eq!(
        counters(&a.cache, "short-l1:<id>").l1_hits,
        2,
        "and is back in L1"
    );
    assert_eq!(a.db.queries(), 2, "one query per method");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_none_expires_after_none_ttl() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-nonettl").await;

    assert_eq!(a.maybe(50).await, None);
    assert_eq!(b.maybe(50).await, None);
    assert_eq!(a.db.queries(), 1, "the `None` is cached in both tiers");
    let pttl = redis_pttl(&server, "m-nonettl", "maybe:50").await;
    assert!(
        (1..=1_000).contains(&pttl),
        "`none_ttl = 1` is the Redis TTL of the `None`, got {pttl} ms"
    );

    a.db.rows
        .lock()
        .unwrap()
        .insert(50, product(50, "new arrival", 7));
    assert_eq!(a.maybe(50).await, None, "still the cached `None`");
    assert_eq!(a.db.queries(), 1);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(a.maybe(50).await.as_deref(), Some("new arrival"));
    assert_eq!(b.maybe(50).await.as_deref(), Some("new arrival"));
    assert_eq!(a.db.queries(), 2, "expired from both tiers, loaded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_level_field_path_renders_the_key() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-path").await;
    let red = Variant {
        product: product(1, "red shoe", 7),
        color: "dark red".into(),
    };

    assert_eq!(a.variant(&red).await.unwrap(), "dark red red shoe");
    assert!(
        raw_get(&server, "m-path", "variant:1:dark%20red")
            .await
            .is_some(),
        "`<variant.product.id>` and `<variant.color>` (escaped)"
    );
    assert_eq!(b.variant(&red).await.unwrap(), "dark red red shoe");
    assert_eq!(counters(&b.cache, "variant:<a>:<b>").l2_hits, 1);
    let blue = Variant {
        color: "blue".into(),
        ..red.clone()
    };
    a.variant(&blue).await.unwrap();
    assert_eq!(a.db.queries(), 2, "another color, another key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unless_on_result_and_result_option() {
    let server = RedisServer::start();
    let (a, _b) = replicas(&server, "m-unless").await;
    a.db.rows.lock().unwrap().insert(
        20,
        Product {
            category_id: 0, // out of stock
            ..product(20, "sold out", 0)
        },
    );

    // `Result<T, E>`: `unless` vetoes `Ok(0)`; `Ok(7)` is cached.
    assert_eq!(a.stock(20).await, Ok(0));
    assert_eq!(a.stock(20).await, Ok(0));
    assert_eq!(a.db.queries(), 2, "`Ok(0)` was not cached");
    assert!(raw_get(&server, "m-unless", "stock:20").await.is_none());
    assert_eq!(a.stock(1).await, Ok(7));
    assert_eq!(a.stock(1).await, Ok(7));
    assert_eq!(a.db.queries(), 3);
    assert!(raw_get(&server, "m-unless", "stock:1").await.is_some());

    // `Result<Option<T>, E>`: a draft is vetoed, a product and a `None` are cached.
    let draft = Product {
        draft: true,
        ..product(21, "draft", 7)
    };
    a.db.rows.lock().unwrap().insert(21, draft.clone());
    let queries = a.db.queries();
    assert_eq!(a.published(21).await, Ok(Some(draft.clone())));
    assert_eq!(a.published(21).await, Ok(Some(draft)));
    assert_eq!(a.db.queries(), queries + 2, "the draft was not cached");
    assert!(raw_get(&server, "m-unless", "published:21").await.is_none());
    assert_eq!(a.published(1).await.unwrap().map(|p| p.id), Some(1));
    assert_eq!(a.published(1).await.unwrap().map(|p| p.id), Some(1));
    assert_eq!(a.published(404).await, Ok(None));
    assert_eq!(a.published(404).await, Ok(None));
    assert_eq!(a.db.queries(), queries + 4);
    assert!(raw_get(&server, "m-unless", "published:1").await.is_some());
    assert!(
        raw_get(&server, "m-unless", "published:404")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trait_methods_and_generic_functions_use_both_tiers() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-traits").await;

    // Native `async fn` in a trait.
    assert_eq!(a.entry(1).await.unwrap().map(|p| p.id), Some(1));
    assert_eq!(b.entry(1).await.unwrap().map(|p| p.id), Some(1));
    assert_eq!(counters(&b.cache, "native:<id>").l2_hits, 1);
    assert_eq!(a.db.queries(), 1);

    // `#[async_trait]`, on a spawned task (its future is `Send`).
    let b = Arc::new(b);
    assert_eq!(a.boxed_entry(2).await.map(|p| p.id), Ok(2));
    let replica = b.clone();
    let from_b = tokio::spawn(async move { replica.boxed_entry(2).await })
        .await
        .unwrap();
    assert_eq!(from_b.map(|p| p.id), Ok(2));
    assert_eq!(counters(&b.cache, "boxed:<id>").l2_hits, 1);
    assert_eq!(a.db.queries(), 2);
    assert!(raw_get(&server, "m-traits", "boxed:2").await.is_some());

    // A generic function, instantiated with two key types.
    let calls = AtomicU32::new(0);
    assert_eq!(label(&a.cache, &calls, &5u64).await.unwrap(), "label 5");
    assert_eq!(label(&b.cache, &calls, "5").await.unwrap(), "label 5");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "`5u64` and `\"5\"` render one key; the other instance read it from L2"
    );
    assert_eq!(counters(&b.cache, "label:<id>").l2_hits, 1);
    assert_eq!(label(&b.cache, &calls, "6").await.unwrap(), "label 6");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Functions whose value type is `Arc<Product>`: the cache keeps the function's `Arc` itself, so a
/// hit is the same allocation (no copy of the product, no `Arc` inside an `Arc`), and the entries
/// are shared with the sites of the same pattern that return an owned `Product`.
impl ProductRepo {
    #[cached(key = "prod:<id>", ttl = 1800, none_ttl = 60)]
    async fn get_shared(&self, id: u64) -> Result<Option<Arc<Product>>, DbError> {
        Ok(self.db.query()?.get(&id).cloned().map(Arc::new))
    }

    #[cache_put(key = "prod:<product.id>", ttl = 1800)]
    async fn save_shared(&self, product: Product) -> Arc<Product> {
        self.db
            .rows
            .lock()
            .unwrap()
            .insert(product.id, product.clone());
        Arc::new(product)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arc_values_are_cached_as_they_are_and_shared_with_owned_sites() {
    let server = RedisServer::start();
    let (a, b) = replicas(&server, "m-arc").await;

    let first = a.get_shared(1).await.unwrap().unwrap();
    let again = a.get_shared(1).await.unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "an L1 hit is the cached Arc itself"
    );
    assert_eq!(*first, product(1, "red shoe", 7));
    assert_eq!(a.db.queries(), 1);

    // The owned site of the same pattern reads the same entry: an L1 hit, no query.
    assert_eq!(a.get_product(1).await, Ok(Some(product(1, "red shoe", 7))));
    assert_eq!(a.db.queries(), 1);
    assert_eq!(counters(&a.cache, "prod:<id>").l1_hits, 2);

    // Another instance reads it from Redis (the same bytes as an owned `Product`).
    let from_l2 = b.get_shared(1).await.unwrap().unwrap();
    assert_eq!(*from_l2, product(1, "red shoe", 7));
    assert_eq!(a.db.queries(), 1);
    assert_eq!(counters(&b.cache, "prod:<id>").l2_hits, 1);

    // `#[cache_put]` caches the returned Arc: the next read is that allocation.
    let saved = a.save_shared(product(1, "green shoe", 7)).await;
    let read = a.get_shared(1).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&saved, &read));
    assert_eq!(
        a.get_product(1).await,
        Ok(Some(product(1, "green shoe", 7)))
    );
    assert_eq!(a.db.queries(), 1);
    // A cached absence reaches an Arc site as `None`.
    assert_eq!(a.get_shared(99).await, Ok(None));
    assert_eq!(a.get_shared(99).await, Ok(None));
    assert_eq!(a.db.queries(), 2);
}

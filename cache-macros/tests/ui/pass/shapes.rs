//! Every return shape, and every option.

use std::sync::atomic::{AtomicU32, Ordering};

use cache_core::{Cache, cache_evict, cache_put, cached};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    draft: bool,
}

#[derive(Clone, Debug, PartialEq)]
struct DbError;

const TTL: u64 = 30 * 60;

struct Repo {
    cache: Cache,
    loads: AtomicU32,
}

impl Repo {
    fn load(&self) -> u32 {
        self.loads.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn loads(&self) -> u32 {
        self.loads.load(Ordering::SeqCst)
    }

    // T, with every duration option, `unless` taking `&T`, an early `return`.
    #[cached(key = "value:<id>", ttl = TTL, l1_ttl = 60, stale = 300, unless = |v: &u64| *v == 0)]
    async fn value(&self, id: u64) -> u64 {
        self.load();
        if id == 0 {
            return 0;
        }
        id * 10
    }

    // Option<T>: `None` cached for `none_ttl`; `unless` takes `&Option<T>`.
    #[cached(key = "option:<id>", ttl = 60, none_ttl = 5, unless = |p| p.as_ref().is_some_and(|p| p.draft))]
    async fn option(&self, id: u64) -> Option<Product> {
        self.load();
        (id > 0).then_some(Product { id, draft: id == 9 })
    }

    // Result<T, E>: `Err` is never cached; `?` works in the body.
    #[cached(key = "result:<id>", ttl = 60)]
    async fn result(&self, id: u64) -> Result<u64, DbError> {
        self.load();
        let id = Some(id).filter(|id| *id != 0).ok_or(DbError)?;
        Ok(id)
    }

    // Result<Option<T>, E>, with tags naming parameters.
    #[cached(key = "both:<id>", ttl = 60, tags = ["both", "cat:<category>"])]
    async fn both(&self, id: u64, category: u32) -> Result<Option<Product>, DbError> {
        self.load();
        let _ = category;
        Ok(Some(Product { id, draft: false }))
    }

    // `:hash` of a reference argument, and a field path.
    #[cached(key = "hash:<filter:hash>:<product.id>", ttl = 60)]
    async fn hashed(&self, filter: &Vec<String>, product: &Product) -> usize {
        self.load();
        filter.len() + product.id as usize
    }

    #[cache_put(key = "value:<id>", ttl = TTL, unless = |v: &u64| *v > 1000)]
    async fn put_value(&self, id: u64, value: u64) -> u64 {
        let _ = id;
        value
    }

    #[cache_put(key = "option:<id>", ttl = 60, tags = ["products"])]
    async fn put_option(&self, id: u64) -> Option<Product> {
        (id > 0).then_some(Product { id, draft: false })
    }

    #[cache_put(key = "result:<id>", ttl = 60)]
    async fn put_result(&self, id: u64) -> Result<u64, DbError> {
        if id == 0 { Err(DbError) } else { Ok(id + 1) }
    }

    #[cache_put(key = "both:<id>", ttl = 60, unless = |p: &Product| p.draft)]
    async fn put_both(&self, id: u64, draft: bool) -> Result<Option<Product>, DbError> {
        Ok(Some(Product { id, draft }))
    }

    #[cache_evict(key = "value:<id>", before = true)]
    async fn evict_before(&self, id: u64) -> Result<(), DbError> {
        Err(DbError)
    }

    #[cache_evict(key = "value:<id>")]
    async fn evict_after_error(&self, id: u64) -> Result<(), DbError> {
        Err(DbError)
    }

    #[cache_evict(tags = ["cat:<category>"])]
    async fn evict_tag(&self, category: u32) -> u32 {
        category
    }

    #[cache_evict(pattern = "value:*")]
    async fn evict_pattern(&self) {}

    #[cache_evict(all = true)]
    async fn evict_all(&self) -> Option<u8> {
        None
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::builder().namespace("ui-shapes").build().await.expect("cache");
    let repo = Repo { cache, loads: AtomicU32::new(0) };

    assert_eq!(repo.value(1).await, 10);
    assert_eq!(repo.value(1).await, 10);
    assert_eq!(repo.loads(), 1);
    assert_eq!(repo.value(0).await, 0);
    assert_eq!(repo.value(0).await, 0);
    assert_eq!(repo.loads(), 3, "`unless` vetoed caching 0");

    assert_eq!(repo.option(0).await, None);
    assert_eq!(repo.option(0).await, None);
    assert_eq!(repo.loads(), 4, "`None` cached for none_ttl");
    assert_eq!(repo.option(9).await.map(|p| p.draft), Some(true));
    assert_eq!(repo.option(9).await.map(|p| p.draft), Some(true));
    assert_eq!(repo.loads(), 6, "drafts not cached");

    assert_eq!(repo.result(0).await, Err(DbError));
    assert_eq!(repo.result(0).await, Err(DbError));
    assert_eq!(repo.loads(), 8, "errors not cached");
    assert_eq!(repo.result(2).await, Ok(2));
    assert_eq!(repo.result(2).await, Ok(2));
    assert_eq!(repo.loads(), 9);

    assert_eq!(repo.both(1, 3).await, Ok(Some(Product { id: 1, draft: false })));
    assert_eq!(repo.both(1, 3).await, Ok(Some(Product { id: 1, draft: false })));
    assert_eq!(repo.loads(), 10);
    assert_eq!(repo.evict_tag(3).await, 3);
    assert_eq!(repo.both(1, 3).await, Ok(Some(Product { id: 1, draft: false })));
    assert_eq!(repo.loads(), 11, "tag evicted");

    let filter = vec!["a".to_owned()];
    let product = Product { id: 4, draft: false };
    assert_eq!(repo.hashed(&filter, &product).await, 5);
    assert_eq!(repo.hashed(&filter, &product).await, 5);
    assert_eq!(repo.loads(), 12);

    assert_eq!(repo.put_value(1, 77).await, 77);
    assert_eq!(repo.value(1).await, 77, "written through");
    assert_eq!(repo.put_value(1, 5000).await, 5000);
    assert_eq!(repo.value(1).await, 77, "`unless` vetoed the write");
    assert_eq!(repo.put_option(5).await, Some(Product { id: 5, draft: false }));
    assert_eq!(repo.option(5).await, Some(Product { id: 5, draft: false }));
    assert_eq!(repo.put_result(5).await, Ok(6));
    assert_eq!(repo.result(5).await, Ok(6));
    assert_eq!(repo.put_result(0).await, Err(DbError));
    assert_eq!(repo.put_both(8, true).await, Ok(Some(Product { id: 8, draft: true })));
    let loads = repo.loads();

    assert_eq!(repo.evict_after_error(1).await, Err(DbError));
    assert_eq!(repo.value(1).await, 77, "no eviction after an error");
    assert_eq!(repo.evict_before(1).await, Err(DbError));
    assert_eq!(repo.value(1).await, 10, "evicted before the body");
    assert_eq!(repo.loads(), loads + 1);
    repo.evict_pattern().await;
    assert_eq!(repo.value(1).await, 10);
    assert_eq!(repo.loads(), loads + 2, "pattern evicted");
    assert_eq!(repo.evict_all().await, None);
    assert_eq!(repo.result(5).await, Ok(5));
    assert_eq!(repo.loads(), loads + 3, "namespace cleared");
}

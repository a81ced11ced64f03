//! The repository of the issue: `#[cached]`, `#[cache_put]` and `#[cache_evict]` on inherent
//! methods, run against an L1-only cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use cache_core::{Cache, cache_evict, cache_put, cached};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    category_id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SearchQuery {
    text: String,
    page: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

#[derive(Clone, Debug)]
struct DbError;

#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<u64, Product>>,
    queries: AtomicU32,
}

struct ProductRepo {
    db: Db,
    cache: Cache,
}

impl ProductRepo {
    #[cached(key = "prod:<id>", ttl = 1800)]
    async fn get_product(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.db.queries.fetch_add(1, Ordering::SeqCst);
        Ok(self.db.rows.lock().expect("db").get(&id).cloned())
    }

    #[cached(key = "search:<query:hash>", ttl = 600, tags = ["search"])]
    async fn search(&self, query: &SearchQuery) -> Result<Page<Product>, DbError> {
        self.db.queries.fetch_add(1, Ordering::SeqCst);
        let rows = self.db.rows.lock().expect("db");
        Ok(Page { items: rows.values().filter(|p| p.name.contains(&query.text)).cloned().collect() })
    }

    #[cache_put(key = "prod:<product.id>", ttl = 1800)]
    async fn save_product(&self, product: Product) -> Result<Product, DbError> {
        self.db.rows.lock().expect("db").insert(product.id, product.clone());
        Ok(product)
    }

    #[cache_evict(key = "prod:<id>", tags = ["search", "cat:<category_id>"])]
    async fn delete_product(&self, id: u64, category_id: u64) -> Result<(), DbError> {
        let _ = category_id;
        self.db.rows.lock().expect("db").remove(&id);
        Ok(())
    }
}

fn assert_send<F: Send>(future: F) -> F {
    future
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::builder().namespace("ui-pass").build().await.expect("cache");
    let repo = ProductRepo { db: Db::default(), cache };
    let shoe = Product { id: 1, name: "shoe".into(), category_id: 7 };

    // Written through: the next read is a hit, the body does not run.
    assert_send(repo.save_product(shoe.clone())).await.expect("save");
    assert_eq!(assert_send(repo.get_product(1)).await.expect("get"), Some(shoe.clone()));
    assert_eq!(repo.db.queries.load(Ordering::SeqCst), 0);

    let query = SearchQuery { text: "sh".into(), page: 1 };
    let page = assert_send(repo.search(&query)).await.expect("search");
    assert_eq!(page.items, vec![shoe.clone()]);
    assert_eq!(repo.search(&query).await.expect("search"), page);
    assert_eq!(repo.db.queries.load(Ordering::SeqCst), 1);

    // Evicts the key and the tags: both reload.
    assert_send(repo.delete_product(1, 7)).await.expect("delete");
    assert_eq!(repo.get_product(1).await.expect("get"), None);
    assert!(repo.search(&query).await.expect("search").items.is_empty());
    assert_eq!(repo.db.queries.load(Ordering::SeqCst), 3);
}

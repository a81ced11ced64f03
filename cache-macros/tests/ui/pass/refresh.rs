//! `refresh_ahead` and `soft_timeout_ms`: the body runs from clones of `self` and the arguments,
//! for every return shape, by-value and borrowed arguments (`&str`, `&T`, `mut`), `self` in the
//! body (fields, methods, passed on, in a macro, in a closure), an `Arc` value, `unless`, free
//! functions. Run: each call loads once, then hits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::{Cache, cached};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Query {
    text: String,
}

#[derive(Clone, Debug)]
struct DbError;

#[derive(Clone)]
struct Repo {
    cache: Cache,
    loads: Arc<AtomicU64>,
    prefix: String,
}

fn describe(repo: &Repo, id: u64) -> String {
    format!("{}{id}", repo.prefix)
}

impl Repo {
    fn load(&self) -> u64 {
        self.loads.fetch_add(1, Ordering::SeqCst) + 1
    }

    #[cached(key = "p:<id>", ttl = 60, refresh_ahead = 0.8)]
    async fn product(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.load();
        let name = describe(self, id);
        Ok(Some(Product { id, name }))
    }

    #[cached(key = "n:<name>", ttl = 60, stale = 30, soft_timeout_ms = 50, hard_timeout_ms = 500)]
    async fn by_name(&self, name: &str) -> Option<u64> {
        self.load();
        (!name.is_empty()).then(|| name.len() as u64)
    }

    #[cached(key = "s:<query:hash>", ttl = 60, refresh_ahead = 0.5, unless = |v: &Vec<u64>| v.is_empty())]
    async fn search(&self, query: &Query, mut page: u32) -> Vec<u64> {
        page += 1;
        let loads = (|| self.load())();
        println!("{} {} {page} {loads}", self.prefix, query.text);
        vec![u64::from(page)]
    }

    #[cached(key = "a:<id>", ttl = 60, refresh_ahead = 0.9)]
    async fn shared(&self, id: u64) -> Result<Arc<Product>, DbError> {
        self.load();
        Ok(Arc::new(Product { id, name: self::helper() }))
    }
}

fn helper() -> String {
    String::from("helper")
}

#[cached(key = "rate:<from>:<to>", ttl = 60, refresh_ahead = 0.8, cache = cache)]
async fn rate(cache: &Cache, from: &str, to: String) -> f64 {
    (from.len() + to.len()) as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::builder().build().await.expect("cache");
    let repo = Repo {
        cache: cache.clone(),
        loads: Arc::new(AtomicU64::new(0)),
        prefix: String::from("p-"),
    };
    for _ in 0..2 {
        let p = repo.product(1).await.expect("ok").expect("some");
        assert_eq!(p.name, "p-1");
        assert_eq!(repo.by_name("lamp").await, Some(4));
        assert_eq!(repo.search(&Query { text: "x".into() }, 1).await, vec![2]);
        assert_eq!(repo.shared(2).await.expect("ok").name, "helper");
        assert_eq!(rate(&cache, "EUR", "USD".into()).await, 6.0);
    }
    assert_eq!(repo.loads.load(Ordering::SeqCst), 4);
}

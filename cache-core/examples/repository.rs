//! A product repository cached with attributes: `#[cached]` reads, `#[cache_put]` writes through,
//! `#[cache_evict]` invalidates by key and by tag. The "database" is a `HashMap` that counts its
//! queries; every call prints where its answer came from.
//!
//! `cargo run -p cache-core --example repository` runs with an in-process cache only; set
//! `REDIS_URL=redis://127.0.0.1:6379` to add Redis as L2 (a second replica of the repository then
//! reads what the first one loaded). The README shows its output; `tests/readme_example.rs` runs
//! [`run`] (this file is a module of that test) and checks that the README still matches.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use cache_core::{Cache, Counters, cache_evict, cache_put, cached};
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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

/// `#[cached]` shares one load's error with every concurrent caller: errors are `Clone`.
#[derive(Clone, Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

/// The database: a map and a query counter.
#[derive(Default)]
struct Db {
    rows: Mutex<HashMap<u64, Product>>,
    queries: AtomicU32,
}

impl Db {
    fn query(&self) -> Result<std::sync::MutexGuard<'_, HashMap<u64, Product>>, DbError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.rows
            .lock()
            .map_err(|_| DbError("database poisoned".into()))
    }
}

struct ProductRepo {
    db: Db,
    cache: Cache,
}

impl ProductRepo {
    #[cached(key = "prod:<id>", ttl = 1800)]
    async fn get_product(&self, id: u64) -> Result<Option<Product>, DbError> {
        Ok(self.db.query()?.get(&id).cloned())
    }

    #[cached(key = "search:<query:hash>", ttl = 600, tags = ["search"])]
    async fn search(&self, query: &SearchQuery) -> Result<Page<Product>, DbError> {
        let rows = self.db.query()?;
        let mut items: Vec<Product> = rows
            .values()
            .filter(|p| p.name.contains(&query.text))
            .cloned()
            .collect();
        items.sort_by_key(|p| p.id);
        Ok(Page { items })
    }

    #[cache_put(key = "prod:<product.id>", ttl = 1800)]
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
}

/// Where the last call on `template`'s pattern was served from, by the change of its counters.
struct Where<'a> {
    repo: &'a ProductRepo,
    template: &'static str,
    before: (Counters, u32),
}

impl<'a> Where<'a> {
    fn watch(repo: &'a ProductRepo, template: &'static str) -> Self {
        Where {
            repo,
            template,
            before: (
                counters(&repo.cache, template),
                repo.db.queries.load(Ordering::SeqCst),
            ),
        }
    }

    fn served_from(self) -> &'static str {
        let now = counters(&self.repo.cache, self.template);
        let queries = self.repo.db.queries.load(Ordering::SeqCst);
        if queries > self.before.1 {
            "the database"
        } else if now.l1_hits > self.before.0.l1_hits {
            "L1 (in process)"
        } else if now.l2_hits > self.before.0.l2_hits {
            "L2 (Redis)"
        } else {
            "nowhere?"
        }
    }
}

fn counters(cache: &Cache, template: &str) -> Counters {
    let Some(pattern) = cache.pattern(template) else {
        return Counters::default();
    };
    cache
        .stats()
        .patterns
        .into_iter()
        .find(|p| p.pattern == pattern.template())
        .map(|p| p.counters)
        .unwrap_or_default()
}

async fn new_repo(redis_url: Option<String>) -> Result<ProductRepo, cache_core::Error> {
    let cache = Cache::builder()
        .namespace("example-repository")
        .redis_url_opt(redis_url)
        .build()
        .await?;
    Ok(ProductRepo {
        db: Db::default(),
        cache,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(std::env::var("REDIS_URL").ok(), &mut std::io::stdout()).await
}

/// The walk-through, printing to `out` (`tests/readme_example.rs` runs it and compares the output
/// with the README).
pub async fn run(
    redis_url: Option<String>,
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    writeln!(
        out,
        "L2: {}",
        redis_url
            .as_deref()
            .unwrap_or("none (set REDIS_URL to add Redis)")
    )?;
    let repo = new_repo(redis_url.clone()).await?;
    repo.cache.clear().await; // start from an empty namespace

    let shoe = Product {
        id: 1,
        name: "red shoe".into(),
        category_id: 7,
    };
    let boot = Product {
        id: 2,
        name: "red boot".into(),
        category_id: 7,
    };
    let watch = Where::watch(&repo, "prod:<id>");
    repo.save_product(shoe.clone()).await?;
    repo.save_product(boot.clone()).await?;
    writeln!(
        out,
        "save_product(1), save_product(2): written to {} and through to the cache",
        watch.served_from()
    )?;

    for _ in 0..2 {
        let watch = Where::watch(&repo, "prod:<id>");
        let product = repo.get_product(1).await?;
        writeln!(
            out,
            "get_product(1) = {:?}: served from {}",
            product.map(|p| p.name),
            watch.served_from()
        )?;
    }

    let query = SearchQuery { text: "red".into() };
    for _ in 0..2 {
        let watch = Where::watch(&repo, "search:<query:hash>");
        let page = repo.search(&query).await?;
        writeln!(
            out,
            "search(\"red\") = {} items: served from {}",
            page.items.len(),
            watch.served_from()
        )?;
    }

    repo.delete_product(2, 7).await?;
    writeln!(
        out,
        "delete_product(2): evicted key `prod:2` and tags `search`, `cat:7`"
    )?;
    for id in [2, 1] {
        let watch = Where::watch(&repo, "prod:<id>");
        let product = repo.get_product(id).await?;
        writeln!(
            out,
            "get_product({id}) = {:?}: served from {}",
            product.map(|p| p.name),
            watch.served_from()
        )?;
    }
    let watch = Where::watch(&repo, "search:<query:hash>");
    let page = repo.search(&query).await?;
    writeln!(
        out,
        "search(\"red\") = {} items: served from {}",
        page.items.len(),
        watch.served_from()
    )?;

    if redis_url.is_some() {
        // A second replica, with its own L1, on the same Redis.
        let replica = new_repo(redis_url).await?;
        let watch = Where::watch(&replica, "prod:<id>");
        let product = replica.get_product(1).await?;
        writeln!(
            out,
            "replica get_product(1) = {:?}: served from {}",
            product.map(|p| p.name),
            watch.served_from()
        )?;
    }

    let total = repo.cache.stats().total;
    writeln!(
        out,
        "database queries {}, L1 hits {}, L2 hits {}, loads {}",
        repo.db.queries.load(Ordering::SeqCst),
        total.l1_hits,
        total.l2_hits,
        total.loads
    )?;
    Ok(())
}

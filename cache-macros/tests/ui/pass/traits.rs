//! Trait methods: native `async fn` in traits, `#[async_trait]`, and a default method.

use async_trait::async_trait;
use cache_core::{Cache, cache_evict, cache_put, cached};

#[derive(Clone, Debug)]
struct DbError;

struct Repo {
    cache: Cache,
    loads: u32,
}

trait Native {
    async fn name(&self, id: u64) -> Option<String>;
}

impl Native for Repo {
    #[cached(key = "native:<id>", ttl = 60)]
    async fn name(&self, id: u64) -> Option<String> {
        Some(format!("n{id}"))
    }
}

#[async_trait]
trait Store {
    async fn get(&self, id: u64) -> Result<Option<String>, DbError>;
    async fn load(&mut self, id: u64) -> Result<u32, DbError>;
    async fn save(&mut self, id: u64, name: String) -> Result<String, DbError>;
    async fn remove(&self, id: u64) -> Result<(), DbError>;
}

// `#[async_trait]` expands first and rewrites each method into
// `fn ..(..) -> Pin<Box<dyn Future<Output = ..> + Send + '_>> { Box::pin(async move { .. }) }`;
// the attributes then work inside that `async move` block.
#[async_trait]
impl Store for Repo {
    #[cached(key = "store:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> Result<Option<String>, DbError> {
        Ok(Some(format!("s{id}")))
    }

    #[cached(key = "load:<id>", ttl = 60)]
    async fn load(&mut self, id: u64) -> Result<u32, DbError> {
        let _ = id;
        self.loads += 1;
        Ok(self.loads)
    }

    #[cache_put(key = "store:<id>", ttl = 60)]
    async fn save(&mut self, id: u64, name: String) -> Result<String, DbError> {
        let _ = id;
        self.loads += 1;
        Ok(name)
    }

    #[cache_evict(key = "store:<id>")]
    async fn remove(&self, id: u64) -> Result<(), DbError> {
        Ok(())
    }
}

trait WithDefault {
    fn cache(&self) -> &Cache;

    #[cached(key = "default:<id>", ttl = 60, cache = self.cache())]
    async fn double(&self, id: u64) -> u64 {
        id * 2
    }
}

impl WithDefault for Repo {
    fn cache(&self) -> &Cache {
        &self.cache
    }
}

fn assert_send<F: Send>(future: F) -> F {
    future
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::builder().namespace("ui-traits").build().await.expect("cache");
    let mut repo = Repo { cache, loads: 0 };
    assert_eq!(repo.name(1).await.as_deref(), Some("n1"));
    assert_eq!(assert_send(Store::get(&repo, 1)).await.expect("get").as_deref(), Some("s1"));
    assert_eq!(assert_send(repo.load(1)).await.expect("load"), 1);
    assert_eq!(repo.load(1).await.expect("load"), 1, "cached");
    assert_eq!(assert_send(repo.save(1, "renamed".into())).await.expect("save"), "renamed");
    assert_eq!(Store::get(&repo, 1).await.expect("get").as_deref(), Some("renamed"));
    assert_send(repo.remove(1)).await.expect("remove");
    assert_eq!(Store::get(&repo, 1).await.expect("get").as_deref(), Some("s1"));
    assert_eq!(repo.double(4).await, 8);
}

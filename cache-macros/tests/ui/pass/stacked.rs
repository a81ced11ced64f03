//! Several attributes on one function: each expands inside the other's body.

use cache_core::{Cache, cache_evict, cache_put, cached};

#[derive(Clone, Debug)]
struct DbError;

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "name:<id>", ttl = 60)]
    async fn name(&self, id: u64) -> Result<String, DbError> {
        Ok(format!("loaded {id}"))
    }

    #[cached(key = "list:<category>", ttl = 60, tags = ["cat:<category>"])]
    async fn list(&self, category: u64) -> Vec<u64> {
        vec![category]
    }

    // Write the new name through, and invalidate the lists of its category.
    #[cache_put(key = "name:<id>", ttl = 60)]
    #[cache_evict(tags = ["cat:<category>"])]
    async fn rename(&self, id: u64, category: u64, name: String) -> Result<String, DbError> {
        Ok(name)
    }

    #[cache_evict(key = "name:<id>", before = true)]
    #[cache_evict(tags = ["cat:<category>"], before = true)]
    async fn remove(&self, id: u64, category: u64) -> Result<(), DbError> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = Repo { cache: Cache::builder().namespace("ui-stacked").build().await.expect("cache") };
    assert_eq!(repo.name(1).await.expect("name"), "loaded 1");
    assert_eq!(repo.list(7).await, vec![7]);
    assert_eq!(repo.rename(1, 7, "renamed".into()).await.expect("rename"), "renamed");
    assert_eq!(repo.name(1).await.expect("name"), "renamed");
    repo.remove(1, 7).await.expect("remove");
    assert_eq!(repo.name(1).await.expect("name"), "loaded 1");
}

use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Without `ttl`, the registered policy applies whole: `lease` alone would be ignored.
    #[cached(key = "prod:<id>", lease = false)]
    async fn get(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}

use cache_core::{Cache, cached};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "prod:<id>", ttl = 60, stale = 300, soft_timeout_ms = 3000, hard_timeout_ms = 2000)]
    async fn get(&self, id: u64) -> Option<u64> {
        Some(id)
    }

    // A timeout answers with a stale value: without `stale` there is none.
    #[cached(key = "name:<id>", ttl = 60, hard_timeout_ms = 2000)]
    async fn name(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}

use cache_core::{Cache, cached};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "prod:<id>", ttl = 60, refresh_ahead = 1.2)]
    async fn get(&self, id: u64) -> Option<u64> {
        Some(id)
    }

    #[cached(key = "name:<id>", ttl = 60, refresh_ahead = 0)]
    async fn name(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}

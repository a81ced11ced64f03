use cache_core::{Cache, cached};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    // Without `ttl`, the registered policy applies whole: the timeouts would be ignored.
    #[cached(key = "prod:<id>", soft_timeout_ms = 50, hard_timeout_ms = 2000, refresh_ahead = 0.8)]
    async fn get(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}

use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    // The body may run in the background, from a clone of `self`.
    #[cached(key = "prod:<id>", ttl = 60, refresh_ahead = 0.8)]
    async fn get(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {}

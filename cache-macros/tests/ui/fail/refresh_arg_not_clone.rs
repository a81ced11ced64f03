use cache_core::{Cache, cached};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

struct Filter {
    id: u64,
}

impl Repo {
    // Each argument is cloned into the background load.
    #[cached(key = "prod:<filter.id>", ttl = 60, refresh_ahead = 0.8)]
    async fn get(&self, filter: Filter) -> Option<u64> {
        Some(filter.id)
    }
}

fn main() {}

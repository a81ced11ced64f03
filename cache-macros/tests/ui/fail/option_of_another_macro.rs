use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "prod:<id>", ttl = 60, before = true)]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}

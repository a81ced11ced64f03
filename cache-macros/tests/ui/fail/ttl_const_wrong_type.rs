use cache_core::{Cache, cached};

const TTL: u32 = 60;

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "prod:<id>", ttl = TTL)]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}

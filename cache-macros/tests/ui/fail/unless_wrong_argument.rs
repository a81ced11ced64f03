use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `unless` gets `&u64` for a `u64` function, not `&Option<u64>`.
    #[cached(key = "prod:<id>", ttl = 60, unless = |v: &Option<u64>| v.is_none())]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}

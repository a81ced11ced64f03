use cache_core::{Cache, cache_evict};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache_evict(before = true)]
    async fn delete(&self, id: u64) {
        let _ = id;
    }
}

fn main() {}

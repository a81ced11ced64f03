use cache_core::{Cache, cache_evict};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Globs belong in `pattern = ".."`.
    #[cache_evict(tags = ["cat:*"])]
    async fn delete(&self, id: u64) {
        let _ = id;
    }
}

fn main() {}

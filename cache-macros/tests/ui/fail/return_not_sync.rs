use std::cell::Cell;

use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `Cell` is `Serialize`, `Clone` and `Send`, but not `Sync`: a cached value is shared.
    #[cached(key = "hits:<id>", ttl = 60)]
    async fn hits(&self, id: u64) -> Option<Cell<u64>> {
        Some(Cell::new(id))
    }
}

fn main() {}

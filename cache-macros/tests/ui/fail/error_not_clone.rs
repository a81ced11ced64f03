use cache_core::{Cache, cached};

#[derive(Debug)]
struct DbError;

struct Repo {
    cache: Cache,
}

impl Repo {
    // Concurrent callers of one key share one load, and its error: `E: Clone`.
    #[cached(key = "prod:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> Result<u64, DbError> {
        Ok(id)
    }
}

fn main() {}

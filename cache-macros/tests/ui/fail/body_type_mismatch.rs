use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    // The body's type is checked against the declared return type.
    #[cached(key = "prod:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> Option<u64> {
        id
    }
}

fn main() {}

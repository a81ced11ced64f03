use cache_core::{Cache, cached};

#[derive(Clone)]
struct Product {
    id: u64,
}

#[derive(Clone, Debug)]
struct DbError;

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "prod:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> Result<Option<Product>, DbError> {
        Ok(Some(Product { id }))
    }
}

fn main() {}

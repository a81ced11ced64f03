use cache_core::{Cache, cached};

#[derive(serde::Serialize, serde::Deserialize)]
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
    async fn get(&self, id: u64) -> Result<Product, DbError> {
        Ok(Product { id })
    }
}

fn main() {}

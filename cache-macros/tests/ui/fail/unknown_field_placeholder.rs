use cache_core::{Cache, cache_put};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Product {
    id: u64,
}

struct Repo {
    cache: Cache,
}

impl Repo {
    // The root names a parameter; the field does not exist: rustc reports it on the template.
    #[cache_put(key = "prod:<product.sku>", ttl = 60)]
    async fn save(&self, product: Product) -> Product {
        product
    }
}

fn main() {}

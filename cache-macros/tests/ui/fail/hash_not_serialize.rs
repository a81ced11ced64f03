use cache_core::{Cache, cached};

struct SearchQuery {
    text: String,
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "search:<query:hash>", ttl = 60)]
    async fn search(&self, query: &SearchQuery) -> Vec<String> {
        vec![query.text.clone()]
    }
}

fn main() {}

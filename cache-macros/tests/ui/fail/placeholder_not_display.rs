use cache_core::{Cache, cached};

#[derive(serde::Serialize)]
struct SearchQuery {
    text: String,
}

struct Repo {
    cache: Cache,
}

impl Repo {
    // A struct needs `Display`, or `:hash` to use its serialized form.
    #[cached(key = "search:<query>", ttl = 60)]
    async fn search(&self, query: &SearchQuery) -> Vec<String> {
        vec![query.text.clone()]
    }
}

fn main() {}

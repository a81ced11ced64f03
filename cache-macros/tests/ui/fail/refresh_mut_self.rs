use cache_core::{Cache, cached};

#[derive(Clone)]
struct Repo {
    cache: Cache,
    calls: u64,
}

impl Repo {
    // The body would run on a clone of `self`: its changes would be lost.
    #[cached(key = "prod:<id>", ttl = 60, refresh_ahead = 0.8)]
    async fn get(&mut self, id: u64) -> Option<u64> {
        self.calls += 1;
        Some(id)
    }
}

fn main() {}

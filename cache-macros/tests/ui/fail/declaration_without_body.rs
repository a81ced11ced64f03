use cache_core::cached;

trait Repo {
    #[cached(key = "prod:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> u64;
}

fn main() {}

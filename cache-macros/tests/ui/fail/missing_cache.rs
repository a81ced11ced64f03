use cache_core::cached;

#[cached(key = "prod:<id>", ttl = 60)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}

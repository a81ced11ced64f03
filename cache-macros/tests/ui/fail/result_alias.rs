use cache_core::{Cache, cached};

type DbResult<T> = Result<T, String>;
mod io {
    pub type Result<T> = std::result::Result<T, String>;
}

struct Repo {
    cache: Cache,
}

impl Repo {
    // A one-parameter `Result` hides the error type.
    #[cached(key = "prod:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> io::Result<u64> {
        Ok(id)
    }

    // Fine: an alias of another name is a plain value type, and `Result<u64, String>` is
    // cacheable as a value (errors included). This one compiles.
    #[cached(key = "other:<id>", ttl = 60)]
    async fn other(&self, id: u64) -> DbResult<u64> {
        Ok(id)
    }
}

fn main() {}

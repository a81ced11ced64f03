use std::rc::Rc;

use cache_core::{Cache, cached};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `Rc` is `Serialize` and `Clone` (serde's `rc` feature), but neither `Send` nor `Sync`.
    #[cached(key = "name:<id>", ttl = 60)]
    async fn name(&self, id: u64) -> Rc<str> {
        Rc::from(id.to_string())
    }
}

fn main() {}

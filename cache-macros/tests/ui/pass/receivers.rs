//! Where the cache comes from and how `self` is taken: `&self`, `&mut self`, `self`, free and
//! generic functions, `cache = <expr>`.

use std::fmt::Display;
use std::sync::{Arc, LazyLock, OnceLock};

use cache_core::{Cache, cache_evict, cache_put, cached};
use serde::Serialize;
use serde::de::DeserializeOwned;

struct Counter {
    calls: u64,
    cache: Cache,
}

impl Counter {
    fn bump(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }

    // `&mut self`, calling a `&mut self` method and moving an owned argument in the body.
    #[cached(key = "count:<name>", ttl = 60)]
    async fn count(&mut self, name: String) -> u64 {
        let _owned: String = name;
        self.bump()
    }

    #[cache_put(key = "count:<name>", ttl = 60)]
    async fn set(&mut self, name: &str, calls: u64) -> u64 {
        self.calls = calls;
        calls
    }

    #[cache_evict(key = "count:<name>")]
    async fn reset(&mut self, name: &str) {
        self.calls = 0;
    }

    // `self` by value.
    #[cached(key = "final:<id>", ttl = 60)]
    async fn into_calls(self, id: u8) -> u64 {
        drop(self.cache);
        self.calls + u64::from(id)
    }
}

struct Shared {
    cache: Arc<Cache>,
    tenant: &'static str,
}

impl Shared {
    // `Arc<Cache>` field, and a placeholder on a field of `self`.
    #[cached(key = "t:<self.tenant>:<id>", ttl = 60)]
    async fn get(&self, id: u32) -> String {
        format!("{}-{id}", self.tenant)
    }
}

struct Nested {
    inner: Counter,
}

impl Nested {
    #[cached(key = "nested:<id>", ttl = 60, cache = self.inner.cache)]
    async fn get(&self, id: u32) -> u32 {
        id
    }
}

// Free functions: the cache is named explicitly.
#[cached(key = "free:<a>:<b>", ttl = 60, cache = cache)]
async fn free(cache: &Cache, a: u32, b: &str) -> String {
    format!("{a}{b}")
}

static CACHE: OnceLock<Cache> = OnceLock::new();
static LAZY: LazyLock<Arc<Cache>> = LazyLock::new(|| Arc::new(CACHE.get().expect("set").clone()));

#[cached(key = "static:<id>", ttl = 60, cache = CACHE.get().expect("cache initialised"))]
async fn from_static(id: u32) -> u32 {
    id * 2
}

#[cached(key = "lazy:<id>", ttl = 60, cache = &*LAZY)]
async fn from_lazy(id: u32) -> u32 {
    id * 3
}

#[cached(key = "arc:<id>", ttl = 60, cache = cache)]
async fn from_arc(cache: Arc<Cache>, id: u32) -> u32 {
    id * 4
}

// Generic over the key argument and the value.
#[cached(key = "generic:<id>", ttl = 60, cache = cache)]
async fn generic<K, V>(cache: &Cache, id: K, value: V) -> V
where
    K: Display + Send + Sync,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let _ = id;
    value
}

fn assert_send<F: Send>(future: F) -> F {
    future
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = Cache::builder().namespace("ui-receivers").build().await.expect("cache");
    let _ = CACHE.set(cache.clone());

    let mut counter = Counter { calls: 0, cache: cache.clone() };
    assert_eq!(assert_send(counter.count("a".into())).await, 1);
    assert_eq!(counter.count("a".into()).await, 1, "cached");
    assert_eq!(assert_send(counter.set("a", 10)).await, 10);
    assert_eq!(counter.count("a".into()).await, 10, "written through");
    assert_send(counter.reset("a")).await;
    assert_eq!(counter.count("a".into()).await, 1, "evicted");
    assert_eq!(assert_send(counter.into_calls(1)).await, 2);

    let shared = Shared { cache: Arc::new(cache.clone()), tenant: "acme" };
    assert_eq!(assert_send(shared.get(1)).await, "acme-1");
    let nested = Nested { inner: Counter { calls: 0, cache: cache.clone() } };
    assert_eq!(nested.get(5).await, 5);

    assert_eq!(assert_send(free(&cache, 1, "x")).await, "1x");
    assert_eq!(assert_send(from_static(2)).await, 4);
    assert_eq!(assert_send(from_lazy(2)).await, 6);
    assert_eq!(assert_send(from_arc(Arc::new(cache.clone()), 2)).await, 8);
    assert_eq!(assert_send(generic(&cache, "k", vec![1u8, 2])).await, vec![1u8, 2]);
    assert_eq!(generic(&cache, 'k', 3.5f64).await, 3.5);
}

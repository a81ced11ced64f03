//! `#[cached(.., refresh_ahead = .., soft_timeout_ms = .., hard_timeout_ms = ..)]` against a real
//! Redis: a hot key read through the macro is reloaded in the background and never expires under
//! reads; a slow load holding a stale value answers stale past the soft timeout and fills the
//! cache; the receiver is cloned for a load, never for a hit. Assertions count loads, misses and
//! clones; time only bounds waits, generously.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{Cache, cached};
use support::{Product, cache, eventually, product, raw_get};
use tiercache_tests::RedisServer;

/// The database: a name to serve, loads counted, and a switch that makes loads slow.
#[derive(Default)]
struct Db {
    name: std::sync::Mutex<String>,
    loads: AtomicU64,
    slow: AtomicBool,
}

impl Db {
    async fn load(&self, id: u64) -> Product {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let name = self.name.lock().unwrap().clone();
        product(id, &name)
    }

    fn set_name(&self, name: &str) {
        *self.name.lock().unwrap() = name.to_owned();
    }

    fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }
}

/// A repository whose clones are counted: the macro clones it for each load it may run in the
/// background, and never for a hit.
struct Repo {
    cache: Cache,
    db: Arc<Db>,
    clones: Arc<AtomicU64>,
}

impl Clone for Repo {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Repo {
            cache: self.cache.clone(),
            db: Arc::clone(&self.db),
            clones: Arc::clone(&self.clones),
        }
    }
}

#[derive(Clone, Debug)]
struct DbError;

impl Repo {
    async fn new(server: &RedisServer, namespace: &str) -> Repo {
        let db = Db::default();
        db.set_name("v1");
        Repo {
            cache: cache(server, namespace).await,
            db: Arc::new(db),
            clones: Arc::default(),
        }
    }

    #[cached(key = "hot:<id>", ttl = 3, l1_ttl = 3, refresh_ahead = 0.5)]
    async fn hot(&self, id: u64) -> Result<Product, DbError> {
        Ok(self.db.load(id).await)
    }

    #[cached(
        key = "slow:<name>",
        ttl = 1,
        l1_ttl = 1,
        stale = 30,
        soft_timeout_ms = 100
    )]
    async fn slow(&self, name: &str) -> Option<Product> {
        Some(self.db.load(name.len() as u64).await)
    }

    #[cached(
        key = "stuck:<id>",
        ttl = 1,
        l1_ttl = 1,
        stale = 30,
        hard_timeout_ms = 200
    )]
    async fn stuck(&self, id: u64) -> Result<Product, DbError> {
        Ok(self.db.load(id).await)
    }

    fn clones(&self) -> u64 {
        self.clones.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_key_is_reloaded_in_the_background_and_never_expires_under_reads() {
    let server = RedisServer::start();
    let repo = Repo::new(&server, "hot").await;
    assert_eq!(repo.hot(1).await.unwrap().name, "v1");
    assert_eq!((repo.db.loads(), repo.clones()), (1, 1));
    // Before the refresh deadline (half the TTL), hits clone nothing and load nothing.
    for _ in 0..100 {
        assert_eq!(repo.hot(1).await.unwrap().name, "v1");
    }
    assert_eq!(
        (repo.db.loads(), repo.clones()),
        (1, 1),
        "hits clone nothing"
    );
    // Read for three TTLs: the entry is refreshed in its last half and never expires.
    repo.db.set_name("v2");
    let started = tokio::time::Instant::now();
    let mut saw_v2 = false;
    while started.elapsed() < Duration::from_secs(9) {
        saw_v2 |= repo.hot(1).await.unwrap().name == "v2";
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_v2, "a refresh brought the database's new value");
    let stats = repo.cache.stats().total;
    assert_eq!(stats.misses, 1, "only the first read missed: {stats:?}");
    assert!(stats.refresh_aheads >= 2, "{stats:?}");
    assert_eq!(repo.db.loads(), 1 + stats.refresh_aheads, "{stats:?}");
    assert_eq!(repo.clones(), repo.db.loads(), "one clone per load");
    assert!(
        raw_get(&server, "hot", "hot:1").await.is_some(),
        "refreshes write L2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_soft_timeout_a_slow_load_answers_stale_and_fills_the_cache() {
    let server = RedisServer::start();
    let repo = Repo::new(&server, "soft").await;
    assert_eq!(repo.slow("lamp").await.unwrap().name, "v1");
    // Expired, within the stale window.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    repo.db.set_name("v2");
    repo.db.slow.store(true, Ordering::SeqCst);
    let served = repo.slow("lamp").await.unwrap();
    assert_eq!(served.name, "v1", "the stale value, past the soft timeout");
    assert_eq!(repo.cache.stats().total.soft_timeouts, 1);
    // The 2 s load goes on in the background and fills the cache.
    repo.db.slow.store(false, Ordering::SeqCst);
    let r = &repo;
    let filled = eventually(Duration::from_secs(10), || async move {
        r.cache.stats().total.loads == 2 && r.slow("lamp").await.unwrap().name == "v2"
    })
    .await;
    assert!(filled, "{:?}", repo.cache.stats().total);
    assert_eq!(
        repo.db.loads(),
        2,
        "the background load served the next reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_hard_timeout_a_load_is_abandoned_for_the_stale_value() {
    let server = RedisServer::start();
    let repo = Repo::new(&server, "hard").await;
    assert_eq!(repo.stuck(1).await.unwrap().name, "v1");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    repo.db.set_name("v2");
    repo.db.slow.store(true, Ordering::SeqCst);
    assert_eq!(repo.stuck(1).await.unwrap().name, "v1", "the stale value");
    let stats = repo.cache.stats().total;
    assert_eq!(stats.hard_timeouts, 1, "{stats:?}");
    assert_eq!(
        repo.clones(),
        0,
        "a hard timeout alone borrows: nothing cloned"
    );
}

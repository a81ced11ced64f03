//! Shared pieces of the cache-core integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
#![allow(dead_code)]

use std::time::Duration;

use cache_core::{Cache, CacheBuilder, Pattern, PatternConfig, TtlPolicy};
use redis::AsyncCommands;
use tiercache_tests::RedisServer;

/// A builder on `server` with short timeouts, so fault tests run quickly.
pub fn builder(server: &RedisServer, namespace: &str) -> CacheBuilder {
    Cache::builder()
        .namespace(namespace)
        .redis_url(server.url())
        .redis_timeout(Duration::from_millis(150))
        .redis_connect_timeout(Duration::from_millis(300))
        .circuit_breaker(2, Duration::from_millis(300))
}

pub async fn cache(server: &RedisServer, namespace: &str) -> Cache {
    builder(server, namespace)
        .build()
        .await
        .expect("cache builds")
}

pub fn policy(secs: u64) -> TtlPolicy {
    TtlPolicy::new(Duration::from_secs(secs))
}

pub fn register(cache: &Cache, template: &str, policy: TtlPolicy) -> Pattern {
    cache
        .register(PatternConfig::new(template, policy))
        .expect("pattern registers")
}

/// The raw bytes Redis holds for an entry key (without namespace).
pub async fn raw_get(server: &RedisServer, namespace: &str, key: &str) -> Option<Vec<u8>> {
    let mut conn = server.connection().await;
    conn.get(format!("{namespace}:k:{key}"))
        .await
        .expect("raw GET")
}

pub async fn raw_set(server: &RedisServer, namespace: &str, key: &str, bytes: &[u8]) {
    let mut conn = server.connection().await;
    let _: () = conn
        .set(format!("{namespace}:k:{key}"), bytes)
        .await
        .expect("raw SET");
}

/// Keys in Redis, not counting the backplanes' streams (`<namespace>:bp`, one per namespace in
/// use): the entries, marks and tombstones the tests count.
pub async fn dbsize(server: &RedisServer) -> u64 {
    let mut conn = server.connection().await;
    let all: u64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    // A test's own small data set: KEYS is fine here (never in the library).
    let streams: Vec<String> = redis::cmd("KEYS")
        .arg("*:bp")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    all - streams.len() as u64
}

/// Polls `check` every 20 ms for up to `within`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price_cents: i64,
}

pub fn product(id: u64, name: &str) -> Product {
    Product {
        id,
        name: name.to_owned(),
        price_cents: 1999,
    }
}

/// Waits (without a response timeout) until `server` answers a PING: returns once a
/// `CLIENT PAUSE` is over.
pub async fn wait_until_answering(server: &RedisServer) {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = server
        .client()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
}

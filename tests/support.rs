//! Shared pieces of the cache-core integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
#![allow(dead_code)]

use std::time::Duration;

use cache_core::{Cache, CacheBuilder, Pattern, PatternConfig, TlsConfig, TtlPolicy};
use redis::AsyncCommands;
use tiercache_tests::RedisServer;

/// How the caches under test reach Redis. Tests written as `async fn name(transport: Transport)`
/// run over both with [`over_plain_and_tls!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `redis://`.
    Plain,
    /// `rediss://` to the server's TLS port, trusting the harness's test CA.
    Tls,
}

impl Transport {
    /// A fresh server that the caches of [`builder`] reach this way. (The raw helpers here use
    /// its plain port, as administrators.)
    pub fn start(self) -> RedisServer {
        match self {
            Transport::Plain => RedisServer::start(),
            Transport::Tls => RedisServer::start_tls(false),
        }
    }
}

/// Runs `async fn $name(transport: Transport)` as two tests, `$name::plain` and `$name::tls`
/// (tokio's test attribute arguments after the name, e.g. `flavor = "multi_thread"`).
#[macro_export]
macro_rules! over_plain_and_tls {
    ($name:ident $(, $($arg:tt)*)?) => {
        mod $name {
            use super::support::Transport;
            #[tokio::test($($($arg)*)?)]
            async fn plain() {
                super::$name(Transport::Plain).await
            }
            #[tokio::test($($($arg)*)?)]
            async fn tls() {
                super::$name(Transport::Tls).await
            }
        }
    };
}

/// A builder on `server` with short timeouts, so fault tests run quickly. A server with TLS is
/// reached over TLS (its `rediss://` URL, trusting its test CA), with longer timeouts: a call's
/// timeout covers reconnecting, and a TLS handshake in an unoptimised test build on a loaded
/// machine can take longer than 150 ms (then the circuit opened before the test began).
pub fn builder(server: &RedisServer, namespace: &str) -> CacheBuilder {
    let builder = Cache::builder().namespace(namespace);
    let (builder, op_timeout, connect_timeout) = match server.tls_port() {
        None => (builder.redis_url(server.url()), 150, 300),
        Some(_) => (
            builder
                .redis_url(server.tls_url())
                .redis_tls(TlsConfig::new().ca_pem(server.certificates().ca_pem.clone())),
            1_000,
            2_000,
        ),
    };
    builder
        .redis_timeout(Duration::from_millis(op_timeout))
        .redis_connect_timeout(Duration::from_millis(connect_timeout))
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

//! Starts the catalog service in-process on a free port, against a fresh database with a small
//! generated catalog (a SQLite file, or a PostgreSQL database of its own: see [`Backend`] and
//! [`on_both_backends!`]), optionally with a real redis-server as L2. [`process`] runs the real
//! binary as processes of their own instead.

#![allow(dead_code)]

pub mod process;

use catalog::{Config, Limits, Server};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tiercache_tests::RedisServer;

/// Products and categories of the test catalog.
pub const PRODUCTS: u32 = 2_000;
pub const CATEGORIES: u32 = 40;

/// The database a test's service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The backend of the test running in this task (set by [`on_both_backends!`]); SQLite when
    /// unset.
    pub static BACKEND: Backend;
}

/// The backend of the current test.
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// The PostgreSQL server the tests use (`DATABASE_URL`, set by scripts/test.sh), if any. Without
/// it the PostgreSQL variant of a test fails under CI (`CI` set) and is skipped otherwise.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "DATABASE_URL is not set: the PostgreSQL variants of the catalog tests need a \
                 PostgreSQL server (scripts/test.sh starts one)"
            );
            eprintln!("DATABASE_URL not set: skipping the PostgreSQL variant of this test");
            None
        }
    }
}

/// Each test written inside runs twice: `name::sqlite` and `name::postgres` (the latter on a
/// database of its own on the server at `DATABASE_URL`; see [`postgres_url`]).
#[macro_export]
macro_rules! on_both_backends {
    ($(#[tokio::test $($args:tt)*] $(#[$meta:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test $($args)*]
            $(#[$meta])*
            async fn sqlite() {
                $crate::support::BACKEND
                    .scope($crate::support::Backend::Sqlite, async $body)
                    .await
            }

            #[tokio::test $($args)*]
            $(#[$meta])*
            async fn postgres() {
                if $crate::support::postgres_url().is_none() {
                    return;
                }
                $crate::support::BACKEND
                    .scope($crate::support::Backend::Postgres, async $body)
                    .await
            }
        }
    )*};
}

/// A PostgreSQL database created for one test, dropped with it.
#[derive(Debug)]
pub struct PostgresDatabase {
    server: String,
    name: String,
}

impl PostgresDatabase {
    /// `CREATE DATABASE catalog_test_<random>` on the server at `server_url`.
    pub async fn create(server_url: &str) -> PostgresDatabase {
        let name = format!("catalog_test_{:016x}", rand::random::<u64>());
        let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to DATABASE_URL: {e}"));
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        PostgresDatabase {
            server: server_url.to_owned(),
            name,
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server).expect("DATABASE_URL is a URL");
        url.set_path(&self.name);
        url.to_string()
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime: a thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

pub struct TestService {
    pub server: Server,
    pub redis: Option<RedisServer>,
    pub client: reqwest::Client,
    /// The PostgreSQL database of a test on that backend (declared after `server`, so dropped
    /// after it has stopped).
    pub postgres: Option<PostgresDatabase>,
    _dir: TempDir,
}

impl TestService {
    /// With a redis-server of its own as L2.
    pub async fn with_redis() -> TestService {
        let redis = RedisServer::start();
        let url = redis.url();
        TestService::start(Some(redis), Some(url)).await
    }

    /// `REDIS_URL` pointing at a redis-server that is stopped (its port free): the service must
    /// start all the same. `redis` is that server, for a `restart()`.
    pub async fn with_redis_down() -> TestService {
        let mut redis = RedisServer::start();
        let url = redis.url();
        redis.stop();
        TestService::start(Some(redis), Some(url)).await
    }

    /// L1 only.
    pub async fn without_redis() -> TestService {
        TestService::start(None, None).await
    }

    /// L1 only, with these server limits.
    pub async fn with_limits(limits: Limits) -> TestService {
        TestService::start_with(None, None, limits).await
    }

    async fn start(redis: Option<RedisServer>, url: Option<String>) -> TestService {
        TestService::start_with(redis, url, Limits::DEFAULT).await
    }

    async fn start_with(
        redis: Option<RedisServer>,
        url: Option<String>,
        limits: Limits,
    ) -> TestService {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = match backend() {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let url = postgres_url().expect("DATABASE_URL");
                Some(PostgresDatabase::create(&url).await)
            }
        };
        let mut config = match &postgres {
            None => Config::for_database(dir.path().join("catalog.sqlite3")),
            Some(db) => Config::for_database(db.url()),
        };
        config.products = PRODUCTS;
        config.categories = CATEGORIES;
        config.redis_url = url;
        config.limits = limits;
        config.namespace = "catalog-test".to_owned();
        let server = Server::start(&config, false).await.expect("server starts");
        TestService {
            server,
            redis,
            client: reqwest::Client::new(),
            postgres,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// GET that must answer 200; its JSON.
    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let body = r.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        (status, value)
    }

    /// `POST /products/{product}/variants/{variant}/stock` with `{"delta": delta}`.
    pub async fn change_stock(
        &self,
        product: i64,
        variant: i64,
        delta: i64,
    ) -> (StatusCode, Value) {
        let path = format!("/products/{product}/variants/{variant}/stock");
        self.send(
            Method::POST,
            &path,
            Some(serde_json::json!({ "delta": delta })),
        )
        .await
    }

    /// `POST /categories/{id}` of a category named `name` under `parent`.
    pub async fn create_category(&self, id: i64, name: &str, parent: i64) -> (StatusCode, Value) {
        let body = serde_json::json!({ "name": name, "parent_id": parent });
        self.send(Method::POST, &format!("/categories/{id}"), Some(body))
            .await
    }

    /// Restarts the harness Redis and waits (10 s at most) until the service reports itself
    /// healthy again, reading a product meanwhile so that it tries Redis. `true` once it does.
    pub async fn restart_redis(&mut self) -> bool {
        self.redis.as_mut().expect("a Redis").restart();
        for _ in 0..50 {
            let _ = self.json("/products/7").await;
            if self.json("/health").await["status"] == "ok" {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        false
    }

    /// `PUT /categories/{id}` of `category` (as read) with a new parent.
    pub async fn move_category(
        &self,
        id: i64,
        category: &Value,
        parent: i64,
    ) -> (StatusCode, Value) {
        let body = serde_json::json!({
            "name": category["name"],
            "slug": category["slug"],
            "parent_id": parent,
        });
        self.send(Method::PUT, &format!("/categories/{id}"), Some(body))
            .await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("metrics")
    }

    /// The value of one sample of `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.metrics().await;
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse().expect("number"))
    }

    /// The sum of every sample of a counter family (all patterns).
    pub async fn metric_total(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.trim().parse::<f64>().expect("number"))
            .sum()
    }

    /// Loads of one key pattern so far.
    pub async fn loads(&self, pattern: &str) -> f64 {
        self.metric(
            "catalog_cache_loads_total",
            &format!("pattern=\"{pattern}\""),
        )
        .await
    }
}

/// The ids of the items of a page or list.
pub fn ids(v: &Value) -> Vec<i64> {
    let list = v.get("items").unwrap_or(v);
    list.as_array()
        .expect("array")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect()
}

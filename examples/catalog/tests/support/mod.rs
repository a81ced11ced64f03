//! Starts the catalog service in-process on a free port, against a fresh SQLite file with a small
//! generated catalog, optionally with a real redis-server as L2.

#![allow(dead_code)]

use catalog::{Config, Limits, Server};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tiercache_tests::RedisServer;

/// Products and categories of the test catalog.
pub const PRODUCTS: u32 = 2_000;
pub const CATEGORIES: u32 = 40;

pub struct TestService {
    pub server: Server,
    pub redis: Option<RedisServer>,
    pub client: reqwest::Client,
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
        let mut config = Config::for_database(dir.path().join("catalog.sqlite3"));
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

//! Three catalog processes (the real binary) on one Redis and one database behave as one
//! service, on SQLite (one file the three share) and on PostgreSQL: a write through one process
//! is seen by the next reads of the two others, and every variant of `catalog clear`, run as a
//! fourth process beside them, takes effect on all three at once (each process's L1 is told
//! through the backplane; nothing here waits for a TTL: the entries live 30 min to 1 h).
//! `clear --all` also frees the cleared entries' memory, and `/metrics` shows the backplane and
//! the fleet lease. Every wait is bounded and polls.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::process::{Running, SharedDatabase, binary, output};
use tiercache_tests::RedisServer;

/// How long a change may take to reach another process: expected within milliseconds (the
/// backplane), bounded generously for a loaded machine running three debug builds, and far below
/// every TTL involved, so that only a pushed invalidation can pass.
const BOUND: Duration = Duration::from_secs(2);

/// The fields of `PUT /products/{id}` taken from a product as read.
const PRODUCT_FIELDS: [&str; 9] = [
    "sku",
    "name",
    "description",
    "brand",
    "price",
    "category_id",
    "attributes",
    "popularity",
    "sales",
];

/// The fleet under test: three servers, the Redis and the database they share.
struct Fleet {
    servers: [Running; 3],
    db: SharedDatabase,
    redis_url: String,
    dir: tempfile::TempDir,
    _redis: RedisServer,
}

impl Fleet {
    /// Starts the first server (it creates and fills the database), then the two others.
    async fn start() -> Fleet {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().expect("dir");
        let db = SharedDatabase::create(dir.path()).await;
        let redis_url = redis.url();
        let command = || command(&db, dir.path(), &redis_url);
        let servers = [
            Running::start(command()),
            Running::start(command()),
            Running::start(command()),
        ];
        Fleet {
            servers,
            db,
            redis_url,
            dir,
            _redis: redis,
        }
    }

    /// `catalog clear <args>` as a process of its own: what it printed.
    fn clear(&self, args: &[&str]) -> String {
        let mut cmd = command(&self.db, self.dir.path(), &self.redis_url);
        cmd.arg("clear").args(args);
        let (status, text) = output(cmd);
        assert!(status.success(), "clear {args:?}: {text}");
        text
    }

    /// Every server shows `new` in `GET path` within [`BOUND`].
    async fn all_show(&self, path: &str, new: &str, after: &str) {
        for (i, server) in self.servers.iter().enumerate() {
            assert!(
                server
                    .shows(path, BOUND, |v| v.to_string().contains(new))
                    .await,
                "server {i} still serves its old {path} {BOUND:?} after {after}"
            );
        }
    }
}

/// The `catalog` binary on `db` and the Redis at `redis_url`.
fn command(db: &SharedDatabase, dir: &Path, redis_url: &str) -> Command {
    let mut cmd = db.point(binary(dir));
    cmd.env("REDIS_URL", redis_url);
    cmd
}

/// A write through server 0 (a product renamed: keys and tags), then a category created (tags
/// only): servers 1 and 2 had both cached, and see the change.
async fn writes_through_one_are_read_through_the_others(fleet: &Fleet) {
    let [a, b, c] = &fleet.servers;
    let before = a.json("/products/7").await["product"].clone();
    for server in [b, c] {
        for _ in 0..2 {
            assert_eq!(server.json("/products/7").await["product"], before);
        }
    }
    let mut body: serde_json::Map<String, Value> = PRODUCT_FIELDS
        .iter()
        .filter_map(|f| Some(((*f).to_owned(), before.get(*f)?.clone())))
        .collect();
    body.insert("name".to_owned(), "Renamed through A".into());
    let response = reqwest::Client::new()
        .put(format!("{}/products/7", a.url))
        .json(&body)
        .send()
        .await
        .expect("PUT");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    fleet
        .all_show("/products/7", "Renamed through A", "a PUT through A")
        .await;

    for server in [b, c] {
        assert!(!server.text("/categories").await.contains("Made through A"));
    }
    let response = reqwest::Client::new()
        .post(format!("{}/categories", a.url))
        .json(&serde_json::json!({ "name": "Made through A" }))
        .send()
        .await
        .expect("POST");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    fleet
        .all_show("/categories", "Made through A", "a POST through A")
        .await;
}

/// One variant of `catalog clear`: what it is run with and says, the change made in the
/// database behind the servers' backs (`$1` is the new text), and the read that shows it.
struct ClearCase {
    args: &'static [&'static str],
    says: &'static str,
    sql: &'static str,
    new: &'static str,
    path: &'static str,
}

const CLEARS: [ClearCase; 6] = [
    ClearCase {
        args: &["--product-id", "7"],
        says: "cleared product 7",
        sql: "UPDATE products SET name = $1 WHERE id = 7",
        new: "Cleared by --product-id",
        path: "/products/7",
    },
    ClearCase {
        args: &["--products"],
        says: "tag `products`",
        sql: "UPDATE products SET name = $1 WHERE id = 8",
        new: "Cleared by --products",
        path: "/products/8",
    },
    ClearCase {
        args: &["--categories"],
        says: "tag `categories`",
        sql: "UPDATE categories SET name = $1 WHERE id = 2",
        new: "Cleared by --categories",
        path: "/categories/2",
    },
    ClearCase {
        args: &["--colors"],
        says: "tag `colors`",
        sql: "UPDATE variants SET colour = $1 WHERE id = (SELECT MIN(id) FROM variants)",
        new: "Cleared by --colors",
        path: "/colors",
    },
    ClearCase {
        // The details are served from `prod:<id>` through their response body `body:prod:<id>`.
        args: &["--pattern", "*prod:*"],
        says: "matching `*prod:*`",
        sql: "UPDATE products SET name = $1 WHERE id = 9",
        new: "Cleared by --pattern",
        path: "/products/9",
    },
    ClearCase {
        args: &["--all"],
        says: "cleared the whole namespace",
        sql: "UPDATE products SET name = $1 WHERE id = 10",
        new: "Cleared by --all",
        path: "/products/10",
    },
];

/// Each variant: every server caches the read, the database changes behind their backs (they
/// keep serving their copies: the read is cached), `catalog clear` runs, and every server shows
/// the change at once. `clear --all` says how much memory it freed.
async fn every_clear_takes_effect_on_running_servers_at_once(fleet: &Fleet) {
    for case in &CLEARS {
        for server in &fleet.servers {
            server.json(case.path).await;
        }
        let changed = fleet.db.execute(case.sql, case.new).await;
        assert_eq!(changed, 1, "{}", case.sql);
        for (i, server) in fleet.servers.iter().enumerate() {
            assert!(
                !server.text(case.path).await.contains(case.new),
                "server {i} does not cache {}",
                case.path
            );
        }
        let said = fleet.clear(case.args);
        assert!(said.contains(case.says), "clear {:?}: {said}", case.args);
        fleet
            .all_show(case.path, case.new, &format!("clear {:?}", case.args))
            .await;
        if case.args == ["--all"] {
            let freed: u64 = said
                .split("freed ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("says how much it freed: {said}"));
            assert!(freed >= 1, "{said}");
        }
    }
}

/// `/metrics` of each server: subscribed to the backplane, every message received (at least one
/// per clear, plus the writes through server 0 for the others), no resync, a lag below the bound,
/// and the fleet lease's and refresh-ahead's counters exposed.
async fn metrics_show_the_backplane_and_the_lease(fleet: &Fleet) {
    for (i, server) in fleet.servers.iter().enumerate() {
        let metric = |sample: &'static str| async move {
            server
                .metric(sample)
                .await
                .unwrap_or_else(|| panic!("server {i}: no {sample} in /metrics"))
        };
        assert_eq!(metric("catalog_cache_backplane_subscribed").await, 1.0);
        assert_eq!(metric("catalog_cache_backplane_resyncs_total").await, 0.0);
        let received =
            metric("catalog_cache_backplane_messages_total{direction=\"received\"}").await;
        let expected = CLEARS.len() + if i == 0 { 0 } else { 2 };
        assert!(
            received >= expected as f64,
            "server {i} received {received} messages"
        );
        let lag = metric("catalog_cache_backplane_lag_seconds").await;
        assert!(
            (0.0..BOUND.as_secs_f64()).contains(&lag),
            "server {i}: lag {lag}"
        );
        let text = server.text("/metrics").await;
        for family in [
            "catalog_cache_lease_waits_total{pattern=\"prod:<id>\"}",
            "catalog_cache_lease_timeouts_total{pattern=\"prod:<id>\"}",
            "catalog_cache_refresh_aheads_total{pattern=\"prod:<id>\"}",
        ] {
            assert!(text.contains(family), "server {i}: no {family}");
        }
    }
    let sent = fleet.servers[0]
        .metric("catalog_cache_backplane_messages_total{direction=\"sent\"}")
        .await
        .expect("sent");
    assert!(sent >= 2.0, "server 0 sent {sent} messages");
}

on_both_backends! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_servers_on_one_redis_and_one_database_act_as_one() {
        let fleet = Fleet::start().await;
        writes_through_one_are_read_through_the_others(&fleet).await;
        every_clear_takes_effect_on_running_servers_at_once(&fleet).await;
        metrics_show_the_backplane_and_the_lease(&fleet).await;
    }
}

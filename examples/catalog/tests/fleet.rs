//! Several catalog processes on one Redis and one database behave as one service: a write
//! through one process, or a `catalog clear` run beside them, is seen by the next read of every
//! other one (each process's L1 is told through the backplane), and `clear --all` frees the
//! cleared entries' memory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tiercache_tests::RedisServer;

/// How long a change may take to reach another process (expected: milliseconds).
const BOUND: Duration = Duration::from_secs(1);

/// The real `catalog` binary over the database in `dir` and the Redis at `redis_url`, its
/// environment cleared of the service's variables.
fn binary(dir: &Path, redis_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catalog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CATALOG_") || k == "REDIS_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("CATALOG_QUIET", "1")
        .env("CATALOG_PRODUCTS", "300")
        .env("CATALOG_CATEGORIES", "12")
        .env("CATALOG_DB", dir.join("catalog.sqlite3"))
        .env("CATALOG_LISTEN", "127.0.0.1:0")
        .env("REDIS_URL", redis_url);
    cmd
}

/// A running `catalog` server and its base URL; killed on drop.
struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("catalog starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the service says where it listens");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Running { child, url }
    }

    async fn json(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    async fn name_of(&self, product: i64) -> String {
        self.json(&format!("/products/{product}")).await["product"]["name"]
            .as_str()
            .expect("name")
            .to_owned()
    }

    /// Polls until product `id` is named `name` here; whether it was within [`BOUND`].
    async fn shows(&self, product: i64, name: &str) -> bool {
        let started = Instant::now();
        while started.elapsed() < BOUND {
            if self.name_of(product).await == name {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Renames a product in the database behind the servers' backs (as another tool would).
fn rename_in_db(dir: &Path, product: i64, name: &str) {
    let db = rusqlite::Connection::open(dir.join("catalog.sqlite3")).expect("open db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let changed = db
        .execute(
            "UPDATE products SET name = ?1 WHERE id = ?2",
            rusqlite::params![name, product],
        )
        .expect("update");
    assert_eq!(changed, 1);
}

/// `catalog clear <args>` as its own process: what it printed.
fn clear(dir: &Path, redis_url: &str, args: &[&str]) -> String {
    let out = binary(dir, redis_url)
        .arg("clear")
        .args(args)
        .output()
        .expect("catalog clear runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_redis_never_serve_what_the_other_or_clear_changed() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let url = redis.url();
    // One after the other: the first generates the database, the second opens it.
    let a = Running::start(binary(dir.path(), &url));
    let b = Running::start(binary(dir.path(), &url));

    // Both cache product 7 (twice: the second read is an L1 hit).
    let before = a.json("/products/7").await["product"].clone();
    for _ in 0..2 {
        assert_eq!(b.json("/products/7").await["product"], before);
    }

    // A write through A: B's next reads show it.
    let mut updated = before.clone();
    updated["name"] = "Renamed through A".into();
    let body: serde_json::Map<String, Value> = [
        "sku",
        "name",
        "description",
        "brand",
        "price",
        "category_id",
        "attributes",
        "popularity",
        "sales",
    ]
    .iter()
    .filter_map(|f| Some(((*f).to_owned(), updated.get(*f)?.clone())))
    .collect();
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
    assert!(
        b.shows(7, "Renamed through A").await,
        "B served its old copy"
    );

    // A change behind both servers' backs, then `catalog clear --product-id 7` in a third
    // process: both servers drop their copies at once.
    rename_in_db(dir.path(), 7, "Renamed in the database");
    assert_eq!(b.name_of(7).await, "Renamed through A", "still cached");
    let said = clear(dir.path(), &url, &["--product-id", "7"]);
    assert!(said.contains("cleared product 7"), "{said}");
    assert!(a.shows(7, "Renamed in the database").await, "A stale");
    assert!(b.shows(7, "Renamed in the database").await, "B stale");

    // `catalog clear --all`: everything, at once, and the cleared entries' memory is freed.
    for id in [8, 9] {
        a.name_of(id).await;
        b.name_of(id).await;
    }
    rename_in_db(dir.path(), 8, "Eight, renamed");
    rename_in_db(dir.path(), 9, "Nine, renamed");
    let said = clear(dir.path(), &url, &["--all"]);
    assert!(said.contains("cleared the whole namespace"), "{said}");
    let freed: u64 = said
        .split("freed ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("says how much it freed: {said}"));
    assert!(freed >= 2, "{said}");
    for server in [&a, &b] {
        assert!(server.shows(8, "Eight, renamed").await);
        assert!(server.shows(9, "Nine, renamed").await);
    }

    let metrics = reqwest::get(format!("{}/metrics", b.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let received: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("catalog_cache_backplane_messages_total{direction=\"received\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("backplane metrics: {metrics}"));
    assert!(received >= 3.0, "{metrics}");
    assert!(metrics.contains("catalog_cache_backplane_subscribed 1"));
    assert!(metrics.contains("catalog_cache_backplane_resyncs_total 0"));
}

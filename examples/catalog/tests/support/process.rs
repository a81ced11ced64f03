//! The real `catalog` binary as separate processes: a command with a clean environment
//! ([`binary`]), a running server killed on drop ([`Running`]), a command run to completion
//! ([`output`]), and the database several processes share ([`SharedDatabase`]: a SQLite file,
//! or a PostgreSQL database of its own). Every wait is bounded.

use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Backend, PostgresDatabase, backend, postgres_url};

/// Products and categories of the catalog a spawned process generates.
pub const PROCESS_PRODUCTS: &str = "300";
pub const PROCESS_CATEGORIES: &str = "12";

/// How long a spawned server may take to say where it listens.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a command run by [`output`] may take.
const OUTPUT_LIMIT: Duration = Duration::from_secs(30);

/// The real `catalog` binary over the SQLite file `catalog.sqlite3` in `dir` (its working
/// directory), listening on a free loopback port, its environment cleared of the service's
/// variables (`CATALOG_*`, `REDIS_URL`, `RUST_LOG`) so that the caller's shell cannot leak in.
pub fn binary(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catalog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CATALOG_") || k == "REDIS_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("CATALOG_QUIET", "1")
        .env("CATALOG_PRODUCTS", PROCESS_PRODUCTS)
        .env("CATALOG_CATEGORIES", PROCESS_CATEGORIES)
        .env("CATALOG_DB", dir.join("catalog.sqlite3"))
        .env("CATALOG_LISTEN", "127.0.0.1:0");
    cmd
}

/// A running `catalog` server and its base URL (`http://127.0.0.1:<port>`); killed on drop if
/// still running.
pub struct Running {
    child: Child,
    pub url: String,
}

impl Running {
    /// Spawns `cmd` (stdout piped) and waits (60 s at most) for its "catalog service on" line.
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("catalog starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(START_LIMIT)
            .expect("the service says where it listens");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Running { child, url }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal sent");
    }

    /// Waits (`limit` at most) for the process to exit; its status.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path`, which must answer 200: its body.
    pub async fn text(&self, path: &str) -> String {
        let r = reqwest::get(format!("{}{path}", self.url))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status();
        let body = r.text().await.expect("body");
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// GET `path`, which must answer 200 with JSON.
    pub async fn json(&self, path: &str) -> Value {
        let body = self.text(path).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// Polls `GET path` until `seen` holds of its body, for `limit` at most; whether it did.
    pub async fn shows(&self, path: &str, limit: Duration, seen: impl Fn(&Value) -> bool) -> bool {
        let started = Instant::now();
        loop {
            if seen(&self.json(path).await) {
                return true;
            }
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The value of the sample `name` (with its labels, as `/metrics` prints them), if present.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.text("/metrics").await;
        let prefix = format!("{sample} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().parse().expect("a number"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion (30 s at most): its status, and its stdout followed by its stderr.
pub fn output(mut cmd: Command) -> (ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + OUTPUT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {OUTPUT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "{}{}",
        out.join().expect("stdout"),
        err.join().expect("stderr")
    );
    (status, text)
}

/// The database several `catalog` processes share, on the current test's [`backend`]: the
/// SQLite file of [`binary`], or a PostgreSQL database created for the test (dropped with it).
pub enum SharedDatabase {
    Sqlite(PathBuf),
    Postgres(PostgresDatabase),
}

impl SharedDatabase {
    /// The database of a test whose processes run in `dir`.
    pub async fn create(dir: &Path) -> SharedDatabase {
        match backend() {
            Backend::Sqlite => SharedDatabase::Sqlite(dir.join("catalog.sqlite3")),
            Backend::Postgres => {
                let server = postgres_url().expect("DATABASE_URL");
                SharedDatabase::Postgres(PostgresDatabase::create(&server).await)
            }
        }
    }

    /// `cmd` pointed at this database.
    pub fn point(&self, mut cmd: Command) -> Command {
        match self {
            SharedDatabase::Sqlite(path) => cmd.env("CATALOG_DB", path),
            SharedDatabase::Postgres(db) => cmd.env("CATALOG_DB", db.url()),
        };
        cmd
    }

    /// Runs one statement behind the servers' backs (as another tool would), with `text` as its
    /// parameter `$1`; the number of rows it changed.
    pub async fn execute(&self, sql: &str, text: &str) -> u64 {
        match self {
            SharedDatabase::Sqlite(path) => {
                let db = rusqlite::Connection::open(path).expect("open db");
                db.busy_timeout(Duration::from_secs(5))
                    .expect("busy timeout");
                let changed = db
                    .execute(sql, [text])
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                u64::try_from(changed).expect("rows")
            }
            SharedDatabase::Postgres(db) => {
                let (client, connection) =
                    tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
                        .await
                        .expect("connect to the test database");
                tokio::spawn(connection);
                client
                    .execute(sql, &[&text])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }
}

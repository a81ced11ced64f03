//! The SQLite database: a writer connection and a few readers (WAL), used from blocking tasks.
//! Every write is one transaction; callers invalidate the cache only after it committed.

pub mod schema;
pub mod seed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::config::Config;

/// Number of reader connections.
const READERS: usize = 4;

/// What a database call failed with. `Clone` (the cache shares a load's error with every caller
/// that waited for it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DbError {
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input is wrong (a constraint the database checks, e.g. an unknown category).
    #[error("{0}")]
    Invalid(String),
    /// The write conflicts with the data (duplicate SKU, stock below zero, category in use).
    #[error("{0}")]
    Conflict(String),
    /// Anything else.
    #[error("database error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        match &e {
            rusqlite::Error::SqliteFailure(f, msg) if f.code == ErrorCode::ConstraintViolation => {
                DbError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()))
            }
            _ => DbError::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> DbError {
        DbError::Internal(format!("bad JSON in the database: {e}"))
    }
}

/// The database: cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// One permit per reader connection: requests wait here, not on blocking threads (a flood of
    /// reads would otherwise park hundreds of blocking threads on the few connections).
    read_permits: tokio::sync::Semaphore,
    /// One writer at a time, for the same reason.
    write_permit: tokio::sync::Semaphore,
}

/// What opening the database did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Whether the catalog was generated now (first start).
    pub generated: bool,
}

impl Db {
    /// Opens (creating, migrating and filling on first start) the database of `config`.
    pub fn open(config: &Config) -> anyhow::Result<(Db, Opened)> {
        Db::open_with(config, true)
    }

    /// Opens the existing database of `config` (migrating it), never creating or filling one:
    /// an error if the file is missing or holds no catalog. For the operations commands.
    pub fn open_existing(config: &Config) -> anyhow::Result<Db> {
        anyhow::ensure!(
            config.database.exists(),
            "database {} does not exist (the server creates and fills it on its first start: \
             `catalog serve`; or pass --database / CATALOG_DB)",
            config.database.display()
        );
        Ok(Db::open_with(config, false)?.0)
    }

    fn open_with(config: &Config, generate: bool) -> anyhow::Result<(Db, Opened)> {
        let mut writer = if generate {
            connect(&config.database)?
        } else {
            connect_existing(&config.database)?
        };
        schema::migrate(&mut writer)?;
        let empty: i64 = writer.query_row("SELECT COUNT(*) FROM categories", [], |r| r.get(0))?;
        anyhow::ensure!(
            generate || empty > 0,
            "database {} holds no catalog",
            config.database.display()
        );
        let generated = empty == 0;
        if generated {
            seed::generate(
                &mut writer,
                &seed::Plan {
                    products: config.products,
                    categories: config.categories,
                    seed: config.seed,
                    progress: !config.quiet,
                },
            )?;
        }
        let readers = (0..READERS)
            .map(|_| connect(&config.database).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let db = Db {
            inner: Arc::new(Inner {
                path: config.database.clone(),
                writer: Mutex::new(writer),
                readers,
                next: AtomicUsize::new(0),
                read_permits: tokio::sync::Semaphore::new(READERS),
                write_permit: tokio::sync::Semaphore::new(1),
            }),
        };
        Ok((db, Opened { generated }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs a read on a reader connection, on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let _permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|e| DbError::Internal(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let n = inner.readers.len();
            let start = inner.next.fetch_add(1, Ordering::Relaxed);
            for i in 0..n {
                if let Some(conn) = inner.readers[(start + i) % n].try_lock() {
                    return f(&conn);
                }
            }
            let conn = inner.readers[start % n].lock();
            f(&conn)
        })
        .await
        .map_err(|e| DbError::Internal(format!("database task failed: {e}")))?
    }

    /// Runs `f` in one write transaction, committed if `f` succeeds and rolled back otherwise.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let _permit = self
            .inner
            .write_permit
            .acquire()
            .await
            .map_err(|e| DbError::Internal(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| DbError::Internal(format!("database task failed: {e}")))?
    }

    /// A trivial query with its latency, for `/health`.
    pub async fn ping(&self) -> Result<Duration, DbError> {
        let started = std::time::Instant::now();
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        Ok(started.elapsed())
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    configure(Connection::open(path)?)
}

/// Like [`connect`], but fails instead of creating a missing file.
fn connect_existing(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::default() & !OpenFlags::SQLITE_OPEN_CREATE;
    configure(Connection::open_with_flags(path, flags)?)
}

fn configure(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32000;",
    )?;
    Ok(conn)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

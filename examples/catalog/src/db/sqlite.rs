//! The SQLite backend (the embedded default): a writer connection and a few readers (WAL), used
//! from blocking tasks. Every write is one `IMMEDIATE` transaction (one writer at a time).
//! Its migrations are in `sqlite_schema.rs`; the queries are in the repository (`repo/*.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use super::{DbError, Opened, seed, sqlite_schema};
use crate::config::Config;

/// Number of reader connections.
const READERS: usize = 4;

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

/// The SQLite database: cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteDb {
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

impl SqliteDb {
    /// Opens the database file `path` (creating it and generating the catalog of `config` on
    /// first start when `generate`; otherwise an error if the file is missing or holds no
    /// catalog), migrating it. Blocking.
    pub(super) fn open(
        path: &Path,
        config: &Config,
        generate: bool,
    ) -> anyhow::Result<(SqliteDb, Opened)> {
        anyhow::ensure!(
            generate || path.exists(),
            "database {} does not exist (the server creates and fills it on its first start: \
             `catalog serve`; or pass --database / CATALOG_DB)",
            path.display()
        );
        let mut writer = if generate {
            connect(path)?
        } else {
            connect_existing(path)?
        };
        sqlite_schema::migrate(&mut writer)?;
        let empty: i64 = writer.query_row("SELECT COUNT(*) FROM categories", [], |r| r.get(0))?;
        anyhow::ensure!(
            generate || empty > 0,
            "database {} holds no catalog",
            path.display()
        );
        let generated = empty == 0;
        if generated {
            seed::generate_sqlite(&mut writer, &seed::Plan::of(config))?;
        }
        let readers = (0..READERS)
            .map(|_| connect(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let db = SqliteDb {
            inner: Arc::new(Inner {
                path: path.to_owned(),
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

    /// [`SqliteDb::write`] as a future that owns what it needs (for `Repo::write`, which runs
    /// it in a task of its own).
    pub fn transaction<T, F>(&self, f: F) -> futures::future::BoxFuture<'static, Result<T, DbError>>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
    {
        let db = self.clone();
        Box::pin(async move { db.write(f).await })
    }

    /// A trivial query.
    pub(super) async fn ping(&self) -> Result<(), DbError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        Ok(())
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

/// WAL (readers never wait for the writer), and the file mapped into memory (`mmap_size`, up to
/// 1 GiB): a reader then reads pages from the mapping, not through SQLite's page cache, whose
/// one mutex all connections share (libsqlite3-sys builds SQLite with
/// `SQLITE_ENABLE_MEMORY_MANAGEMENT`, a single page cache for the process). Without it, warmup on
/// 100,000 products spent 3 s of its 10 s of CPU in that mutex's futex wakes.
fn configure(conn: Connection) -> rusqlite::Result<Connection> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32000;
         PRAGMA mmap_size = 1073741824;",
    )?;
    Ok(conn)
}

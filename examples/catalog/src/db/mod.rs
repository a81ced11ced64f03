//! The database behind the repository: SQLite (an embedded file, the default) or PostgreSQL,
//! chosen by `--database` / `CATALOG_DB`: a `postgres://` or `postgresql://` URL selects
//! PostgreSQL, anything else is a SQLite file path.
//!
//! - `sqlite.rs`, `sqlite_schema.rs`: the SQLite connections (a writer and readers, on blocking
//!   threads) and its migrations.
//! - `postgres.rs`, `postgres_schema.rs`: the PostgreSQL pool and its migrations (the same schema:
//!   full-text search with a `tsvector` column and a GIN index instead of FTS5).
//! - `seed.rs`: the deterministic catalog generator, writing into either (PostgreSQL by `COPY`).
//!
//! The repository (`repo/*.rs`) matches on [`Db`] where it queries: each read and write has its
//! SQLite query there and its PostgreSQL query in `repo/postgres/<concept>.rs`, with the same
//! results (orderings with the same tie-breakers, the same `f64` prices).
//!
//! PostgreSQL driver: `tokio-postgres` with a `deadpool-postgres` pool. Chosen over sqlx because
//! the catalog builds its SQL at run time (filters, sort orders) and needs none of sqlx's
//! compile-time checking or its multi-database layer, while `tokio-postgres` gives direct
//! `COPY ... FROM STDIN` (the generator), prepared-statement caching per pooled connection, and
//! compiles far less code; both are maintained and run on tokio.

pub mod postgres;
pub mod postgres_schema;
pub mod seed;
pub mod sqlite;
pub mod sqlite_schema;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, redact_url};

pub use postgres::PgDb;
pub use sqlite::SqliteDb;

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

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> DbError {
        DbError::Internal(format!("bad JSON in the database: {e}"))
    }
}

/// Where the catalog lives, as `--database` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user:password@host:port/dbname`).
    Postgres(String),
}

impl Location {
    /// The location `--database` names: a `postgres://` or `postgresql://` URL, else a file.
    pub fn of(database: &std::path::Path) -> Location {
        match database.to_str() {
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Location::Postgres(s.to_owned())
            }
            _ => Location::Sqlite(database.to_owned()),
        }
    }

    /// For logs and `/health`: the file, or the URL with its password replaced by `***`.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact_url(url),
        }
    }
}

/// The database: cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

/// What opening the database did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Whether the catalog was generated now (first start).
    pub generated: bool,
}

impl Db {
    /// Opens (creating, migrating and filling on first start) the database of `config`.
    pub async fn open(config: &Config) -> anyhow::Result<(Db, Opened)> {
        Db::open_with(config, true).await
    }

    /// Opens the existing database of `config` (migrating it), never creating or filling one:
    /// an error if it is missing or holds no catalog. For the operations commands.
    pub async fn open_existing(config: &Config) -> anyhow::Result<Db> {
        Ok(Db::open_with(config, false).await?.0)
    }

    async fn open_with(config: &Config, generate: bool) -> anyhow::Result<(Db, Opened)> {
        match Location::of(&config.database) {
            Location::Sqlite(path) => {
                let config = config.clone();
                let (db, opened) =
                    tokio::task::spawn_blocking(move || SqliteDb::open(&path, &config, generate))
                        .await??;
                Ok((Db::Sqlite(db), opened))
            }
            Location::Postgres(url) => {
                let (db, opened) = PgDb::open(&url, config, generate).await?;
                Ok((Db::Postgres(db), opened))
            }
        }
    }

    /// Where the database is, for `/health` and logs (a URL's password hidden).
    pub fn location(&self) -> String {
        match self {
            Db::Sqlite(db) => db.path().display().to_string(),
            Db::Postgres(db) => db.location(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// A trivial query with its latency, for `/health`.
    pub async fn ping(&self) -> Result<Duration, DbError> {
        let started = std::time::Instant::now();
        match self {
            Db::Sqlite(db) => db.ping().await?,
            Db::Postgres(db) => db.ping().await?,
        }
        Ok(started.elapsed())
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

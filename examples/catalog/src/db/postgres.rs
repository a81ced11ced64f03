//! The PostgreSQL backend: a `deadpool-postgres` pool of `tokio-postgres` connections (no TLS:
//! a database on the same host or network). Reads take a pooled connection (with its cache of
//! prepared statements); every write is one transaction that first takes a transaction-scoped
//! advisory lock, so writes run one at a time as SQLite's `IMMEDIATE` transactions do (the
//! checks a write makes before it changes rows, e.g. that a move makes no cycle, then hold).
//! Its migrations are in `postgres_schema.rs`; the queries in `repo/postgres/*.rs`.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{DbError, Location, Opened, postgres_schema, seed};
use crate::config::Config;

/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// How long a request waits for a pooled connection, or a new one to be made.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// The advisory lock every write transaction holds.
pub const WRITE_LOCK: i64 = 7_354_002;

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        let Some(db) = e.as_db_error() else {
            return DbError::Internal(e.to_string());
        };
        // The same words as SQLite's constraint errors.
        let column = || {
            db.detail()
                .and_then(|d| d.strip_prefix("Key ("))
                .and_then(|d| d.split_once(')'))
                .map(|(c, _)| c.to_owned())
                .unwrap_or_default()
        };
        let table = db.table().unwrap_or("");
        match *db.code() {
            SqlState::UNIQUE_VIOLATION => {
                DbError::Conflict(format!("UNIQUE constraint failed: {table}.{}", column()))
            }
            SqlState::FOREIGN_KEY_VIOLATION => {
                DbError::Conflict("FOREIGN KEY constraint failed".to_owned())
            }
            SqlState::CHECK_VIOLATION | SqlState::NOT_NULL_VIOLATION => {
                DbError::Conflict(format!("constraint failed: {}", db.message()))
            }
            _ => DbError::Internal(format!("{}: {}", db.severity(), db.message())),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> DbError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => DbError::from(e),
            e => DbError::Internal(format!("database connection pool: {e}")),
        }
    }
}

/// The PostgreSQL database: cheap to clone.
#[derive(Clone)]
pub struct PgDb {
    pool: Pool,
    /// The URL, its password hidden.
    location: String,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb")
            .field("location", &self.location)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgDb {
    /// Connects to `url`, migrates, and generates the catalog of `config` when the database
    /// holds none and `generate` (otherwise an empty database is an error).
    pub(super) async fn open(
        url: &str,
        config: &Config,
        generate: bool,
    ) -> anyhow::Result<(PgDb, Opened)> {
        let location = Location::Postgres(url.to_owned()).display();
        let pg_config = tokio_postgres::Config::from_str(url)
            .map_err(|e| anyhow::anyhow!("bad PostgreSQL URL {location}: {e}"))?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()?;
        let db = PgDb { pool, location };
        let mut client = db
            .client()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {}: {e}", db.location))?;
        postgres_schema::migrate(&mut client).await?;
        let categories: i64 = client
            .query_one("SELECT COUNT(*) FROM categories", &[])
            .await?
            .get(0);
        anyhow::ensure!(
            generate || categories > 0,
            "database {} holds no catalog",
            db.location
        );
        let generated = categories == 0;
        if generated {
            seed::generate_postgres(&mut client, &seed::Plan::of(config)).await?;
        }
        Ok((db, Opened { generated }))
    }

    /// The URL, its password hidden.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// A pooled connection.
    pub async fn client(&self) -> Result<Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// A pooled connection in a write transaction (holding the write lock): the caller commits
    /// it (`tx.commit()`); dropped uncommitted, it rolls back.
    pub async fn write_transaction(client: &mut Object) -> Result<Transaction<'_>, DbError> {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await?;
        Ok(tx)
    }

    /// A trivial query.
    pub(super) async fn ping(&self) -> Result<(), DbError> {
        self.client().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}

/// A write transaction (see [`PgDb::write_transaction`]).
pub type Transaction<'a> = deadpool_postgres::Transaction<'a>;

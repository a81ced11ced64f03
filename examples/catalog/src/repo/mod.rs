//! The repository: every read is one method whose body is the database query, cached by
//! `#[cached]`; every write is one transaction, after whose commit the cache is invalidated
//! (`Repo::write`: the transaction returns what it changed, an `Invalidates`, which names what
//! to invalidate). The cache tags are named in [`tags`].
//!
//! Each read and write matches on the database ([`Db`]): the SQLite query is here, the
//! PostgreSQL query in [`postgres`] (`repo/postgres/<concept>.rs`), with the same results.

pub mod attributes;
pub mod batch;
pub mod categories;
mod postgres;
pub mod products;
pub mod search;
pub mod stats;
pub mod tags;

use std::future::Future;

use cache_core::Cache;
use rusqlite::types::Type;
use rusqlite::{Connection, Row};

use crate::db::{Db, DbError};
use crate::domain::{Category, Product, Variant};

/// The repository: the database behind the two-tier cache. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Repo {
    pub db: Db,
    pub cache: Cache,
}

impl Repo {
    pub fn new(db: Db, cache: Cache) -> Repo {
        let repo = Repo { db, cache };
        // Before any `#[cached]` read registers `prod:<id>` without pattern tags (see `batch`).
        if let Err(e) = repo.product_pattern() {
            tracing::error!(error = %e, "the batch read's pattern did not register");
        }
        repo
    }

    /// Invalidates the listings and filters of every category in `categories` (each with its
    /// ancestors already included) and of the whole catalog.
    async fn invalidate_listings(&self, categories: &[i64]) {
        let mut ids: Vec<i64> = categories.to_vec();
        ids.push(0);
        ids.sort_unstable();
        ids.dedup();
        let listings: Vec<String> = ids.into_iter().map(tags::listing).collect();
        futures::future::join_all(listings.iter().map(|tag| self.cache.invalidate_tag(tag))).await;
    }
}

/// What a committed write changed, as far as the cache is concerned.
pub(crate) trait Invalidates: Send + Sync + 'static {
    /// Invalidates every cached read the write changed. Runs after the commit.
    fn invalidate(&self, repo: &Repo) -> impl Future<Output = ()> + Send;
}

impl Repo {
    /// Runs a write: `transaction` (one database transaction, which returns what it changed:
    /// [`crate::db::SqliteDb::transaction`] or a PostgreSQL write of [`postgres`]), then, after
    /// the commit, the invalidation of what it changed; both in a task of their own (see
    /// [`detached`]), so that they run to completion even if the caller's future is dropped.
    /// Returns what the transaction returned.
    pub(crate) async fn write<C, F>(&self, transaction: F) -> Result<C, DbError>
    where
        C: Invalidates,
        F: Future<Output = Result<C, DbError>> + Send + 'static,
    {
        let repo = self.clone();
        detached(async move {
            let change = transaction.await?;
            change.invalidate(&repo).await;
            Ok(change)
        })
        .await
    }
}

/// Runs a write (its transaction and the cache invalidation after the commit) as a task of its
/// own, and waits for it.
///
/// Why a task: the caller's future (an HTTP handler's) is dropped when the client disconnects or
/// a timeout fires. The transaction runs on a blocking thread and commits all the same, but an
/// invalidation awaited in the dropped future would never run: the cache would keep serving the
/// old data until the TTLs ran out. A spawned task is not cancelled by dropping its `JoinHandle`,
/// so once started, the write and its invalidation run to completion together.
pub(crate) async fn detached<T, F>(write: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, DbError>> + Send + 'static,
{
    tokio::spawn(write)
        .await
        .map_err(|e| DbError::Internal(format!("write task failed: {e}")))?
}

/// The columns of `products` that [`product_row`] reads, for a table aliased `p`.
pub(crate) const PRODUCT_COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.brand, p.price, \
     p.category_id, p.attributes, p.created_at, p.popularity, p.sales";

pub(crate) fn product_row(row: &Row<'_>) -> rusqlite::Result<Product> {
    let attributes: String = row.get(7)?;
    let attributes = serde_json::from_str(&attributes)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, Type::Text, Box::new(e)))?;
    Ok(Product {
        id: row.get(0)?,
        sku: row.get(1)?,
        name: row.get(2)?,
        description: row.get(3)?,
        brand: row.get(4)?,
        price: row.get(5)?,
        category_id: row.get(6)?,
        attributes,
        created_at: row.get(8)?,
        popularity: row.get(9)?,
        sales: row.get(10)?,
    })
}

pub(crate) const CATEGORY_COLUMNS: &str = "c.id, c.parent_id, c.name, c.slug, c.depth";

pub(crate) fn category_row(row: &Row<'_>) -> rusqlite::Result<Category> {
    Ok(Category {
        id: row.get(0)?,
        parent_id: row.get(1)?,
        name: row.get(2)?,
        slug: row.get(3)?,
        depth: row.get(4)?,
    })
}

pub(crate) fn variant_row(row: &Row<'_>) -> rusqlite::Result<Variant> {
    Ok(Variant {
        id: row.get(0)?,
        product_id: row.get(1)?,
        colour: row.get(2)?,
        size: row.get(3)?,
        stock: row.get(4)?,
    })
}

/// `WITH RECURSIVE` clause defining `subtree(id)`: category `?1` and its descendants.
///
/// Every recursive walk of the categories is iterative (SQLite runs a recursive CTE with a
/// queue, not a stack) and terminates even on a database edited by hand: `UNION` (not
/// `UNION ALL`) drops a row already produced, so a cycle of `parent_id`s is walked once.
pub(crate) const SUBTREE_CTE: &str = "WITH RECURSIVE subtree(id) AS (
        SELECT ?1 UNION SELECT c.id FROM categories c JOIN subtree s ON c.parent_id = s.id)";

/// Category `id` and its ancestors, nearest first; empty if it does not exist. Every ancestor,
/// however deep the database (edited by hand) makes it, so that invalidations stay exact; each
/// once, even in a cycle (`UNION`).
pub(crate) fn ancestors(conn: &Connection, id: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE up(id, parent_id) AS (
            SELECT id, parent_id FROM categories WHERE id = ?1
            UNION SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id)
         SELECT id FROM up",
    )?;
    let ids = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(ids)
}

/// Category `id` and its descendants.
pub(crate) fn subtree(conn: &Connection, id: i64) -> Result<Vec<i64>, DbError> {
    let mut stmt = conn.prepare_cached(&format!("{SUBTREE_CTE} SELECT id FROM subtree"))?;
    let ids = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(ids)
}

pub(crate) fn category_exists(conn: &Connection, id: i64) -> Result<bool, DbError> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM categories WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    Ok(n > 0)
}

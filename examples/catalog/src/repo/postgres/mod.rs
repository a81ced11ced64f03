//! The repository's PostgreSQL queries, one file per concept as in `repo/`: each function answers
//! exactly what the SQLite query of the repository method of the same name answers (the same
//! rows in the same order, ties broken alike; see `db/postgres_schema.rs` for how the schema
//! translates). The repository methods choose between the two (`match &self.db`); what decides
//! a result beyond the query (validation, error messages, invalidation) is theirs, shared.

pub mod attributes;
pub mod categories;
pub mod products;
pub mod search;
pub mod stats;

use tokio_postgres::{GenericClient, Row};

use crate::db::DbError;
use crate::domain::{Category, Product, Variant};

/// The columns of `products` that [`product_row`] reads, for a table aliased `p`.
pub(crate) const PRODUCT_COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.brand, p.price, \
     p.category_id, p.attributes::TEXT, p.created_at, p.popularity, p.sales";

pub(crate) fn product_row(row: &Row) -> Result<Product, DbError> {
    let attributes: String = row.try_get(7)?;
    Ok(Product {
        id: row.try_get(0)?,
        sku: row.try_get(1)?,
        name: row.try_get(2)?,
        description: row.try_get(3)?,
        brand: row.try_get(4)?,
        price: row.try_get(5)?,
        category_id: row.try_get(6)?,
        attributes: serde_json::from_str(&attributes)?,
        created_at: row.try_get(8)?,
        popularity: row.try_get(9)?,
        sales: row.try_get(10)?,
    })
}

pub(crate) fn products(rows: &[Row]) -> Result<Vec<Product>, DbError> {
    rows.iter().map(product_row).collect()
}

pub(crate) const CATEGORY_COLUMNS: &str = "c.id, c.parent_id, c.name, c.slug, c.depth";

pub(crate) fn category_row(row: &Row) -> Result<Category, DbError> {
    Ok(Category {
        id: row.try_get(0)?,
        parent_id: row.try_get(1)?,
        name: row.try_get(2)?,
        slug: row.try_get(3)?,
        depth: row.try_get(4)?,
    })
}

pub(crate) fn categories(rows: &[Row]) -> Result<Vec<Category>, DbError> {
    rows.iter().map(category_row).collect()
}

pub(crate) fn variant_row(row: &Row) -> Result<Variant, DbError> {
    Ok(Variant {
        id: row.try_get(0)?,
        product_id: row.try_get(1)?,
        colour: row.try_get(2)?,
        size: row.try_get(3)?,
        stock: row.try_get(4)?,
    })
}

/// A count (`BIGINT`) as the domain's `u64`.
pub(crate) fn count(row: &Row, i: usize) -> Result<u64, DbError> {
    let n: i64 = row.try_get(i)?;
    u64::try_from(n).map_err(|e| DbError::Internal(format!("negative count: {e}")))
}

/// `WITH RECURSIVE` clause defining `subtree(id)`: category `$1` and its descendants, each once
/// even in a cycle (`UNION`), as SQLite's [`super::SUBTREE_CTE`].
pub(crate) const SUBTREE_CTE: &str = "WITH RECURSIVE subtree(id) AS (
        SELECT $1::BIGINT UNION SELECT c.id FROM categories c JOIN subtree s ON c.parent_id = s.id)";

/// Category `id` and its ancestors, nearest first; empty if it does not exist (as
/// [`super::ancestors`]).
pub(crate) async fn ancestors<C: GenericClient + Sync>(
    c: &C,
    id: i64,
) -> Result<Vec<i64>, DbError> {
    let rows = c
        .query(
            "WITH RECURSIVE up(id, parent_id) AS (
                SELECT id, parent_id FROM categories WHERE id = $1
                UNION SELECT c.id, c.parent_id FROM categories c JOIN up ON c.id = up.parent_id)
             SELECT id FROM up",
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Category `id` and its descendants.
pub(crate) async fn subtree<C: GenericClient + Sync>(c: &C, id: i64) -> Result<Vec<i64>, DbError> {
    let rows = c
        .query(&format!("{SUBTREE_CTE} SELECT id FROM subtree"), &[&id])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(crate) async fn category_exists<C: GenericClient + Sync>(
    c: &C,
    id: i64,
) -> Result<bool, DbError> {
    let row = c
        .query_one("SELECT COUNT(*) FROM categories WHERE id = $1", &[&id])
        .await?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// `MAX(id) + 1` of `table`: the id SQLite gives a row inserted without one. For writes (which
/// hold the write lock, so no other write takes the same id).
pub(crate) fn next_id(table: &str) -> String {
    format!("(SELECT COALESCE(MAX(id), 0) + 1 FROM {table})")
}

//! Colours and attributes on PostgreSQL: the queries of `repo/attributes.rs` (`json_each`
//! becomes `jsonb_each_text`).

use super::{SUBTREE_CTE, count};
use crate::db::{DbError, PgDb};
use crate::domain::{AttributeStats, ColourCount};

pub async fn colours(db: &PgDb) -> Result<Vec<ColourCount>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT colour, COUNT(DISTINCT product_id) n, COUNT(*) FROM variants
             GROUP BY colour ORDER BY n DESC, colour",
        )
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(ColourCount {
                colour: r.try_get(0)?,
                products: count(r, 1)?,
                variants: count(r, 2)?,
            })
        })
        .collect()
}

/// `(name, value, count)` of every attribute value in category `cat`'s subtree, ordered as the
/// SQLite query orders them (name, most common first, value).
pub async fn category_attribute_values(
    db: &PgDb,
    cat: i64,
) -> Result<Vec<(String, Option<String>, u64)>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(&format!(
            "{SUBTREE_CTE} SELECT j.key COLLATE \"C\" k, j.value COLLATE \"C\" v, COUNT(*) n
             FROM products p, jsonb_each_text(p.attributes) j
             WHERE p.category_id IN (SELECT id FROM subtree)
             GROUP BY k, v ORDER BY k, n DESC, v"
        ))
        .await?;
    c.query(&stmt, &[&cat])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, count(r, 2)?)))
        .collect()
}

pub async fn attribute_stats(db: &PgDb) -> Result<Vec<AttributeStats>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(
            "SELECT j.key COLLATE \"C\" k, COUNT(*), COUNT(DISTINCT j.value)
             FROM products p, jsonb_each_text(p.attributes) j
             GROUP BY k ORDER BY k",
        )
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(AttributeStats {
                name: r.try_get(0)?,
                products: count(r, 1)?,
                distinct_values: count(r, 2)?,
            })
        })
        .collect()
}

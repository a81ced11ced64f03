//! Full-text search and autocomplete on PostgreSQL: the queries of `repo/search.rs`.
//!
//! Search matches what FTS5 matches (every word, the last as a prefix, in the name, brand or
//! description) through the `search` `tsvector` column and its GIN index, and ranks by
//! `ts_rank` with the weights FTS5's `bm25` is given (name 10, brand 5, description 1, as
//! 1.0 : 0.5 : 0.1), then by popularity and id as SQLite does. The rank values themselves differ
//! (`ts_rank` counts matches, `bm25` also weighs how rare a word is and how long the field is),
//! so results tied on words found in the same fields come in the same order, while others may
//! come in another (both put name matches first).

use super::{PRODUCT_COLUMNS, SUBTREE_CTE, count, products};
use crate::db::{DbError, PgDb};
use crate::domain::{Page, Product, SearchQuery};
use crate::repo::search::SUGGESTIONS;

/// `ts_rank`'s weights, `{D, C, B, A}`: description C, brand B, name A.
const WEIGHTS: &str = "'{0, 0.1, 0.5, 1.0}'";

pub async fn search(
    db: &PgDb,
    query: &SearchQuery,
    words: &[&str],
) -> Result<Page<Product>, DbError> {
    let tsquery = ts_query(words);
    let c = db.client().await?;
    let cat = query.category.unwrap_or(0);
    let filter = if query.category.is_some() {
        " AND p.category_id IN (SELECT id FROM subtree)"
    } else {
        ""
    };
    let stmt = c
        .prepare_cached(&format!(
            "{SUBTREE_CTE} SELECT COUNT(*) FROM products p
             WHERE p.search @@ to_tsquery('simple', $2) AND $1 IS NOT NULL{filter}"
        ))
        .await?;
    let total = count(&c.query_one(&stmt, &[&cat, &tsquery]).await?, 0)?;
    let per_page = query.per_page();
    let offset = (u64::from(query.page()) - 1) * u64::from(per_page);
    let limit = i64::from(per_page);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let stmt = c
        .prepare_cached(&format!(
            "{SUBTREE_CTE} SELECT {PRODUCT_COLUMNS} FROM products p
             WHERE p.search @@ to_tsquery('simple', $2) AND $1 IS NOT NULL{filter}
             ORDER BY ts_rank({WEIGHTS}, p.search, to_tsquery('simple', $2)) DESC,
                      p.popularity DESC, p.id
             LIMIT $3 OFFSET $4"
        ))
        .await?;
    let items = products(&c.query(&stmt, &[&cat, &tsquery, &limit, &offset]).await?)?;
    Ok(Page {
        items,
        page: query.page(),
        per_page,
        total,
    })
}

/// A `tsquery` from the words of the query (alphanumeric only, so no `tsquery` syntax gets
/// through): every word quoted and required, the last one a prefix.
fn ts_query(words: &[&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(" & ");
        }
        out.push('\'');
        out.push_str(w);
        out.push('\'');
    }
    out.push_str(":*");
    out
}

/// Names starting with `prefix` (already lower-cased), as SQLite's `LIKE` on a `NOCASE` column
/// finds and orders them: ASCII case folded (`lower` in the "C" collation), each name once
/// regardless of case (the first in byte order where several differ only in case; SQLite keeps
/// any one of them).
pub async fn autocomplete(db: &PgDb, pattern: &str) -> Result<Vec<String>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT MIN(name) FROM products WHERE lower(name) LIKE $1 ESCAPE '\\'
             GROUP BY lower(name) ORDER BY lower(name) LIMIT {SUGGESTIONS}"
        ))
        .await?;
    c.query(&stmt, &[&pattern])
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_word_is_a_prefix() {
        assert_eq!(ts_query(&["red", "lam"]), "'red' & 'lam':*");
    }
}

//! Full-text search (SQLite FTS5) and autocomplete.

use cache_core::cached;
use rusqlite::params_from_iter;
use rusqlite::types::Value;

use super::{PRODUCT_COLUMNS, Repo, SUBTREE_CTE, postgres, product_row};
use crate::db::{Db, DbError};
use crate::domain::{Page, Product, SearchQuery};

/// How many suggestions autocomplete returns.
pub const SUGGESTIONS: usize = 10;

impl Repo {
    /// Products matching every word of `q` (the last one as a prefix), best match first.
    #[cached(key = "search:<query:hash>", ttl = 600, tags = ["products", "search"])]
    pub async fn search(&self, query: &SearchQuery) -> Result<Page<Product>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => {
                let words = words(&query.q);
                if words.is_empty() {
                    return Ok(Page {
                        items: Vec::new(),
                        page: query.page(),
                        per_page: query.per_page(),
                        total: 0,
                    });
                }
                return postgres::search::search(db, query, &words).await;
            }
        };
        let query = query.clone();
        db.read(move |c| {
                let Some(fts) = fts_query(&query.q) else {
                    return Ok(Page {
                        items: Vec::new(),
                        page: query.page(),
                        per_page: query.per_page(),
                        total: 0,
                    });
                };
                let mut args = vec![Value::Integer(query.category.unwrap_or(0)), Value::Text(fts)];
                let mut filter = String::new();
                if query.category.is_some() {
                    filter.push_str(" AND p.category_id IN (SELECT id FROM subtree)");
                }
                let total: u64 = c.query_row(
                    &format!(
                        "{SUBTREE_CTE} SELECT COUNT(*) FROM products_fts f JOIN products p ON p.id = f.rowid
                         WHERE products_fts MATCH ?2 AND ?1 IS NOT NULL{filter}"
                    ),
                    params_from_iter(args.iter()),
                    |r| r.get(0),
                )?;
                let per_page = query.per_page();
                let offset = (u64::from(query.page()) - 1) * u64::from(per_page);
                args.push(Value::Integer(i64::from(per_page)));
                args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
                let mut stmt = c.prepare_cached(&format!(
                    "{SUBTREE_CTE} SELECT {PRODUCT_COLUMNS} FROM products_fts f JOIN products p ON p.id = f.rowid
                     WHERE products_fts MATCH ?2 AND ?1 IS NOT NULL{filter}
                     ORDER BY bm25(products_fts, 10.0, 1.0, 5.0), p.popularity DESC, p.id
                     LIMIT ?3 OFFSET ?4"
                ))?;
                let items = stmt
                    .query_map(params_from_iter(args.iter()), product_row)?
                    .collect::<Result<_, _>>()?;
                Ok(Page {
                    items,
                    page: query.page(),
                    per_page,
                    total,
                })
            })
            .await
    }

    /// Product names starting with `prefix` (case-insensitive), alphabetically.
    pub async fn autocomplete(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        self.autocomplete_normalized(&prefix.trim().to_lowercase())
            .await
    }

    #[cached(key = "ac:<prefix>", ttl = 600, tags = ["products", "search"])]
    async fn autocomplete_normalized(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let pattern = format!("{}%", escape_like(prefix));
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::search::autocomplete(db, &pattern).await,
        };
        db.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT DISTINCT name FROM products WHERE name LIKE ?1 ESCAPE '\\'
                     ORDER BY name LIMIT {SUGGESTIONS}"
            ))?;
            let rows = stmt
                .query_map([pattern], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }
}

/// An FTS5 query from user text: every word quoted (so no FTS syntax gets through), the last one
/// a prefix. `None` when the text has no word.
fn fts_query(q: &str) -> Option<String> {
    let words = words(q);
    let (last, rest) = words.split_last()?;
    let mut out: Vec<String> = rest.iter().map(|w| format!("\"{w}\"")).collect();
    out.push(format!("\"{last}\"*"));
    Some(out.join(" "))
}

/// The words of a search query: runs of alphanumeric characters, at most 16.
fn words(q: &str) -> Vec<&str> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .collect()
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_words_and_prefixes_the_last() {
        assert_eq!(fts_query("red lamp").as_deref(), Some("\"red\" \"lamp\"*"));
        assert_eq!(
            fts_query("a\"b OR c*").as_deref(),
            Some("\"a\" \"b\" \"OR\" \"c\"*")
        );
        assert_eq!(fts_query("  ** "), None);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}

//! Batch reads: many products by id through one `get_many_or_load` (one L1 pass, one `MGET` for
//! the rest, one database call for the misses), sharing the entries of the single read
//! (`prod:<id>`, [`Repo::product`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Pattern, PatternConfig, TtlPolicy};
use rusqlite::params_from_iter;

use super::{PRODUCT_COLUMNS, Repo, postgres, product_row, tags, variant_row};
use crate::db::{Db, DbError};
use crate::domain::{Product, ProductDetail, Variant};

/// The most ids one batch may ask for.
pub const MAX_BATCH: usize = 100;

impl Repo {
    /// The pattern of [`Repo::product`]'s entries (`prod:<id>`, the same policy as its
    /// `#[cached]`, and its tag), so that batch and single reads share them. Registered by
    /// [`Repo::new`], before any read: a `#[cached]` site registers its pattern without tags
    /// (it renders its own), and keys of this pattern must carry the tag `products`.
    pub(super) fn product_pattern(&self) -> Result<Pattern, DbError> {
        let policy =
            TtlPolicy::new(Duration::from_secs(1800)).negative_ttl(Duration::from_secs(60));
        let config = PatternConfig::new("prod:<id>", policy).tag(tags::PRODUCTS);
        self.cache
            .register(config)
            .map_err(|e| DbError::Internal(format!("pattern prod:<id>: {e}")))
    }

    /// The products `ids` (each with its variants), in the order of `ids`; `None` where there is
    /// no such product. At most [`MAX_BATCH`] ids.
    pub async fn products_by_ids(
        &self,
        ids: &[i64],
    ) -> Result<Vec<Option<Arc<ProductDetail>>>, DbError> {
        if ids.len() > MAX_BATCH {
            return Err(DbError::Internal(format!(
                "a batch holds at most {MAX_BATCH} ids"
            )));
        }
        let pattern = self.product_pattern()?;
        let keys = ids
            .iter()
            .map(|id| pattern.key(&[id]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError::Internal(e.to_string()))?;
        let db = self.db.clone();
        self.cache
            .get_many_or_load(&keys, |missing: Vec<usize>| {
                let wanted: Vec<i64> = missing.iter().map(|&i| ids[i]).collect();
                async move {
                    match db {
                        Db::Sqlite(db) => db.read(move |c| details(c, &wanted)).await,
                        Db::Postgres(db) => postgres::products::details(&db, &wanted).await,
                    }
                }
            })
            .await
    }
}

/// The products `ids` with their variants, in the order of `ids`: one database call (two
/// statements on one connection).
fn details(c: &rusqlite::Connection, ids: &[i64]) -> Result<Vec<Option<ProductDetail>>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let mut stmt = c.prepare(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id IN ({marks})"
    ))?;
    let products = stmt
        .query_map(params_from_iter(ids.iter()), product_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = c.prepare(&format!(
        "SELECT id, product_id, colour, size, stock FROM variants WHERE product_id IN ({marks}) \
         ORDER BY id"
    ))?;
    let mut variants: HashMap<i64, Vec<Variant>> = HashMap::new();
    for v in stmt.query_map(params_from_iter(ids.iter()), variant_row)? {
        let v = v?;
        variants.entry(v.product_id).or_default().push(v);
    }
    Ok(assemble(ids, products, variants))
}

/// The details of `ids`, in the order of `ids` (`None` where no product was found), from the
/// products found and their variants: shared by both backends.
pub(crate) fn assemble(
    ids: &[i64],
    products: Vec<Product>,
    mut variants: HashMap<i64, Vec<Variant>>,
) -> Vec<Option<ProductDetail>> {
    let mut by_id: HashMap<i64, ProductDetail> = products
        .into_iter()
        .map(|product| {
            let variants = variants.remove(&product.id).unwrap_or_default();
            let total_stock = variants.iter().map(|v| v.stock).sum();
            let detail = ProductDetail {
                product,
                variants,
                total_stock,
            };
            (detail.product.id, detail)
        })
        .collect();
    ids.iter().map(|id| by_id.remove(id)).collect()
}

//! Colours of the variants and attributes of the products: `/colors`,
//! `/categories/{id}/attributes`, `/stats/attributes`.

use cache_core::cached;

use super::{Repo, SUBTREE_CTE, category_exists, postgres};
use crate::db::{Db, DbError};
use crate::domain::{AttributeFacet, AttributeStats, ColourCount, Facet, MAX_ATTRIBUTE_VALUES};

impl Repo {
    /// Every colour of the variants, with the number of products and variants that have it,
    /// most common first. Changes only when variants are created or deleted (with their
    /// product): tag `colors`.
    #[cached(key = "colors:all", ttl = 3600, tags = ["products", "colors"])]
    pub async fn colours(&self) -> Result<Vec<ColourCount>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::attributes::colours(db).await,
        };
        db.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT colour, COUNT(DISTINCT product_id) n, COUNT(*) FROM variants
                     GROUP BY colour ORDER BY n DESC, colour",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ColourCount {
                        colour: r.get(0)?,
                        products: r.get(1)?,
                        variants: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The attributes of the products in category `cat`'s subtree, by name, each with its most
    /// common values; `None` if the category does not exist. Tagged like the category's
    /// listings (`listing:<cat>`): product writes in the subtree, moves and the category's
    /// creation or deletion drop it.
    #[cached(key = "attrs:cat:<cat>", ttl = 1800, none_ttl = 60, tags = ["products", "listing:<cat>"])]
    pub async fn category_attributes(
        &self,
        cat: i64,
    ) -> Result<Option<Vec<AttributeFacet>>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => {
                if !postgres::categories::exists(db, cat).await? {
                    return Ok(None);
                }
                let rows = postgres::attributes::category_attribute_values(db, cat).await?;
                let mut out = Vec::new();
                for (name, value, count) in rows {
                    add_value(&mut out, name, value, count);
                }
                return Ok(Some(out));
            }
        };
        db.read(move |c| {
            if !category_exists(c, cat)? {
                return Ok(None);
            }
            let mut stmt = c.prepare_cached(&format!(
                "{SUBTREE_CTE} SELECT j.key, CAST(j.value AS TEXT) v, COUNT(*) n
                     FROM products p, json_each(p.attributes) j
                     WHERE p.category_id IN (SELECT id FROM subtree)
                     GROUP BY j.key, v ORDER BY j.key, n DESC, v"
            ))?;
            let mut rows = stmt.query([cat])?;
            let mut out: Vec<AttributeFacet> = Vec::new();
            while let Some(r) = rows.next()? {
                add_value(&mut out, r.get(0)?, r.get(1)?, r.get(2)?);
            }
            Ok(Some(out))
        })
        .await
    }

    /// Each attribute name over the whole catalog: how many products have it, how many distinct
    /// values it takes.
    #[cached(key = "stats:attributes", ttl = 300, tags = ["products", "stats"])]
    pub async fn attribute_stats(&self) -> Result<Vec<AttributeStats>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::attributes::attribute_stats(db).await,
        };
        db.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT j.key, COUNT(*), COUNT(DISTINCT j.value)
                     FROM products p, json_each(p.attributes) j
                     GROUP BY j.key ORDER BY j.key",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(AttributeStats {
                        name: r.get(0)?,
                        products: r.get(1)?,
                        distinct_values: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }
}

/// Adds one `(name, value, count)` row (rows come by name, most common value first) to the
/// attributes of a category.
fn add_value(out: &mut Vec<AttributeFacet>, name: String, value: Option<String>, count: u64) {
    if out.last().is_none_or(|a| a.name != name) {
        out.push(AttributeFacet {
            name,
            products: 0,
            distinct_values: 0,
            values: Vec::new(),
        });
    }
    let Some(a) = out.last_mut() else {
        return;
    };
    a.products += count;
    a.distinct_values += 1;
    if a.values.len() < MAX_ATTRIBUTE_VALUES {
        a.values.push(Facet {
            value: value.unwrap_or_default(),
            count,
        });
    }
}

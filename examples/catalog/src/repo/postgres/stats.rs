//! Statistics on PostgreSQL: the queries of `repo/stats.rs` (sums cast back to `BIGINT`, which
//! PostgreSQL widens to `NUMERIC`). Averages are taken over exact `NUMERIC` prices, then rounded to
//! `f64`: SQLite's `AVG` sums with error compensation (Kahan-Babuska-Neumaier), so its averages are
//! the correctly rounded ones, which PostgreSQL's `AVG` of `DOUBLE PRECISION` (a plain running sum)
//! misses in the last digits.

use super::count;
use crate::db::{DbError, PgDb};
use crate::domain::{CategoryPrices, CategoryStats, ProductStats};

pub async fn product_stats(db: &PgDb) -> Result<ProductStats, DbError> {
    let c = db.client().await?;
    let r = c
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT brand), COALESCE(AVG(price::NUMERIC)::FLOAT8, 0),
                    COALESCE(MIN(price), 0), COALESCE(MAX(price), 0),
                    COALESCE(SUM(sales), 0)::BIGINT
             FROM products",
            &[],
        )
        .await?;
    let v = c
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(stock), 0)::BIGINT FROM variants",
            &[],
        )
        .await?;
    Ok(ProductStats {
        products: count(&r, 0)?,
        variants: count(&v, 0)?,
        total_stock: v.try_get(1)?,
        brands: count(&r, 1)?,
        average_price: r.try_get(2)?,
        min_price: r.try_get(3)?,
        max_price: r.try_get(4)?,
        total_sales: r.try_get(5)?,
    })
}

pub async fn price_stats(db: &PgDb) -> Result<Vec<CategoryPrices>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(
            "WITH RECURSIVE root_of(id, root) AS (
                SELECT id, id FROM categories WHERE parent_id IS NULL
                UNION ALL SELECT c.id, r.root FROM categories c JOIN root_of r ON c.parent_id = r.id)
             SELECT r.id, r.name, COUNT(p.id), COALESCE(MIN(p.price), 0),
                    COALESCE(MAX(p.price), 0), COALESCE(AVG(p.price::NUMERIC)::FLOAT8, 0)
             FROM categories r
             JOIN root_of ro ON ro.root = r.id
             LEFT JOIN products p ON p.category_id = ro.id
             WHERE r.parent_id IS NULL
             GROUP BY r.id ORDER BY r.id",
        )
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(CategoryPrices {
                category_id: r.try_get(0)?,
                name: r.try_get(1)?,
                products: count(r, 2)?,
                min_price: r.try_get(3)?,
                max_price: r.try_get(4)?,
                average_price: r.try_get(5)?,
            })
        })
        .collect()
}

pub async fn category_stats(db: &PgDb) -> Result<CategoryStats, DbError> {
    let c = db.client().await?;
    let r = c
        .query_one(
            "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE parent_id IS NULL),
                    (SELECT COUNT(*) FROM categories x
                      WHERE NOT EXISTS (SELECT 1 FROM categories y WHERE y.parent_id = x.id)),
                    COALESCE(MAX(depth), 0)
             FROM categories",
            &[],
        )
        .await?;
    Ok(CategoryStats {
        categories: count(&r, 0)?,
        roots: count(&r, 1)?,
        leaves: count(&r, 2)?,
        max_depth: r.try_get(3)?,
    })
}

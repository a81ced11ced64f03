//! Catalog statistics.

use cache_core::cached;

use super::{Repo, postgres};
use crate::db::{Db, DbError};
use crate::domain::{CategoryPrices, CategoryStats, ProductStats, Stats};

impl Repo {
    /// Product and category statistics.
    pub async fn stats(&self) -> Result<Stats, DbError> {
        let (products, categories, price_by_category) = futures::try_join!(
            self.product_stats(),
            self.category_stats(),
            self.price_stats()
        )?;
        Ok(Stats {
            products,
            categories,
            price_by_category,
        })
    }

    /// Counts over products, variants and stock. (`stock`: the one statistic a stock change
    /// alters.)
    #[cached(key = "stats:products", ttl = 300, tags = ["products", "stats", "stock"])]
    pub async fn product_stats(&self) -> Result<ProductStats, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::stats::product_stats(db).await,
        };
        db
            .read(|c| {
                let (products, brands, average_price, min_price, max_price, total_sales) = c
                    .query_row(
                        "SELECT COUNT(*), COUNT(DISTINCT brand), COALESCE(AVG(price), 0),
                                COALESCE(MIN(price), 0), COALESCE(MAX(price), 0), COALESCE(SUM(sales), 0)
                         FROM products",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                    )?;
                let (variants, total_stock) = c.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(stock), 0) FROM variants",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                Ok(ProductStats {
                    products,
                    variants,
                    total_stock,
                    brands,
                    average_price,
                    min_price,
                    max_price,
                    total_sales,
                })
            })
            .await
    }

    /// Price statistics per root category, over its whole subtree (a bounded list: one entry per
    /// root). Changes with product writes (price, category) and category moves: tag `stats`.
    #[cached(key = "stats:prices", ttl = 300, tags = ["products", "categories", "stats"])]
    pub async fn price_stats(&self) -> Result<Vec<CategoryPrices>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::stats::price_stats(db).await,
        };
        db
            .read(|c| {
                let mut stmt = c.prepare_cached(
                    "WITH RECURSIVE root_of(id, root) AS (
                        SELECT id, id FROM categories WHERE parent_id IS NULL
                        UNION ALL SELECT c.id, r.root FROM categories c JOIN root_of r ON c.parent_id = r.id)
                     SELECT r.id, r.name, COUNT(p.id), COALESCE(MIN(p.price), 0),
                            COALESCE(MAX(p.price), 0), COALESCE(AVG(p.price), 0)
                     FROM categories r
                     JOIN root_of ro ON ro.root = r.id
                     LEFT JOIN products p ON p.category_id = ro.id
                     WHERE r.parent_id IS NULL
                     GROUP BY r.id ORDER BY r.id",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(CategoryPrices {
                            category_id: r.get(0)?,
                            name: r.get(1)?,
                            products: r.get(2)?,
                            min_price: r.get(3)?,
                            max_price: r.get(4)?,
                            average_price: r.get(5)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Counts over the category tree.
    #[cached(key = "stats:categories", ttl = 300, tags = ["categories", "stats"])]
    pub async fn category_stats(&self) -> Result<CategoryStats, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::stats::category_stats(db).await,
        };
        db
            .read(|c| {
                let stats = c.query_row(
                    "SELECT COUNT(*),
                            SUM(parent_id IS NULL),
                            (SELECT COUNT(*) FROM categories x
                              WHERE NOT EXISTS (SELECT 1 FROM categories y WHERE y.parent_id = x.id)),
                            COALESCE(MAX(depth), 0)
                     FROM categories",
                    [],
                    |r| {
                        Ok(CategoryStats {
                            categories: r.get(0)?,
                            roots: r.get::<_, Option<u64>>(1)?.unwrap_or(0),
                            leaves: r.get(2)?,
                            max_depth: r.get(3)?,
                        })
                    },
                )?;
                Ok(stats)
            })
            .await
    }
}

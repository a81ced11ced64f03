//! Catalog statistics.

use cache_core::cached;

use super::Repo;
use crate::db::DbError;
use crate::domain::{CategoryStats, ProductStats, Stats};

impl Repo {
    /// Product and category statistics.
    pub async fn stats(&self) -> Result<Stats, DbError> {
        let (products, categories) =
            futures::try_join!(self.product_stats(), self.category_stats())?;
        Ok(Stats {
            products,
            categories,
        })
    }

    /// Counts over products, variants and stock.
    #[cached(key = "stats:products", ttl = 300, tags = ["products", "stats"])]
    pub async fn product_stats(&self) -> Result<ProductStats, DbError> {
        self.db
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

    /// Counts over the category tree.
    #[cached(key = "stats:categories", ttl = 300, tags = ["categories", "stats"])]
    pub async fn category_stats(&self) -> Result<CategoryStats, DbError> {
        self.db
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

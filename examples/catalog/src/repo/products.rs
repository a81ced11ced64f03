//! Products: detail, by SKU, variants, recommendations, listings, rankings, filters; writes and
//! stock changes.

use cache_core::{cache_evict, cached};
use futures::future::join_all;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{
    Invalidates, PRODUCT_COLUMNS, Repo, SUBTREE_CTE, ancestors, category_exists, postgres,
    product_row, tags, variant_row,
};
use crate::db::{Db, DbError, now_secs};
use crate::domain::{
    Facet, Filters, ListQuery, MAX_STOCK, Page, Product, ProductDetail, ProductInput, StockChange,
    StockMovement, Variant,
};

/// How many products the rankings (top sellers, new arrivals, most popular) hold.
pub const RANKING_SIZE: i64 = 20;

/// What a product write changed, for invalidation.
#[derive(Debug, Default)]
pub(super) struct ProductChange {
    pub(super) id: i64,
    /// SKUs whose lookups change: the old and the new one.
    pub(super) skus: Vec<String>,
    /// Categories whose listings change (with their ancestors): old and new.
    pub(super) categories: Vec<i64>,
    pub(super) detail: Option<ProductDetail>,
    /// Whether variants were created or deleted (the colours change).
    pub(super) variants: bool,
}

/// After a committed product write: the product's own keys, and every list that can show it.
/// Independent invalidations, run at once (see [`StockChanged`]'s).
impl Invalidates for ProductChange {
    async fn invalidate(&self, repo: &Repo) {
        let product = tags::product(self.id);
        let colours = self.variants.then_some(tags::COLORS);
        let list_tags = tags::PRODUCT_WRITE.iter().copied().chain(colours);
        futures::join!(
            repo.evict_product_detail(self.id),
            repo.cache.invalidate_tag(&product),
            repo.evict_variants(self.id),
            repo.invalidate_listings(&self.categories),
            join_all(self.skus.iter().map(|sku| repo.evict_product_sku(sku))),
            join_all(list_tags.map(|tag| repo.cache.invalidate_tag(tag))),
        );
    }
}

/// What a stock change changed.
#[derive(Debug)]
pub(super) struct StockChanged {
    /// The product and its SKU.
    pub(super) id: i64,
    pub(super) sku: String,
    pub(super) movement: StockMovement,
}

/// What shows stock: the product (detail and by SKU), its variants, the product statistics (tag
/// `stock`; the other statistics do not show stock). The invalidations are independent and run
/// at once, so that their Redis round trips overlap: one after the other, a stock change under
/// the load test's traffic took 51 ms on average (each invalidation a round trip or two, each
/// waiting its turn behind the write-backs in flight), against 1.8 ms without Redis.
impl Invalidates for StockChanged {
    async fn invalidate(&self, repo: &Repo) {
        let product = tags::product(self.id);
        futures::join!(
            repo.evict_product_detail(self.id),
            repo.cache.invalidate_tag(&product),
            repo.evict_product_sku(&self.sku),
            repo.evict_variants(self.id),
            repo.cache.invalidate_tag(tags::STOCK),
        );
    }
}

impl Repo {
    /// One product with its variants.
    #[cached(key = "prod:<id>", ttl = 1800, none_ttl = 60, tags = ["products"])]
    pub async fn product(&self, id: i64) -> Result<Option<ProductDetail>, DbError> {
        match &self.db {
            Db::Sqlite(db) => {
                db.read(move |c| detail(c, "p.id = ?1", Value::Integer(id)))
                    .await
            }
            Db::Postgres(db) => postgres::products::product(db, id).await,
        }
    }

    /// One product by SKU.
    #[cached(key = "prod:sku:<sku>", ttl = 1800, none_ttl = 60, tags = ["products"])]
    pub async fn product_by_sku(&self, sku: &str) -> Result<Option<ProductDetail>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::products::product_by_sku(db, sku).await,
        };
        let sku = sku.to_owned();
        db.read(move |c| detail(c, "p.sku = ?1", Value::Text(sku)))
            .await
    }

    /// The variants of a product (`None` if the product does not exist).
    #[cached(key = "variants:<id>", ttl = 900, none_ttl = 60, tags = ["products"])]
    pub async fn variants(&self, id: i64) -> Result<Option<Vec<Variant>>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::products::variants(db, id).await,
        };
        db.read(move |c| {
            if !product_exists(c, id)? {
                return Ok(None);
            }
            Ok(Some(variants_of(c, id)?))
        })
        .await
    }

    /// Products like this one: same category, closest in price, most popular first.
    #[cached(key = "recs:<id>", ttl = 1200, none_ttl = 60, tags = ["products", "recs"])]
    pub async fn recommendations(&self, id: i64) -> Result<Option<Vec<Product>>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::products::recommendations(db, id).await,
        };
        db
            .read(move |c| {
                let Some((category, price)) = c
                    .query_row("SELECT category_id, price FROM products WHERE id = ?1", [id], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
                    })
                    .optional()?
                else {
                    return Ok(None);
                };
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {PRODUCT_COLUMNS} FROM products p
                     WHERE p.category_id = ?1 AND p.id != ?2
                     ORDER BY abs(p.price - ?3) / (?3 + 1) + 1.0 / (p.popularity + 10), p.id LIMIT 10"
                ))?;
                let rows = stmt
                    .query_map(params![category, id, price], product_row)?
                    .collect::<Result<_, _>>()?;
                Ok(Some(rows))
            })
            .await
    }

    /// A page of products, filtered and sorted.
    pub async fn list_products(&self, query: &ListQuery) -> Result<Page<Product>, DbError> {
        self.list_in_category(query.category.unwrap_or(0), query)
            .await
    }

    /// A listing within category `cat`'s subtree (`0`: the whole catalog).
    #[cached(key = "prods:cat:<cat>:<query:hash>", ttl = 600, tags = ["products", "listing:<cat>"])]
    async fn list_in_category(
        &self,
        cat: i64,
        query: &ListQuery,
    ) -> Result<Page<Product>, DbError> {
        let mut pages = self.pages_in_category(cat, query, 1).await?;
        pages
            .pop()
            .ok_or_else(|| DbError::Internal("a listing read no page".to_owned()))
    }

    /// `pages` consecutive pages of a listing from `query`'s page on, read by one query
    /// (uncached: what warmup reads to warm many pages at once). Each is the page that
    /// [`list_products`](Self::list_products) answers for its own `page`.
    pub async fn listing_pages(
        &self,
        query: &ListQuery,
        pages: u32,
    ) -> Result<Vec<Page<Product>>, DbError> {
        self.pages_in_category(query.category.unwrap_or(0), query, pages)
            .await
    }

    async fn pages_in_category(
        &self,
        cat: i64,
        query: &ListQuery,
        pages: u32,
    ) -> Result<Vec<Page<Product>>, DbError> {
        let query = query.clone();
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => {
                return postgres::products::list_in_category(db, cat, &query, pages).await;
            }
        };
        db.read(move |c| {
            let mut conditions = Vec::new();
            let mut args = vec![Value::Integer(cat)];
            if cat != 0 {
                if !category_exists(c, cat)? {
                    return Err(DbError::NotFound(format!("category {cat} not found")));
                }
                conditions.push("p.category_id IN (SELECT id FROM subtree)".to_owned());
            }
            if let Some(brand) = &query.brand {
                args.push(Value::Text(brand.clone()));
                conditions.push(format!("p.brand = ?{}", args.len()));
            }
            if let Some(min) = query.min_price {
                args.push(Value::Real(min));
                conditions.push(format!("p.price >= ?{}", args.len()));
            }
            if let Some(max) = query.max_price {
                args.push(Value::Real(max));
                conditions.push(format!("p.price <= ?{}", args.len()));
            }
            let filter = if conditions.is_empty() {
                // ?1 must be used: keep it in a condition that is always true.
                "WHERE ?1 IS NOT NULL".to_owned()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            let total: u64 = c.query_row(
                &format!("{SUBTREE_CTE} SELECT COUNT(*) FROM products p {filter}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let (limit, offset) = query.rows(pages);
            let sql = format!(
                "{SUBTREE_CTE} SELECT {PRODUCT_COLUMNS} FROM products p {filter}
                     ORDER BY {} LIMIT {limit} OFFSET {offset}",
                query.sort.order_by()
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let items = stmt
                .query_map(params_from_iter(args.iter()), product_row)?
                .collect::<Result<_, _>>()?;
            Ok(Page::consecutive(
                items,
                query.page(),
                query.per_page(),
                total,
                pages,
            ))
        })
        .await
    }

    /// The best-selling products. The rankings are read on every home page: refreshed ahead (in
    /// the background, from a clone of the repository: `Repo` is a few `Arc`s), they never expire
    /// under traffic.
    #[cached(key = "top:sellers", ttl = 1800, refresh_ahead = 0.8, tags = ["products", "rankings"])]
    pub async fn top_sellers(&self) -> Result<Vec<Product>, DbError> {
        self.ranking("p.sales DESC, p.id").await
    }

    /// The newest products.
    #[cached(key = "new:arrivals", ttl = 900, refresh_ahead = 0.8, tags = ["products", "rankings"])]
    pub async fn new_arrivals(&self) -> Result<Vec<Product>, DbError> {
        self.ranking("p.created_at DESC, p.id DESC").await
    }

    /// The most popular products.
    #[cached(key = "top:popular", ttl = 1800, refresh_ahead = 0.8, tags = ["products", "rankings"])]
    pub async fn most_popular(&self) -> Result<Vec<Product>, DbError> {
        self.ranking("p.popularity DESC, p.id").await
    }

    /// Ids and names of the `limit` most popular products, most popular first (uncached: what
    /// warmup walks).
    pub async fn popular_names(&self, limit: usize) -> Result<Vec<(i64, String)>, DbError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::products::popular_names(db, limit).await,
        };
        db.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name FROM products ORDER BY popularity DESC, id LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn ranking(&self, order_by: &'static str) -> Result<Vec<Product>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::products::ranking(db, order_by).await,
        };
        db.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {PRODUCT_COLUMNS} FROM products p ORDER BY {order_by} LIMIT {RANKING_SIZE}"
            ))?;
            let rows = stmt.query_map([], product_row)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Facet counts of category `cat`'s subtree (`0`: the whole catalog); `None` if the category
    /// does not exist.
    #[cached(key = "filters:<cat>", ttl = 1800, none_ttl = 60, tags = ["products", "listing:<cat>"])]
    pub async fn filters(&self, cat: i64) -> Result<Option<Filters>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::products::filters(db, cat).await,
        };
        db.read(move |c| {
            if cat != 0 && !category_exists(c, cat)? {
                return Ok(None);
            }
            let scope = if cat == 0 {
                "?1 IS NOT NULL"
            } else {
                "p.category_id IN (SELECT id FROM subtree)"
            };
            let facets = |sql: &str| -> Result<Vec<Facet>, DbError> {
                let mut stmt = c.prepare_cached(&format!("{SUBTREE_CTE} {sql}"))?;
                let rows = stmt
                    .query_map([cat], |r| {
                        Ok(Facet {
                            value: r.get(0)?,
                            count: r.get(1)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            };
            let total: u64 = c.query_row(
                &format!("{SUBTREE_CTE} SELECT COUNT(*) FROM products p WHERE {scope}"),
                [cat],
                |r| r.get(0),
            )?;
            let brands = facets(&format!(
                "SELECT p.brand, COUNT(*) n FROM products p WHERE {scope}
                     GROUP BY p.brand ORDER BY n DESC, p.brand"
            ))?;
            let price_ranges = facets(&format!(
                "SELECT CASE WHEN p.price < 10 THEN '0-10' WHEN p.price < 50 THEN '10-50'
                                 WHEN p.price < 100 THEN '50-100' WHEN p.price < 500 THEN '100-500'
                                 ELSE '500+' END AS r, COUNT(*) n
                     FROM products p WHERE {scope} GROUP BY r ORDER BY min(p.price)"
            ))?;
            let colours = facets(&format!(
                "SELECT v.colour, COUNT(DISTINCT v.product_id) n
                     FROM variants v JOIN products p ON p.id = v.product_id WHERE {scope}
                     GROUP BY v.colour ORDER BY n DESC, v.colour"
            ))?;
            let materials = facets(&format!(
                "SELECT json_extract(p.attributes, '$.material') m, COUNT(*) n
                     FROM products p WHERE {scope} AND m IS NOT NULL
                     GROUP BY m ORDER BY n DESC, m"
            ))?;
            Ok(Some(Filters {
                category: (cat != 0).then_some(cat),
                total,
                brands,
                price_ranges,
                colours,
                materials,
            }))
        })
        .await
    }

    /// Creates a product (with the given id, or the next one) and its variants.
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn create_product(
        &self,
        id: Option<i64>,
        input: ProductInput,
    ) -> Result<ProductDetail, DbError> {
        let change = self
            .write(match &self.db {
                Db::Postgres(db) => Box::pin(postgres::products::create_product(db.clone(), id, input)),
                Db::Sqlite(db) => db.transaction(move |tx| {
                if let Some(id) = id
                    && product_exists(tx, id)?
                {
                    return Err(DbError::Conflict(format!("product {id} already exists")));
                }
                let categories = ancestors(tx, input.category_id)?;
                if categories.is_empty() {
                    return Err(DbError::Invalid(format!(
                        "category {} does not exist",
                        input.category_id
                    )));
                }
                let attributes = serde_json::to_string(&input.attributes)?;
                tx.execute(
                    "INSERT INTO products (id, sku, name, description, brand, price, category_id,
                                           attributes, created_at, popularity, sales)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        id,
                        input.sku,
                        input.name,
                        input.description,
                        input.brand,
                        input.price,
                        input.category_id,
                        attributes,
                        now_secs(),
                        input.popularity,
                        input.sales
                    ],
                )?;
                let id = tx.last_insert_rowid();
                for v in &input.variants {
                    tx.execute(
                        "INSERT INTO variants (product_id, colour, size, stock) VALUES (?1, ?2, ?3, ?4)",
                        params![id, v.colour, v.size, v.stock],
                    )?;
                }
                Ok(ProductChange {
                    id,
                    skus: vec![input.sku],
                    categories,
                    detail: detail(tx, "p.id = ?1", Value::Integer(id))?,
                    variants: !input.variants.is_empty(),
                })
            })})
            .await?;
        change
            .detail
            .ok_or_else(|| DbError::Internal("product vanished".to_owned()))
    }

    /// Replaces a product's fields (its variants stay).
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn update_product(
        &self,
        id: i64,
        input: ProductInput,
    ) -> Result<ProductDetail, DbError> {
        let change = self
            .write(match &self.db {
                Db::Postgres(db) => {
                    Box::pin(postgres::products::update_product(db.clone(), id, input))
                }
                Db::Sqlite(db) => db.transaction(move |tx| {
                    let (old_sku, old_category) = old_product(tx, id)?;
                    let mut categories = ancestors(tx, input.category_id)?;
                    if categories.is_empty() {
                        return Err(DbError::Invalid(format!(
                            "category {} does not exist",
                            input.category_id
                        )));
                    }
                    categories.extend(ancestors(tx, old_category)?);
                    let attributes = serde_json::to_string(&input.attributes)?;
                    tx.execute(
                        "UPDATE products SET sku = ?1, name = ?2, description = ?3, brand = ?4,
                         price = ?5, category_id = ?6, attributes = ?7, popularity = ?8, sales = ?9
                     WHERE id = ?10",
                        params![
                            input.sku,
                            input.name,
                            input.description,
                            input.brand,
                            input.price,
                            input.category_id,
                            attributes,
                            input.popularity,
                            input.sales,
                            id
                        ],
                    )?;
                    Ok(ProductChange {
                        id,
                        skus: vec![old_sku, input.sku],
                        categories,
                        detail: detail(tx, "p.id = ?1", Value::Integer(id))?,
                        variants: false,
                    })
                }),
            })
            .await?;
        change
            .detail
            .ok_or_else(|| DbError::Internal("product vanished".to_owned()))
    }

    /// Deletes a product, its variants and their stock movements.
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn delete_product(&self, id: i64) -> Result<(), DbError> {
        self.write(match &self.db {
            Db::Postgres(db) => Box::pin(postgres::products::delete_product(db.clone(), id)),
            Db::Sqlite(db) => db.transaction(move |tx| {
                let (sku, category) = old_product(tx, id)?;
                let categories = ancestors(tx, category)?;
                tx.execute("DELETE FROM products WHERE id = ?1", [id])?;
                Ok(ProductChange {
                    id,
                    skus: vec![sku],
                    categories,
                    detail: None,
                    variants: true,
                })
            }),
        })
        .await?;
        Ok(())
    }

    /// Changes the stock of a variant, refusing to go below zero; records the movement.
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn change_stock(
        &self,
        id: i64,
        variant: i64,
        change: StockChange,
    ) -> Result<StockMovement, DbError> {
        let changed = self
            .write(match &self.db {
                Db::Postgres(db) => Box::pin(postgres::products::change_stock(db.clone(), id, variant, change)),
                Db::Sqlite(db) => db.transaction(move |tx| {
                let (sku, _) = old_product(tx, id)?;
                let stock: i64 = tx
                    .query_row(
                        "SELECT stock FROM variants WHERE id = ?1 AND product_id = ?2",
                        [variant, id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| {
                        DbError::NotFound(format!("variant {variant} of product {id} not found"))
                    })?;
                let after = stock_after(variant, stock, change.delta)?;
                tx.execute("UPDATE variants SET stock = ?1 WHERE id = ?2", [after, variant])?;
                let reason = change.reason.unwrap_or_else(|| {
                    if change.delta < 0 { "reduce" } else { "restock" }.to_owned()
                });
                let at = now_secs();
                tx.execute(
                    "INSERT INTO stock_movements (variant_id, delta, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![variant, change.delta, reason, at],
                )?;
                let movement = StockMovement {
                    id: tx.last_insert_rowid(),
                    variant_id: variant,
                    delta: change.delta,
                    reason,
                    created_at: at,
                    stock_after: after,
                };
                Ok(StockChanged { id, sku, movement })
            })})
            .await?;
        Ok(changed.movement)
    }

    /// Evicts what is cached of one product: detail, by SKU, variants, recommendations (for
    /// `catalog clear --product-id`). `false` if the product does not exist (nothing to find its
    /// SKU by; its id-keyed entries are evicted all the same).
    pub async fn evict_product(&self, id: i64) -> Result<bool, DbError> {
        let sku = match &self.db {
            Db::Sqlite(db) => {
                db.read(move |c| {
                    Ok(
                        c.query_row("SELECT sku FROM products WHERE id = ?1", [id], |r| {
                            r.get::<_, String>(0)
                        })
                        .optional()?,
                    )
                })
                .await?
            }
            Db::Postgres(db) => postgres::products::sku_of(db, id).await?,
        };
        self.evict_product_detail(id).await;
        self.cache.invalidate_tag(&tags::product(id)).await;
        self.evict_variants(id).await;
        self.evict_recommendations(id).await;
        if let Some(sku) = &sku {
            self.evict_product_sku(sku).await;
        }
        Ok(sku.is_some())
    }

    #[cache_evict(key = "recs:<id>")]
    async fn evict_recommendations(&self, id: i64) {}

    #[cache_evict(key = "prod:<id>")]
    async fn evict_product_detail(&self, id: i64) {}

    #[cache_evict(key = "prod:sku:<sku>")]
    async fn evict_product_sku(&self, sku: &str) {}

    #[cache_evict(key = "variants:<id>")]
    async fn evict_variants(&self, id: i64) {}
}

/// The stock of `variant` after adding `delta` to `stock`: a conflict below zero or above
/// [`MAX_STOCK`].
pub(super) fn stock_after(variant: i64, stock: i64, delta: i64) -> Result<i64, DbError> {
    let after = stock
        .checked_add(delta)
        .filter(|&after| after <= MAX_STOCK)
        .ok_or_else(|| {
            DbError::Conflict(format!(
                "stock of variant {variant} is {stock}: adding {delta} would exceed {MAX_STOCK}"
            ))
        })?;
    if after < 0 {
        return Err(DbError::Conflict(format!(
            "stock of variant {variant} is {stock}: cannot reduce it by {}",
            -delta
        )));
    }
    Ok(after)
}

fn product_exists(c: &Connection, id: i64) -> Result<bool, DbError> {
    let n: i64 = c.query_row("SELECT COUNT(*) FROM products WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    Ok(n > 0)
}

/// The SKU and category of an existing product.
fn old_product(c: &Connection, id: i64) -> Result<(String, i64), DbError> {
    c.query_row(
        "SELECT sku, category_id FROM products WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .ok_or_else(|| DbError::NotFound(format!("product {id} not found")))
}

fn variants_of(c: &Connection, id: i64) -> Result<Vec<Variant>, DbError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, product_id, colour, size, stock FROM variants WHERE product_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([id], variant_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The product matching `condition` (on `?1`) with its variants.
fn detail(c: &Connection, condition: &str, arg: Value) -> Result<Option<ProductDetail>, DbError> {
    let Some(product) = c
        .query_row(
            &format!("SELECT {PRODUCT_COLUMNS} FROM products p WHERE {condition}"),
            [arg],
            product_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let variants = variants_of(c, product.id)?;
    let total_stock = variants.iter().map(|v| v.stock).sum();
    Ok(Some(ProductDetail {
        product,
        variants,
        total_stock,
    }))
}

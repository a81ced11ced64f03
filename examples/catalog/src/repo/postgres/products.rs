//! Products on PostgreSQL: the queries of `repo/products.rs`.

use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::{
    PRODUCT_COLUMNS, SUBTREE_CTE, ancestors, category_exists, count, next_id, product_row,
    products, variant_row,
};
use crate::db::{DbError, PgDb, now_secs};
use crate::domain::{
    Facet, Filters, ListQuery, Page, Product, ProductDetail, ProductInput, StockChange,
    StockMovement, Variant,
};
use crate::repo::products::{ProductChange, RANKING_SIZE, StockChanged, stock_after};

pub async fn product(db: &PgDb, id: i64) -> Result<Option<ProductDetail>, DbError> {
    let c = db.client().await?;
    detail(&**c, "p.id = $1", &id).await
}

/// The products `ids` with their variants, in the order of `ids`: two statements on one
/// connection (the batch endpoint's misses).
pub async fn details(db: &PgDb, ids: &[i64]) -> Result<Vec<Option<ProductDetail>>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let c = db.client().await?;
    let found = products(
        &c.query(
            &format!("SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = ANY($1)"),
            &[&ids],
        )
        .await?,
    )?;
    let mut variants: std::collections::HashMap<i64, Vec<Variant>> = Default::default();
    for row in c
        .query(
            "SELECT id, product_id, colour, size, stock FROM variants WHERE product_id = ANY($1) \
             ORDER BY id",
            &[&ids],
        )
        .await?
        .iter()
    {
        let v = variant_row(row)?;
        variants.entry(v.product_id).or_default().push(v);
    }
    Ok(crate::repo::batch::assemble(ids, found, variants))
}

pub async fn product_by_sku(db: &PgDb, sku: &str) -> Result<Option<ProductDetail>, DbError> {
    let c = db.client().await?;
    detail(&**c, "p.sku = $1", &sku).await
}

pub async fn variants(db: &PgDb, id: i64) -> Result<Option<Vec<Variant>>, DbError> {
    let c = db.client().await?;
    if !product_exists(&**c, id).await? {
        return Ok(None);
    }
    Ok(Some(variants_of(&**c, id).await?))
}

pub async fn recommendations(db: &PgDb, id: i64) -> Result<Option<Vec<Product>>, DbError> {
    let c = db.client().await?;
    let Some(row) = c
        .query_opt(
            "SELECT category_id, price FROM products WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let (category, price): (i64, f64) = (row.try_get(0)?, row.try_get(1)?);
    // In `DOUBLE PRECISION` throughout (`1.0::FLOAT8`), as SQLite computes it.
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p
             WHERE p.category_id = $1 AND p.id != $2
             ORDER BY abs(p.price - $3) / ($3 + 1) + 1.0::FLOAT8 / (p.popularity + 10), p.id
             LIMIT 10"
        ))
        .await?;
    let rows = c.query(&stmt, &[&category, &id, &price]).await?;
    Ok(Some(products(&rows)?))
}

/// `pages` consecutive pages from `query`'s page on, read by one query.
pub async fn list_in_category(
    db: &PgDb,
    cat: i64,
    query: &ListQuery,
    pages: u32,
) -> Result<Vec<Page<Product>>, DbError> {
    let c = db.client().await?;
    let mut conditions = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(cat)];
    if cat != 0 {
        if !category_exists(&**c, cat).await? {
            return Err(DbError::NotFound(format!("category {cat} not found")));
        }
        conditions.push("p.category_id IN (SELECT id FROM subtree)".to_owned());
    }
    if let Some(brand) = &query.brand {
        args.push(Box::new(brand.clone()));
        conditions.push(format!("p.brand = ${}", args.len()));
    }
    if let Some(min) = query.min_price {
        args.push(Box::new(min));
        conditions.push(format!("p.price >= ${}", args.len()));
    }
    if let Some(max) = query.max_price {
        args.push(Box::new(max));
        conditions.push(format!("p.price <= ${}", args.len()));
    }
    let filter = if conditions.is_empty() {
        // $1 must be used: keep it in a condition that is always true.
        "WHERE $1::BIGINT IS NOT NULL".to_owned()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let params: Vec<&(dyn ToSql + Sync)> =
        args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
    let stmt = c
        .prepare_cached(&format!(
            "{SUBTREE_CTE} SELECT COUNT(*) FROM products p {filter}"
        ))
        .await?;
    let total = count(&c.query_one(&stmt, &params).await?, 0)?;
    let (limit, offset) = query.rows(pages);
    let stmt = c
        .prepare_cached(&format!(
            "{SUBTREE_CTE} SELECT {PRODUCT_COLUMNS} FROM products p {filter}
             ORDER BY {} LIMIT {limit} OFFSET {offset}",
            order_by(query.sort.order_by())
        ))
        .await?;
    let items = products(&c.query(&stmt, &params).await?)?;
    Ok(Page::consecutive(
        items,
        query.page(),
        query.per_page(),
        total,
        pages,
    ))
}

/// A listing's `ORDER BY` (written for SQLite) for PostgreSQL: the product name compares as
/// SQLite's `NOCASE` does (ASCII case folded: `lower` in the "C" collation).
fn order_by(sqlite: &str) -> String {
    sqlite.replace("p.name ASC", "lower(p.name) ASC")
}

pub async fn ranking(db: &PgDb, order_by: &str) -> Result<Vec<Product>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p ORDER BY {order_by} LIMIT {RANKING_SIZE}"
        ))
        .await?;
    products(&c.query(&stmt, &[]).await?)
}

pub async fn popular_names(db: &PgDb, limit: i64) -> Result<Vec<(i64, String)>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached("SELECT id, name FROM products ORDER BY popularity DESC, id LIMIT $1")
        .await?;
    let rows = c.query(&stmt, &[&limit]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn filters(db: &PgDb, cat: i64) -> Result<Option<Filters>, DbError> {
    let c = db.client().await?;
    if cat != 0 && !category_exists(&**c, cat).await? {
        return Ok(None);
    }
    let scope = if cat == 0 {
        "$1::BIGINT IS NOT NULL"
    } else {
        "p.category_id IN (SELECT id FROM subtree)"
    };
    let facets = async |sql: String| -> Result<Vec<Facet>, DbError> {
        let stmt = c.prepare_cached(&format!("{SUBTREE_CTE} {sql}")).await?;
        c.query(&stmt, &[&cat])
            .await?
            .iter()
            .map(|r| {
                Ok(Facet {
                    value: r.try_get(0)?,
                    count: count(r, 1)?,
                })
            })
            .collect()
    };
    let stmt = c
        .prepare_cached(&format!(
            "{SUBTREE_CTE} SELECT COUNT(*) FROM products p WHERE {scope}"
        ))
        .await?;
    let total = count(&c.query_one(&stmt, &[&cat]).await?, 0)?;
    let brands = facets(format!(
        "SELECT p.brand, COUNT(*) n FROM products p WHERE {scope}
         GROUP BY p.brand ORDER BY n DESC, p.brand"
    ))
    .await?;
    let price_ranges = facets(format!(
        "SELECT CASE WHEN p.price < 10 THEN '0-10' WHEN p.price < 50 THEN '10-50'
                     WHEN p.price < 100 THEN '50-100' WHEN p.price < 500 THEN '100-500'
                     ELSE '500+' END AS r, COUNT(*) n
         FROM products p WHERE {scope} GROUP BY r ORDER BY min(p.price)"
    ))
    .await?;
    let colours = facets(format!(
        "SELECT v.colour, COUNT(DISTINCT v.product_id) n
         FROM variants v JOIN products p ON p.id = v.product_id WHERE {scope}
         GROUP BY v.colour ORDER BY n DESC, v.colour"
    ))
    .await?;
    let materials = facets(format!(
        "SELECT p.attributes ->> 'material' COLLATE \"C\" m, COUNT(*) n
         FROM products p WHERE {scope} AND p.attributes ? 'material'
         GROUP BY m ORDER BY n DESC, m"
    ))
    .await?;
    Ok(Some(Filters {
        category: (cat != 0).then_some(cat),
        total,
        brands,
        price_ranges,
        colours,
        materials,
    }))
}

pub async fn create_product(
    db: PgDb,
    id: Option<i64>,
    input: ProductInput,
) -> Result<ProductChange, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    if let Some(id) = id
        && product_exists(&*tx, id).await?
    {
        return Err(DbError::Conflict(format!("product {id} already exists")));
    }
    let categories = ancestors(&*tx, input.category_id).await?;
    if categories.is_empty() {
        return Err(DbError::Invalid(format!(
            "category {} does not exist",
            input.category_id
        )));
    }
    let attributes = serde_json::to_string(&input.attributes)?;
    let id: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO products (id, sku, name, description, brand, price, category_id,
                                       attributes, created_at, popularity, sales)
                 VALUES (COALESCE($1, {}), $2, $3, $4, $5, $6, $7, CAST($8::TEXT AS JSONB), $9,
                         $10, $11)
                 RETURNING id",
                next_id("products")
            ),
            &[
                &id,
                &input.sku,
                &input.name,
                &input.description,
                &input.brand,
                &input.price,
                &input.category_id,
                &attributes,
                &now_secs(),
                &input.popularity,
                &input.sales,
            ],
        )
        .await?
        .try_get(0)?;
    for v in &input.variants {
        tx.execute(
            &format!(
                "INSERT INTO variants (id, product_id, colour, size, stock)
                 VALUES ({}, $1, $2, $3, $4)",
                next_id("variants")
            ),
            &[&id, &v.colour, &v.size, &v.stock],
        )
        .await?;
    }
    let detail = detail(&*tx, "p.id = $1", &id).await?;
    tx.commit().await?;
    Ok(ProductChange {
        id,
        skus: vec![input.sku],
        categories,
        detail,
        variants: !input.variants.is_empty(),
    })
}

pub async fn update_product(
    db: PgDb,
    id: i64,
    input: ProductInput,
) -> Result<ProductChange, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    let (old_sku, old_category) = old_product(&*tx, id).await?;
    let mut categories = ancestors(&*tx, input.category_id).await?;
    if categories.is_empty() {
        return Err(DbError::Invalid(format!(
            "category {} does not exist",
            input.category_id
        )));
    }
    categories.extend(ancestors(&*tx, old_category).await?);
    let attributes = serde_json::to_string(&input.attributes)?;
    tx.execute(
        "UPDATE products SET sku = $1, name = $2, description = $3, brand = $4, price = $5,
             category_id = $6, attributes = CAST($7::TEXT AS JSONB), popularity = $8, sales = $9
         WHERE id = $10",
        &[
            &input.sku,
            &input.name,
            &input.description,
            &input.brand,
            &input.price,
            &input.category_id,
            &attributes,
            &input.popularity,
            &input.sales,
            &id,
        ],
    )
    .await?;
    let detail = detail(&*tx, "p.id = $1", &id).await?;
    tx.commit().await?;
    Ok(ProductChange {
        id,
        skus: vec![old_sku, input.sku],
        categories,
        detail,
        variants: false,
    })
}

pub async fn delete_product(db: PgDb, id: i64) -> Result<ProductChange, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    let (sku, category) = old_product(&*tx, id).await?;
    let categories = ancestors(&*tx, category).await?;
    tx.execute("DELETE FROM products WHERE id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(ProductChange {
        id,
        skus: vec![sku],
        categories,
        detail: None,
        variants: true,
    })
}

pub async fn change_stock(
    db: PgDb,
    id: i64,
    variant: i64,
    change: StockChange,
) -> Result<StockChanged, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    let (sku, _) = old_product(&*tx, id).await?;
    let stock: i64 = tx
        .query_opt(
            "SELECT stock FROM variants WHERE id = $1 AND product_id = $2",
            &[&variant, &id],
        )
        .await?
        .ok_or_else(|| DbError::NotFound(format!("variant {variant} of product {id} not found")))?
        .try_get(0)?;
    let after = stock_after(variant, stock, change.delta)?;
    tx.execute(
        "UPDATE variants SET stock = $1 WHERE id = $2",
        &[&after, &variant],
    )
    .await?;
    let reason = change.reason.unwrap_or_else(|| {
        if change.delta < 0 {
            "reduce"
        } else {
            "restock"
        }
        .to_owned()
    });
    let at = now_secs();
    let movement: i64 = tx
        .query_one(
            &format!(
                "INSERT INTO stock_movements (id, variant_id, delta, reason, created_at)
                 VALUES ({}, $1, $2, $3, $4) RETURNING id",
                next_id("stock_movements")
            ),
            &[&variant, &change.delta, &reason, &at],
        )
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(StockChanged {
        id,
        sku,
        movement: StockMovement {
            id: movement,
            variant_id: variant,
            delta: change.delta,
            reason,
            created_at: at,
            stock_after: after,
        },
    })
}

/// The SKU of product `id`, if it exists.
pub async fn sku_of(db: &PgDb, id: i64) -> Result<Option<String>, DbError> {
    let c = db.client().await?;
    let row = c
        .query_opt("SELECT sku FROM products WHERE id = $1", &[&id])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

async fn product_exists<C: GenericClient + Sync>(c: &C, id: i64) -> Result<bool, DbError> {
    let row = c
        .query_one("SELECT COUNT(*) FROM products WHERE id = $1", &[&id])
        .await?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// The SKU and category of an existing product.
async fn old_product<C: GenericClient + Sync>(c: &C, id: i64) -> Result<(String, i64), DbError> {
    let row = c
        .query_opt(
            "SELECT sku, category_id FROM products WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| DbError::NotFound(format!("product {id} not found")))?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

async fn variants_of<C: GenericClient + Sync>(c: &C, id: i64) -> Result<Vec<Variant>, DbError> {
    c.query(
        "SELECT id, product_id, colour, size, stock FROM variants WHERE product_id = $1 ORDER BY id",
        &[&id],
    )
    .await?
    .iter()
    .map(variant_row)
    .collect()
}

/// The product matching `condition` (on `$1`) with its variants.
async fn detail<C: GenericClient + Sync>(
    c: &C,
    condition: &str,
    arg: &(dyn ToSql + Sync),
) -> Result<Option<ProductDetail>, DbError> {
    let Some(row) = c
        .query_opt(
            &format!("SELECT {PRODUCT_COLUMNS} FROM products p WHERE {condition}"),
            &[arg],
        )
        .await?
    else {
        return Ok(None);
    };
    let product = product_row(&row)?;
    let variants = variants_of(c, product.id).await?;
    let total_stock = variants.iter().map(|v| v.stock).sum();
    Ok(Some(ProductDetail {
        product,
        variants,
        total_stock,
    }))
}

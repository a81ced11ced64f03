//! The PostgreSQL migrations, applied in order and recorded in `catalog_schema_version`: the same
//! schema as SQLite's (`sqlite_schema.rs`), migration for migration, with these translations:
//!
//! - integers are `BIGINT` (SQLite's are 64-bit), prices `DOUBLE PRECISION` (SQLite's `REAL`:
//!   the same `f64` values, sums and averages);
//! - text is `COLLATE "C"` (byte order, as SQLite's `BINARY`), so every `ORDER BY` on text sorts
//!   alike; the product name's `NOCASE` becomes `lower(name)` in the queries (in the "C"
//!   collation `lower` folds ASCII only, as `NOCASE` does), with an index on it;
//! - `attributes` is `JSONB` (SQLite's JSON text; `json_each` becomes `jsonb_each_text`);
//! - full-text search: a generated `tsvector` column (`simple` configuration: lower-cased words,
//!   no stemming or stop words, like FTS5's `unicode61`), weighted name A, brand B, description
//!   C, with a GIN index, instead of the FTS5 table and its triggers.
//!
//! Ids are given explicitly or as `MAX(id) + 1` by the writes (as SQLite's rowid), so there are
//! no sequences to keep in step with the generated rows.

use tokio_postgres::Client;

use super::DbError;

/// Migration `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE categories (
    id        BIGINT PRIMARY KEY,
    parent_id BIGINT REFERENCES categories(id),
    name      TEXT COLLATE "C" NOT NULL,
    slug      TEXT COLLATE "C" NOT NULL UNIQUE,
    depth     BIGINT NOT NULL
);
CREATE INDEX categories_parent ON categories(parent_id);

CREATE TABLE products (
    id          BIGINT PRIMARY KEY,
    sku         TEXT COLLATE "C" NOT NULL UNIQUE,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    brand       TEXT COLLATE "C" NOT NULL,
    price       DOUBLE PRECISION NOT NULL CHECK (price >= 0),
    category_id BIGINT NOT NULL REFERENCES categories(id),
    attributes  JSONB NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    popularity  BIGINT NOT NULL DEFAULT 0,
    sales       BIGINT NOT NULL DEFAULT 0,
    search      TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', name), 'A') ||
        setweight(to_tsvector('simple', brand), 'B') ||
        setweight(to_tsvector('simple', description), 'C')) STORED
);
CREATE INDEX products_category ON products(category_id, popularity DESC);
CREATE INDEX products_brand ON products(brand);
CREATE INDEX products_price ON products(price);
CREATE INDEX products_created ON products(created_at DESC);
CREATE INDEX products_popularity ON products(popularity DESC);
CREATE INDEX products_sales ON products(sales DESC);
CREATE INDEX products_name ON products(lower(name));
CREATE INDEX products_search ON products USING GIN (search);

CREATE TABLE variants (
    id         BIGINT PRIMARY KEY,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    colour     TEXT COLLATE "C" NOT NULL,
    size       TEXT COLLATE "C" NOT NULL,
    stock      BIGINT NOT NULL CHECK (stock >= 0)
);
CREATE INDEX variants_product ON variants(product_id);
CREATE INDEX variants_colour ON variants(colour, product_id);

CREATE TABLE stock_movements (
    id         BIGINT PRIMARY KEY,
    variant_id BIGINT NOT NULL REFERENCES variants(id) ON DELETE CASCADE,
    delta      BIGINT NOT NULL,
    reason     TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX stock_movements_variant ON stock_movements(variant_id);
"#];

/// Applies the migrations not applied yet, in one transaction that holds an advisory lock (so
/// that instances starting together migrate once).
pub async fn migrate(client: &mut Client) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7354001);
         CREATE TABLE IF NOT EXISTS catalog_schema_version (version INTEGER NOT NULL);",
    )
    .await?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM catalog_schema_version",
            &[],
        )
        .await?
        .get(0);
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO catalog_schema_version (version) VALUES ($1)",
            &[&i32::try_from(i + 1).unwrap_or(i32::MAX)],
        )
        .await?;
        tracing::info!(version = i + 1, "database migrated");
    }
    tx.commit().await?;
    Ok(())
}

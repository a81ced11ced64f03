//! The SQLite migrations, applied in order and recorded in `PRAGMA user_version`. The PostgreSQL
//! schema (`postgres_schema.rs`) is the same, migration for migration.

use rusqlite::Connection;

/// Migration `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE categories (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES categories(id),
    name      TEXT NOT NULL,
    slug      TEXT NOT NULL UNIQUE,
    depth     INTEGER NOT NULL
);
CREATE INDEX categories_parent ON categories(parent_id);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL COLLATE NOCASE,
    description TEXT NOT NULL,
    brand       TEXT NOT NULL,
    price       REAL NOT NULL CHECK (price >= 0),
    category_id INTEGER NOT NULL REFERENCES categories(id),
    attributes  TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    popularity  INTEGER NOT NULL DEFAULT 0,
    sales       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX products_category ON products(category_id, popularity DESC);
CREATE INDEX products_brand ON products(brand);
CREATE INDEX products_price ON products(price);
CREATE INDEX products_created ON products(created_at DESC);
CREATE INDEX products_popularity ON products(popularity DESC);
CREATE INDEX products_sales ON products(sales DESC);
CREATE INDEX products_name ON products(name);

CREATE TABLE variants (
    id         INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    colour     TEXT NOT NULL,
    size       TEXT NOT NULL,
    stock      INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE INDEX variants_product ON variants(product_id);
CREATE INDEX variants_colour ON variants(colour, product_id);

CREATE TABLE stock_movements (
    id         INTEGER PRIMARY KEY,
    variant_id INTEGER NOT NULL REFERENCES variants(id) ON DELETE CASCADE,
    delta      INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX stock_movements_variant ON stock_movements(variant_id);

CREATE VIRTUAL TABLE products_fts USING fts5(
    name, description, brand, content = 'products', content_rowid = 'id'
);
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts(rowid, name, description, brand)
    VALUES (new.id, new.name, new.description, new.brand);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts(products_fts, rowid, name, description, brand)
    VALUES ('delete', old.id, old.name, old.description, old.brand);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE ON products BEGIN
    INSERT INTO products_fts(products_fts, rowid, name, description, brand)
    VALUES ('delete', old.id, old.name, old.description, old.brand);
    INSERT INTO products_fts(rowid, name, description, brand)
    VALUES (new.id, new.name, new.description, new.brand);
END;
"#];

/// Applies the migrations not applied yet, each in its transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

//! The deterministic catalog generator: the same plan (sizes and seed) gives the same catalog, in
//! SQLite or in PostgreSQL (the same rows, ids included). One transaction, with a progress bar:
//! SQLite through prepared statements, PostgreSQL through `COPY ... FROM STDIN` (100,000 products
//! in a few seconds).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::SinkExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};

use crate::config::Config;
use crate::domain::slugify;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    pub products: u32,
    /// Approximate: the tree has `b + b² + b³ >= categories` nodes for the smallest such `b`.
    pub categories: u32,
    pub seed: u64,
    pub progress: bool,
}

impl Plan {
    /// The plan of `config`: its sizes and seed, a progress bar unless quiet.
    pub fn of(config: &Config) -> Plan {
        Plan {
            products: config.products,
            categories: config.categories,
            seed: config.seed,
            progress: !config.quiet,
        }
    }
}

const DEPARTMENTS: &[&str] = &[
    "Electronics",
    "Home",
    "Garden",
    "Sports",
    "Fashion",
    "Toys",
    "Books",
    "Beauty",
    "Automotive",
    "Grocery",
    "Office",
    "Music",
];
const SECTIONS: &[&str] = &[
    "Essentials",
    "Outdoor",
    "Classic",
    "Kids",
    "Pro",
    "Travel",
    "Vintage",
    "Smart",
    "Eco",
    "Premium",
    "Compact",
    "Studio",
];
const KINDS: &[&str] = &[
    "Basics",
    "Accessories",
    "Sets",
    "Tools",
    "Gear",
    "Care",
    "Storage",
    "Lighting",
    "Decor",
    "Parts",
    "Kits",
    "Gifts",
];
const ADJECTIVES: &[&str] = &[
    "Ultra", "Classic", "Modern", "Rugged", "Sleek", "Compact", "Deluxe", "Smart", "Eco",
    "Vintage", "Turbo", "Silent", "Bright", "Cozy", "Swift", "Bold",
];
const NOUNS: &[&str] = &[
    "Lamp",
    "Chair",
    "Speaker",
    "Backpack",
    "Kettle",
    "Jacket",
    "Bottle",
    "Drone",
    "Mixer",
    "Headphones",
    "Blender",
    "Tent",
    "Watch",
    "Camera",
    "Sneakers",
    "Desk",
    "Router",
    "Mug",
    "Scarf",
    "Keyboard",
    "Bicycle",
    "Guitar",
    "Notebook",
    "Pillow",
];
const BRANDS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Gringotts",
    "Oceanic",
    "Vandelay",
    "Monarch",
    "Nakatomi",
    "Massive",
    "Dunder",
    "Pied Piper",
];
const COLOURS: &[&str] = &[
    "black", "white", "red", "blue", "green", "yellow", "grey", "navy", "orange", "purple",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];
const MATERIALS: &[&str] = &[
    "cotton", "steel", "wood", "plastic", "leather", "glass", "bamboo",
];
const WORDS: &[&str] = &[
    "durable",
    "lightweight",
    "everyday",
    "premium",
    "designed",
    "for",
    "comfort",
    "and",
    "style",
    "with",
    "a",
    "long",
    "lasting",
    "finish",
    "easy",
    "to",
    "clean",
    "perfect",
    "gift",
    "home",
    "office",
    "outdoor",
    "use",
    "quality",
    "materials",
];

/// 2023-01-01T00:00:00Z: generated products are created in the two years after it.
const EPOCH: i64 = 1_672_531_200;

/// One generated category.
struct GeneratedCategory {
    id: i64,
    parent_id: Option<i64>,
    name: String,
    slug: String,
    depth: i64,
}

/// One generated product with its variants (colour, size, stock).
struct GeneratedProduct {
    id: i64,
    sku: String,
    name: String,
    description: String,
    brand: &'static str,
    price: f64,
    category_id: i64,
    /// JSON text.
    attributes: String,
    created_at: i64,
    popularity: i64,
    sales: i64,
    variants: Vec<(&'static str, &'static str, i64)>,
}

/// Product `id`, drawn from `rng`, in one of `leaves`.
fn product(rng: &mut StdRng, id: i64, leaves: &[i64]) -> GeneratedProduct {
    let adjective = pick(rng, ADJECTIVES);
    let noun = pick(rng, NOUNS);
    let model: u32 = rng.random_range(100..1000);
    let name = format!("{adjective} {noun} {model}");
    let brand = pick(rng, BRANDS);
    let words: Vec<&str> = (0..rng.random_range(8..20))
        .map(|_| pick(rng, WORDS))
        .collect();
    let description = format!("The {name} by {brand}: {}.", words.join(" "));
    // Prices spread over 1..2000, most of them low.
    let price = (rng.random_range(0.0f64..1.0).powi(3) * 1999.0 + 1.0) * 100.0;
    let price = price.round() / 100.0;
    let category_id = *leaves.choose(rng).unwrap_or(&1);
    let mut attributes = BTreeMap::new();
    attributes.insert("material", pick(rng, MATERIALS).to_owned());
    attributes.insert("weight_g", rng.random_range(50..5000).to_string());
    let attributes = serde_json::to_string(&attributes).unwrap_or_else(|_| "{}".into());
    let created_at = EPOCH + rng.random_range(0..2 * 365 * 86_400);
    let popularity = (rng.random_range(0.0f64..1.0).powi(4) * 10_000.0) as i64;
    let sales = (rng.random_range(0.0f64..1.0).powi(5) * 5_000.0) as i64;
    let n = rng.random_range(1..=4);
    let colours: Vec<&'static str> = COLOURS.choose_multiple(rng, n).copied().collect();
    let variants = colours
        .into_iter()
        .map(|colour| {
            let size = pick(rng, SIZES);
            let stock: i64 = rng.random_range(0..200);
            (colour, size, stock)
        })
        .collect();
    GeneratedProduct {
        id,
        sku: format!("SKU-{id:07}"),
        name,
        description,
        brand,
        price,
        category_id,
        attributes,
        created_at,
        popularity,
        sales,
        variants,
    }
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::from(plan.products));
    bar.set_style(
        ProgressStyle::with_template(
            "generating catalog {bar:40} {pos}/{len} products ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn generated(plan: &Plan, started: std::time::Instant, backend: &str) {
    tracing::info!(
        backend,
        products = plan.products,
        categories = plan.categories,
        seed = plan.seed,
        elapsed = ?started.elapsed(),
        "catalog generated"
    );
}

/// Fills an empty, migrated SQLite database.
pub fn generate_sqlite(conn: &mut Connection, plan: &Plan) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let tx = conn.transaction()?;
    let (categories, leaves) = category_tree(plan.categories);
    {
        let mut insert = tx.prepare(
            "INSERT INTO categories (id, parent_id, name, slug, depth) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in &categories {
            insert.execute(params![c.id, c.parent_id, c.name, c.slug, c.depth])?;
        }
    }
    let bar = progress_bar(plan);
    {
        let mut insert_product = tx.prepare(
            "INSERT INTO products (id, sku, name, description, brand, price, category_id,
                                   attributes, created_at, popularity, sales)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut insert_variant = tx.prepare(
            "INSERT INTO variants (product_id, colour, size, stock) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for id in 1..=i64::from(plan.products) {
            let p = product(&mut rng, id, &leaves);
            insert_product.execute(params![
                p.id,
                p.sku,
                p.name,
                p.description,
                p.brand,
                p.price,
                p.category_id,
                p.attributes,
                p.created_at,
                p.popularity,
                p.sales
            ])?;
            for (colour, size, stock) in p.variants {
                insert_variant.execute(params![id, colour, size, stock])?;
            }
            if id % 1000 == 0 {
                bar.set_position(id as u64);
            }
        }
    }
    bar.finish_and_clear();
    tx.commit()?;
    conn.execute_batch("ANALYZE")?;
    generated(plan, started, "sqlite");
    Ok(())
}

/// Fills an empty, migrated PostgreSQL database: the same rows as [`generate_sqlite`] (variant
/// ids given in the order SQLite assigns them), streamed by `COPY ... FROM STDIN` in one
/// transaction, then `ANALYZE`.
pub async fn generate_postgres(
    client: &mut tokio_postgres::Client,
    plan: &Plan,
) -> Result<(), super::DbError> {
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let tx = client.transaction().await?;
    let (categories, leaves) = category_tree(plan.categories);
    let mut rows = String::new();
    for c in &categories {
        let parent = c.parent_id.map(|p| p.to_string());
        copy_row(
            &mut rows,
            &[
                Some(&c.id.to_string()),
                parent.as_deref(),
                Some(&c.name),
                Some(&c.slug),
                Some(&c.depth.to_string()),
            ],
        );
    }
    copy(
        &tx,
        "categories (id, parent_id, name, slug, depth)",
        vec![Bytes::from(rows)],
    )
    .await?;

    let bar = progress_bar(plan);
    let sink = tx
        .copy_in(
            "COPY products (id, sku, name, description, brand, price, category_id, attributes, \
             created_at, popularity, sales) FROM STDIN",
        )
        .await?;
    futures::pin_mut!(sink);
    let mut variants = String::new();
    let mut variant_id = 0i64;
    let mut chunk = String::new();
    for id in 1..=i64::from(plan.products) {
        let p = product(&mut rng, id, &leaves);
        copy_row(
            &mut chunk,
            &[
                Some(&p.id.to_string()),
                Some(&p.sku),
                Some(&p.name),
                Some(&p.description),
                Some(p.brand),
                Some(&p.price.to_string()),
                Some(&p.category_id.to_string()),
                Some(&p.attributes),
                Some(&p.created_at.to_string()),
                Some(&p.popularity.to_string()),
                Some(&p.sales.to_string()),
            ],
        );
        for (colour, size, stock) in p.variants {
            variant_id += 1;
            copy_row(
                &mut variants,
                &[
                    Some(&variant_id.to_string()),
                    Some(&id.to_string()),
                    Some(colour),
                    Some(size),
                    Some(&stock.to_string()),
                ],
            );
        }
        if id % 1000 == 0 {
            sink.send(Bytes::from(std::mem::take(&mut chunk))).await?;
            bar.set_position(id as u64);
        }
    }
    if !chunk.is_empty() {
        sink.send(Bytes::from(chunk)).await?;
    }
    sink.finish().await?;
    bar.finish_and_clear();
    copy(
        &tx,
        "variants (id, product_id, colour, size, stock)",
        vec![Bytes::from(variants)],
    )
    .await?;
    tx.commit().await?;
    client.batch_execute("ANALYZE").await?;
    generated(plan, started, "postgres");
    Ok(())
}

/// `COPY table (columns) FROM STDIN` of `chunks` (rows in COPY's text format).
async fn copy(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    chunks: Vec<Bytes>,
) -> Result<(), super::DbError> {
    let sink = tx.copy_in(&format!("COPY {table} FROM STDIN")).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(chunk).await?;
    }
    sink.finish().await?;
    Ok(())
}

/// Appends one row in COPY's text format: fields separated by tabs, backslashes, tabs and line
/// breaks escaped; `None` is NULL (`\N`).
fn copy_row(out: &mut String, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        let Some(field) = field else {
            out.push_str("\\N");
            continue;
        };
        for c in field.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    out.push('\n');
}

/// The category tree (three levels) and the ids of its leaves.
fn category_tree(target: u32) -> (Vec<GeneratedCategory>, Vec<i64>) {
    let target = u64::from(target.max(3));
    let mut b: u64 = 1;
    while b + b * b + b * b * b < target {
        b += 1;
    }
    let name_of = |list: &[&str], i: u64| -> String {
        let len = list.len() as u64;
        let base = list[(i % len) as usize];
        if i < len {
            base.to_owned()
        } else {
            format!("{base} {}", i / len + 1)
        }
    };
    let mut all = Vec::new();
    let mut add = |parent_id: Option<i64>, name: String, depth: i64| -> i64 {
        let id = all.len() as i64 + 1;
        all.push(GeneratedCategory {
            id,
            parent_id,
            slug: slugify(&name),
            name,
            depth,
        });
        id
    };
    let mut leaves = Vec::new();
    for r in 0..b {
        let root_name = name_of(DEPARTMENTS, r);
        let root = add(None, root_name.clone(), 0);
        for s in 0..b {
            let mid_name = format!("{root_name} {}", name_of(SECTIONS, s));
            let mid = add(Some(root), mid_name.clone(), 1);
            for k in 0..b {
                let leaf_name = format!("{mid_name} {}", name_of(KINDS, k));
                leaves.push(add(Some(mid), leaf_name, 2));
            }
        }
    }
    (all, leaves)
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_what_copy_reads_as_syntax() {
        let mut out = String::new();
        copy_row(
            &mut out,
            &[Some("1"), Some("a\tb\\c\nd"), None, Some("\\N")],
        );
        assert_eq!(out, "1\ta\\tb\\\\c\\nd\t\\N\t\\\\N\n");
    }

    #[test]
    fn the_tree_has_three_levels_and_its_leaves_are_the_last() {
        let (all, leaves) = category_tree(39);
        assert_eq!(all.len(), 3 + 9 + 27);
        assert_eq!(leaves.len(), 27);
        assert!(leaves.iter().all(|&l| all[(l - 1) as usize].depth == 2));
        assert_eq!(all[1].parent_id, Some(1));
    }
}

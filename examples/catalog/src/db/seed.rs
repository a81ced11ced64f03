//! The deterministic catalog generator: the same plan (sizes and seed) gives the same catalog.
//! Runs in one transaction with prepared statements, with a progress bar.

use std::collections::BTreeMap;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};

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

/// Fills an empty, migrated database.
pub fn generate(conn: &mut Connection, plan: &Plan) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let tx = conn.transaction()?;
    let leaves = categories(&tx, plan.categories)?;

    let bar = if plan.progress {
        let bar = ProgressBar::new(u64::from(plan.products));
        bar.set_style(
            ProgressStyle::with_template(
                "generating catalog {bar:40} {pos}/{len} products ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    {
        let mut product = tx.prepare(
            "INSERT INTO products (id, sku, name, description, brand, price, category_id,
                                   attributes, created_at, popularity, sales)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut variant = tx.prepare(
            "INSERT INTO variants (product_id, colour, size, stock) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for id in 1..=i64::from(plan.products) {
            let adjective = pick(&mut rng, ADJECTIVES);
            let noun = pick(&mut rng, NOUNS);
            let model: u32 = rng.random_range(100..1000);
            let name = format!("{adjective} {noun} {model}");
            let brand = pick(&mut rng, BRANDS);
            let words: Vec<&str> = (0..rng.random_range(8..20))
                .map(|_| pick(&mut rng, WORDS))
                .collect();
            let description = format!("The {name} by {brand}: {}.", words.join(" "));
            // Prices spread over 1..2000, most of them low.
            let price = (rng.random_range(0.0f64..1.0).powi(3) * 1999.0 + 1.0) * 100.0;
            let price = price.round() / 100.0;
            let category = *leaves.choose(&mut rng).unwrap_or(&1);
            let mut attributes = BTreeMap::new();
            attributes.insert("material", pick(&mut rng, MATERIALS).to_owned());
            attributes.insert("weight_g", rng.random_range(50..5000).to_string());
            let attributes = serde_json::to_string(&attributes).unwrap_or_else(|_| "{}".into());
            let created_at = EPOCH + rng.random_range(0..2 * 365 * 86_400);
            let popularity = (rng.random_range(0.0f64..1.0).powi(4) * 10_000.0) as i64;
            let sales = (rng.random_range(0.0f64..1.0).powi(5) * 5_000.0) as i64;
            product.execute(params![
                id,
                format!("SKU-{id:07}"),
                name,
                description,
                brand,
                price,
                category,
                attributes,
                created_at,
                popularity,
                sales
            ])?;
            let n = rng.random_range(1..=4);
            let colours: Vec<&str> = COLOURS.choose_multiple(&mut rng, n).copied().collect();
            for colour in colours {
                let size = pick(&mut rng, SIZES);
                let stock: i64 = rng.random_range(0..200);
                variant.execute(params![id, colour, size, stock])?;
            }
            if id % 1000 == 0 {
                bar.set_position(id as u64);
            }
        }
    }
    bar.finish_and_clear();
    tx.commit()?;
    conn.execute_batch("ANALYZE")?;
    // The tree has about as many categories as asked (three levels): log how many it has.
    let made: i64 = conn.query_row("SELECT COUNT(*) FROM categories", [], |r| r.get(0))?;
    tracing::info!(
        products = plan.products,
        categories = made,
        seed = plan.seed,
        elapsed = ?started.elapsed(),
        "catalog generated"
    );
    Ok(())
}

/// Inserts the category tree (three levels) and returns the ids of its leaves.
fn categories(tx: &rusqlite::Transaction<'_>, target: u32) -> rusqlite::Result<Vec<i64>> {
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
    let mut insert = tx.prepare(
        "INSERT INTO categories (id, parent_id, name, slug, depth) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut next_id = 1i64;
    let mut leaves = Vec::new();
    for r in 0..b {
        let root_name = name_of(DEPARTMENTS, r);
        let root = next_id;
        next_id += 1;
        insert.execute(params![
            root,
            None::<i64>,
            root_name,
            slugify(&root_name),
            0
        ])?;
        for s in 0..b {
            let section = name_of(SECTIONS, s);
            let mid_name = format!("{root_name} {section}");
            let mid = next_id;
            next_id += 1;
            insert.execute(params![mid, root, mid_name, slugify(&mid_name), 1])?;
            for k in 0..b {
                let kind = name_of(KINDS, k);
                let leaf_name = format!("{mid_name} {kind}");
                let leaf = next_id;
                next_id += 1;
                insert.execute(params![leaf, mid, leaf_name, slugify(&leaf_name), 2])?;
                leaves.push(leaf);
            }
        }
    }
    Ok(leaves)
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

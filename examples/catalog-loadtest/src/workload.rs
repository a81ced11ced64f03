//! The workload: popularity-ordered key spaces read from the generated catalog, and the requests
//! drawn from them (Zipf-popular product details, listings, search, autocomplete, other reads,
//! and a share of stock writes).

use anyhow::ensure;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use catalog::repo::Repo;

/// A Zipf distribution over ranks `0..n`: rank `k` has weight `1 / (k + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Ranks `0..n` (at least one), exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let cdf = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        Zipf { cdf }
    }

    /// A rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let u = rng.random::<f64>() * total;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

const SORTS: &[&str] = &["popular", "price_asc", "newest", "top_selling"];
/// Read mix (before the write share): detail, listing, search, autocomplete, other.
const MIX: [(Kind, f64); 5] = [
    (Kind::Detail, 0.45),
    (Kind::Listing, 0.20),
    (Kind::Search, 0.15),
    (Kind::Autocomplete, 0.15),
    (Kind::Other, 0.05),
];

/// What a request does, for the report's mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Detail,
    Listing,
    Search,
    Autocomplete,
    Other,
    Write,
}

impl Kind {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Detail => "detail",
            Kind::Listing => "listing",
            Kind::Search => "search",
            Kind::Autocomplete => "autocomplete",
            Kind::Other => "other",
            Kind::Write => "write",
        }
    }
}

/// Popularity-ordered key spaces, from the generated database.
#[derive(Debug)]
pub struct Workload {
    /// (product id, a variant id), most popular first.
    pub products: Vec<(i64, i64)>,
    product_zipf: Zipf,
    /// Category ids, in a seeded random popularity order.
    pub categories: Vec<i64>,
    category_zipf: Zipf,
    terms: Vec<String>,
    term_zipf: Zipf,
    prefixes: Vec<String>,
    prefix_zipf: Zipf,
    page_zipf: Zipf,
    sort_zipf: Zipf,
    write_share: f64,
}

/// One request: its kind, its path and query, and a JSON body for a write.
#[derive(Debug)]
pub struct Request {
    pub kind: Kind,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

/// Products (id, first variant) most popular first; categories; the names autocomplete and search
/// draw from. The same SQL on SQLite and PostgreSQL.
const PRODUCTS: &str =
    "SELECT p.id, MIN(v.id) FROM products p JOIN variants v ON v.product_id = p.id
     GROUP BY p.id ORDER BY p.popularity DESC, p.id";
const CATEGORIES: &str = "SELECT id FROM categories ORDER BY id";
const NAMES: &str = "SELECT name FROM products ORDER BY popularity DESC LIMIT 5000";

impl Workload {
    /// Reads the key spaces from the catalog behind `repo`.
    pub async fn load(
        repo: &Repo,
        seed: u64,
        s: f64,
        write_share: f64,
    ) -> anyhow::Result<Workload> {
        let db = match &repo.db {
            catalog::db::Db::Sqlite(db) => db,
            catalog::db::Db::Postgres(db) => {
                let c = db.client().await?;
                let products = c
                    .query(PRODUCTS, &[])
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let categories = c
                    .query(CATEGORIES, &[])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let names: Vec<String> = c
                    .query(NAMES, &[])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                return Workload::new(products, categories, &names, seed, s, write_share);
            }
        };
        let (products, categories, names) = db
            .read(|conn| {
                let mut stmt = conn.prepare(PRODUCTS)?;
                let products = stmt
                    .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut stmt = conn.prepare(CATEGORIES)?;
                let categories = stmt
                    .query_map([], |r| r.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut stmt = conn.prepare(NAMES)?;
                let names = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((products, categories, names))
            })
            .await?;
        Workload::new(products, categories, &names, seed, s, write_share)
    }

    /// A workload over these key spaces: products (id, a variant id) most popular first,
    /// categories (shuffled by `seed`), and product names most popular first (the source of
    /// search terms and autocomplete prefixes).
    pub fn new(
        products: Vec<(i64, i64)>,
        mut categories: Vec<i64>,
        names: &[String],
        seed: u64,
        s: f64,
        write_share: f64,
    ) -> anyhow::Result<Workload> {
        ensure!(
            !products.is_empty(),
            "the load-test catalog has no products"
        );
        ensure!(
            !categories.is_empty(),
            "the load-test catalog has no categories"
        );
        let mut rng = StdRng::seed_from_u64(seed);
        categories.shuffle(&mut rng);
        // Search terms and autocomplete prefixes from popular names, as `catalog warmup` derives
        // them (one function, so that what warmup caches is what this workload asks).
        let (terms, prefixes) = catalog::ops::terms_and_prefixes(names);
        ensure!(!terms.is_empty() && !prefixes.is_empty(), "no search terms");
        Ok(Workload {
            product_zipf: Zipf::new(products.len(), s),
            products,
            category_zipf: Zipf::new(categories.len(), s),
            categories,
            term_zipf: Zipf::new(terms.len(), s),
            terms,
            prefix_zipf: Zipf::new(prefixes.len(), s),
            prefixes,
            page_zipf: Zipf::new(5, s),
            sort_zipf: Zipf::new(SORTS.len(), 1.0),
            write_share,
        })
    }

    fn product(&self, rng: &mut StdRng) -> (i64, i64) {
        self.products[self.product_zipf.sample(rng)]
    }

    /// The next request.
    pub fn next(&self, rng: &mut StdRng) -> Request {
        if rng.random::<f64>() < self.write_share {
            let (id, variant) = self.product(rng);
            return Request {
                kind: Kind::Write,
                path: format!("/products/{id}/variants/{variant}/stock"),
                body: Some(serde_json::json!({"delta": 1, "reason": "loadtest"})),
            };
        }
        let total: f64 = MIX.iter().map(|m| m.1).sum();
        let mut u = rng.random::<f64>() * total;
        let mut kind = Kind::Other;
        for (k, w) in MIX {
            if u < w {
                kind = k;
                break;
            }
            u -= w;
        }
        let path = match kind {
            Kind::Detail => format!("/products/{}", self.product(rng).0),
            Kind::Listing => {
                let cat = self.categories[self.category_zipf.sample(rng)];
                let sort = SORTS[self.sort_zipf.sample(rng)];
                let page = self.page_zipf.sample(rng) + 1;
                format!("/products?category={cat}&sort={sort}&page={page}")
            }
            Kind::Search => {
                let q = &self.terms[self.term_zipf.sample(rng)];
                format!("/search?q={}", q.replace(' ', "+"))
            }
            Kind::Autocomplete => {
                format!(
                    "/autocomplete?prefix={}",
                    self.prefixes[self.prefix_zipf.sample(rng)]
                )
            }
            Kind::Other | Kind::Write => match rng.random_range(0..4) {
                0 => format!("/products/{}/recommendations", self.product(rng).0),
                1 => format!(
                    "/filters?category={}",
                    self.categories[self.category_zipf.sample(rng)]
                ),
                2 => "/products/top-sellers".to_owned(),
                _ => "/categories/tree".to_owned(),
            },
        };
        Request {
            kind,
            path,
            body: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks_and_stays_in_range() {
        let zipf = Zipf::new(100, 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 100];
        for _ in 0..20_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[99]);
        // Rank 1 has weight 1 / H(100) ≈ 0.193.
        assert!((3_400..4_300).contains(&counts[0]), "{}", counts[0]);
    }
}

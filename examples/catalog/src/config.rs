//! Service configuration: flags and environment variables (`catalog --help` lists them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// How the service runs: where it listens, its database, its cache and the generated catalog.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        global = true,
        env = "CATALOG_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    pub listen: SocketAddr,

    /// SQLite database file (created, migrated and filled with a generated catalog if missing).
    #[arg(
        long,
        global = true,
        env = "CATALOG_DB",
        default_value = "catalog.sqlite3"
    )]
    pub database: PathBuf,

    /// Redis URL for the L2 cache; without it the service runs on L1 and the database.
    #[arg(long, global = true, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Cache namespace: the prefix of every Redis key (the schema version is appended:
    /// `catalog` becomes `catalog:v1`).
    #[arg(
        long,
        global = true,
        env = "CATALOG_NAMESPACE",
        default_value = "catalog"
    )]
    pub namespace: String,

    /// L1 (in-process) cache capacity, in MiB.
    #[arg(long, global = true, env = "CATALOG_L1_MB", default_value_t = 64)]
    pub l1_mb: u64,

    /// Number of products to generate on first start.
    #[arg(
        id = "gen_products",
        long = "gen-products",
        global = true,
        env = "CATALOG_PRODUCTS",
        default_value_t = 100_000
    )]
    pub products: u32,

    /// Approximate number of categories to generate on first start (a tree three levels deep).
    #[arg(
        id = "gen_categories",
        long = "gen-categories",
        global = true,
        env = "CATALOG_CATEGORIES",
        default_value_t = 500
    )]
    pub categories: u32,

    /// Seed of the catalog generator (same seed, same catalog).
    #[arg(long, global = true, env = "CATALOG_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Hide progress bars (database generation, warmup).
    #[arg(
        long,
        global = true,
        env = "CATALOG_QUIET",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub quiet: bool,
}

impl Config {
    /// A configuration for tests and embedding: a database path, everything else default, quiet.
    pub fn for_database(database: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: database.into(),
            redis_url: None,
            namespace: "catalog".to_owned(),
            l1_mb: 64,
            products: 100_000,
            categories: 500,
            seed: 42,
            quiet: true,
        }
    }

    /// L1 capacity in bytes.
    pub fn l1_capacity_bytes(&self) -> u64 {
        self.l1_mb.saturating_mul(1024 * 1024)
    }
}

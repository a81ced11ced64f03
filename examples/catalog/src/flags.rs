//! The command line's flag groups (clap `Args`), each flattened into the commands it applies to
//! ([`crate::cli`]) and each setting its part of a [`Config`]:
//!
//! | group | flags | taken by |
//! |---|---|---|
//! | [`DatabaseFlags`] | `--database` | serve, warmup, clear (`--product-id` only), stats |
//! | [`RedisFlags`] | `--redis-url`, `--redis-ca`, `--redis-client-cert`, `--redis-client-key`, `--namespace`, `--allow-degraded` | serve, warmup, clear, stats |
//! | [`CacheFlags`] | `--l1-mb` | serve, warmup |
//! | [`GenerateFlags`] | `--gen-products`, `--gen-categories`, `--seed` | serve |
//! | [`QuietFlag`] | `--quiet` | serve, warmup |
//! | `ServeArgs` ([`crate::cli`]) | `--listen`, `--warmup`, `--ceiling`, and the server limits ([`Limits`]) | serve |
//!
//! Every flag can also be set by its environment variable (`[env: ...]` in `--help`), whose
//! value `--help` never shows (`hide_env_values`: `REDIS_URL` may hold a password).

use std::fmt;
use std::path::PathBuf;

use clap::Args;

use crate::config::{Config, Redacted};

/// The catalog's database.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseFlags {
    /// The database: a SQLite file, or a PostgreSQL URL `postgres://user:password@host:port/dbname`
    /// (the database must exist). `serve` creates, migrates and fills it with a generated catalog
    /// if it is missing or empty; `warmup` and `stats` need an existing one, `clear` only with
    /// `--product-id`.
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_DB",
        default_value = "catalog.sqlite3"
    )]
    pub database: PathBuf,
}

/// The shared cache: where Redis is, how to reach it, and the namespace of the keys.
#[derive(Clone, Args)]
#[command(next_help_heading = "Redis (the shared L2 cache)")]
pub struct RedisFlags {
    /// Redis URL of the L2 cache (`redis://[user:password@]host:port/db`, `rediss://` for TLS);
    /// without it the service runs on L1 and the database.
    #[arg(long, hide_env_values = true, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// CA certificate(s) (PEM file) to trust for a `rediss://` REDIS_URL instead of the system's
    /// roots.
    #[arg(long, hide_env_values = true, env = "REDIS_CA")]
    pub redis_ca: Option<PathBuf>,

    /// Client certificate (PEM file) to present to Redis (mutual TLS); needs --redis-client-key.
    #[arg(
        long,
        hide_env_values = true,
        env = "REDIS_CLIENT_CERT",
        requires = "redis_client_key"
    )]
    pub redis_client_cert: Option<PathBuf>,

    /// Private key (PEM file) of --redis-client-cert.
    #[arg(
        long,
        hide_env_values = true,
        env = "REDIS_CLIENT_KEY",
        requires = "redis_client_cert"
    )]
    pub redis_client_key: Option<PathBuf>,

    /// Redis Sentinel instead of REDIS_URL: the sentinels to ask (`host:port,host:port`, or
    /// `redis://[user:password@]host:port` each) for the master named by --redis-master. The
    /// service follows a failover without a restart.
    #[arg(
        long,
        hide_env_values = true,
        env = "REDIS_SENTINEL",
        value_delimiter = ',',
        requires = "redis_master",
        conflicts_with = "redis_url"
    )]
    pub redis_sentinel: Vec<String>,

    /// The master name the sentinels of --redis-sentinel monitor (`sentinel monitor <name> ..`).
    #[arg(
        long,
        hide_env_values = true,
        env = "REDIS_MASTER",
        requires = "redis_sentinel"
    )]
    pub redis_master: Option<String>,

    /// Redis Cluster instead of REDIS_URL: seed nodes (`host:port,host:port`, or
    /// `redis://[user:password@]host:port`, the first one's credentials used for every node).
    #[arg(
        long,
        hide_env_values = true,
        env = "REDIS_CLUSTER",
        value_delimiter = ',',
        conflicts_with_all = ["redis_url", "redis_sentinel"]
    )]
    pub redis_cluster: Vec<String>,

    /// Cache namespace: the prefix of every Redis key (the schema version is appended:
    /// `catalog` becomes `catalog.v1`). Servers and commands that share a cache use the same.
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_NAMESPACE",
        default_value = "catalog"
    )]
    pub namespace: String,

    /// Start even if Redis refuses the credentials of `REDIS_URL` (by default a configuration
    /// error that stops the start): serve from L1 and the database, say so in the log, and answer
    /// `/health/ready` with 503 until Redis accepts them.
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_ALLOW_DEGRADED",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_degraded: bool,
}

impl fmt::Debug for RedisFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFlags")
            .field("redis_url", &self.redis_url.as_deref().map(Redacted::url))
            .field("redis_ca", &self.redis_ca)
            .field("redis_client_cert", &self.redis_client_cert)
            .field("redis_client_key", &self.redis_client_key)
            .field("redis_sentinel", &Redacted::urls(&self.redis_sentinel))
            .field("redis_master", &self.redis_master)
            .field("redis_cluster", &Redacted::urls(&self.redis_cluster))
            .field("namespace", &self.namespace)
            .field("allow_degraded", &self.allow_degraded)
            .finish()
    }
}

/// This process's L1.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cache")]
pub struct CacheFlags {
    /// L1 (in-process) cache capacity, in MiB (0: no L1; every read goes to Redis).
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_L1_MB",
        default_value_t = 64
    )]
    pub l1_mb: u64,
}

/// The catalog `serve` generates into a missing or empty database.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Generated catalog (first start)")]
pub struct GenerateFlags {
    /// Number of products to generate on first start.
    #[arg(
        id = "gen_products",
        long = "gen-products",
        hide_env_values = true,
        env = "CATALOG_PRODUCTS",
        default_value_t = 100_000
    )]
    pub products: u32,

    /// Approximate number of categories to generate on first start (a tree three levels deep).
    #[arg(
        id = "gen_categories",
        long = "gen-categories",
        hide_env_values = true,
        env = "CATALOG_CATEGORIES",
        default_value_t = 500
    )]
    pub categories: u32,

    /// Seed of the catalog generator (same seed, same catalog).
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_SEED",
        default_value_t = 42
    )]
    pub seed: u64,
}

/// Progress bars.
#[derive(Debug, Clone, Args)]
pub struct QuietFlag {
    /// Hide progress bars (database generation, warmup).
    #[arg(
        long,
        hide_env_values = true,
        env = "CATALOG_QUIET",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub quiet: bool,
}

impl DatabaseFlags {
    /// A configuration on this database, everything else default (and not quiet).
    pub fn config(&self) -> Config {
        Config {
            quiet: false,
            ..Config::for_database(&self.database)
        }
    }
}

impl RedisFlags {
    /// Sets the Redis part of `config`.
    pub fn apply(&self, config: &mut Config) {
        config.redis_url.clone_from(&self.redis_url);
        config.redis_ca.clone_from(&self.redis_ca);
        config.redis_client_cert.clone_from(&self.redis_client_cert);
        config.redis_client_key.clone_from(&self.redis_client_key);
        config.redis_sentinel.clone_from(&self.redis_sentinel);
        config.redis_master.clone_from(&self.redis_master);
        config.redis_cluster.clone_from(&self.redis_cluster);
        config.namespace.clone_from(&self.namespace);
        config.allow_degraded = self.allow_degraded;
    }
}

impl CacheFlags {
    /// Sets the L1 part of `config`.
    pub fn apply(&self, config: &mut Config) {
        config.l1_mb = self.l1_mb;
    }
}

impl GenerateFlags {
    /// Sets the generator part of `config`.
    pub fn apply(&self, config: &mut Config) {
        config.products = self.products;
        config.categories = self.categories;
        config.seed = self.seed;
    }
}

impl QuietFlag {
    /// Sets `config.quiet`.
    pub fn apply(&self, config: &mut Config) {
        config.quiet = self.quiet;
    }
}

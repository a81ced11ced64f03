//! Service configuration: what the service and its commands run with ([`Config`]), the server's
//! limits, and how a Redis URL is shown and checked. The flags that set it are in
//! [`crate::flags`].
//!
//! Every environment-backed flag hides its value in `--help` (`hide_env_values`), and the
//! `Debug` of [`Config`] shows the Redis URL with its password replaced by `***`
//! ([`redact_url`]): the configuration may hold a secret, and neither prints it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

pub use crate::redis_url::{Redacted, redact_url, redis_url_problem, redis_user};

/// How the service runs: where it listens, its database, its cache and the generated catalog.
/// The command line sets it from the flag groups of [`crate::flags`] (each command takes only
/// the groups that apply to it; the others keep these defaults). Its `Debug` redacts the Redis
/// password.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on (`--listen`).
    pub listen: SocketAddr,
    /// The database: a SQLite file, or a PostgreSQL URL (`--database`).
    pub database: PathBuf,
    /// Redis URL of the L2 cache; `None`: L1 and the database only (`--redis-url`).
    pub redis_url: Option<String>,
    /// CA certificate(s) (PEM file) for a `rediss://` URL (`--redis-ca`).
    pub redis_ca: Option<PathBuf>,
    /// Client certificate (PEM file) for mutual TLS (`--redis-client-cert`).
    pub redis_client_cert: Option<PathBuf>,
    /// Private key of `redis_client_cert` (`--redis-client-key`).
    pub redis_client_key: Option<PathBuf>,
    /// Redis Sentinel: the sentinels to ask for the master `redis_master`
    /// (`--redis-sentinel`).
    pub redis_sentinel: Vec<String>,
    /// The master name the sentinels monitor (`--redis-master`).
    pub redis_master: Option<String>,
    /// Redis Cluster: seed nodes (`--redis-cluster`).
    pub redis_cluster: Vec<String>,
    /// Cache namespace, before the schema version is appended (`--namespace`).
    pub namespace: String,
    /// L1 capacity, MiB (`--l1-mb`).
    pub l1_mb: u64,
    /// Products to generate on first start (`--gen-products`).
    pub products: u32,
    /// Approximate categories to generate on first start (`--gen-categories`).
    pub categories: u32,
    /// Seed of the catalog generator (`--seed`).
    pub seed: u64,
    /// No progress bars (`--quiet`).
    pub quiet: bool,
    /// Start even if Redis refuses the credentials (`--allow-degraded`).
    pub allow_degraded: bool,
    /// What one client may hold of the server (`serve`'s limits).
    pub limits: Limits,
}

/// What one client may hold of the server: connections, time, body size. See the README's
/// security notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct Limits {
    /// Connections served at once; one more is closed at once (counted in `/metrics`). Lowered
    /// at start to stay 64 below the process's open-file limit (`ulimit -n`).
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_MAX_CONNECTIONS",
        default_value_t = Limits::DEFAULT.max_connections,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// Time a client has to send a request's head (line and headers), counted from the opening
    /// of the connection or the end of the previous response (`500ms`, `10s`, `2m`).
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_HEADER_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub header_timeout: Duration,

    /// A connection with no request in progress for this long (waiting for its next request, or
    /// for the head of its first) is closed; with `--header-timeout`, whichever comes first.
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_IDLE_TIMEOUT",
        default_value = "5s",
        value_parser = parse_duration
    )]
    pub idle_timeout: Duration,

    /// Time a request has to be answered (reading its body included); past it, a 503. A write
    /// already started still completes, with its invalidation.
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_REQUEST_TIMEOUT",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub request_timeout: Duration,

    /// Largest request body, in bytes; a larger one is a 413.
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_MAX_BODY_BYTES",
        default_value_t = Limits::DEFAULT.max_body_bytes,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_body_bytes: u32,

    /// On Ctrl-C or SIGTERM: time the requests in progress have to finish, after the server
    /// stopped accepting connections; connections still open then are closed.
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_SHUTDOWN_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub shutdown_timeout: Duration,

    /// Bound of `Cache-Control: max-age` on cached read responses (their entry's remaining TTL,
    /// at most this): how long a client or a CDN may reuse one without revalidating (`ETag`).
    #[arg(
        long,
        help_heading = "Server limits",
        hide_env_values = true,
        env = "CATALOG_HTTP_MAX_AGE",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub http_max_age: Duration,
}

impl Limits {
    /// The defaults (those of the flags).
    pub const DEFAULT: Limits = Limits {
        max_connections: 1024,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        max_body_bytes: 1024 * 1024,
        shutdown_timeout: Duration::from_secs(10),
        http_max_age: Duration::from_secs(60),
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A duration: a number with a unit (`ms`, `s`, `m`), or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (say `500ms`, `10s` or `2m`)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s or m)")),
    };
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("`{text}` must be above 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database", &self.database)
            .field("redis_url", &self.redis_url.as_deref().map(Redacted::url))
            .field("redis_ca", &self.redis_ca)
            .field("redis_client_cert", &self.redis_client_cert)
            .field("redis_client_key", &self.redis_client_key)
            .field("redis_sentinel", &Redacted::urls(&self.redis_sentinel))
            .field("redis_master", &self.redis_master)
            .field("redis_cluster", &Redacted::urls(&self.redis_cluster))
            .field("namespace", &self.namespace)
            .field("l1_mb", &self.l1_mb)
            .field("products", &self.products)
            .field("categories", &self.categories)
            .field("seed", &self.seed)
            .field("quiet", &self.quiet)
            .field("allow_degraded", &self.allow_degraded)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Config {
    /// A configuration for tests and embedding: a database path, everything else default, quiet.
    pub fn for_database(database: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: database.into(),
            redis_url: None,
            redis_ca: None,
            redis_client_cert: None,
            redis_client_key: None,
            redis_sentinel: Vec::new(),
            redis_master: None,
            redis_cluster: Vec::new(),
            namespace: "catalog".to_owned(),
            l1_mb: 64,
            products: 100_000,
            categories: 500,
            seed: 42,
            quiet: true,
            allow_degraded: false,
            limits: Limits::DEFAULT,
        }
    }

    /// The TLS settings of `--redis-ca`, `--redis-client-cert` and `--redis-client-key` (`None`
    /// when none is given), read from their files.
    pub fn redis_tls(&self) -> anyhow::Result<Option<cache_core::TlsConfig>> {
        use anyhow::Context as _;
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("reading {flag} {}", path.display()))
        };
        let mut tls = cache_core::TlsConfig::new();
        let mut any = false;
        if let Some(ca) = &self.redis_ca {
            tls = tls.ca_pem(read("--redis-ca", ca)?);
            any = true;
        }
        match (&self.redis_client_cert, &self.redis_client_key) {
            (Some(cert), Some(key)) => {
                tls = tls.client_certificate(
                    read("--redis-client-cert", cert)?,
                    read("--redis-client-key", key)?,
                );
                any = true;
            }
            (None, None) => {}
            _ => anyhow::bail!("--redis-client-cert and --redis-client-key go together"),
        }
        Ok(any.then_some(tls))
    }

    /// `builder` pointed at the Redis of this configuration: REDIS_URL (with its TLS settings),
    /// or the master of --redis-sentinel, or the cluster of --redis-cluster (none: L1 only).
    pub fn redis_target(
        &self,
        builder: cache_core::CacheBuilder,
    ) -> anyhow::Result<cache_core::CacheBuilder> {
        let builder = builder
            .redis_url_opt(self.redis_url.clone())
            .redis_tls_opt(self.redis_tls()?);
        Ok(match (&self.redis_master, self.redis_cluster.is_empty()) {
            (Some(master), _) => builder.redis_sentinel(master, self.redis_sentinel.clone()),
            (None, false) => builder.redis_cluster(self.redis_cluster.clone()),
            (None, true) => builder,
        })
    }

    /// Whether a Redis (URL, Sentinel or Cluster) is configured.
    pub fn has_redis(&self) -> bool {
        self.redis_url.is_some() || self.redis_master.is_some() || !self.redis_cluster.is_empty()
    }

    /// L1 capacity in bytes.
    pub fn l1_capacity_bytes(&self) -> u64 {
        self.l1_mb.saturating_mul(1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        for (url, shown) in [
            (
                "redis://alice:s3cret@10.0.0.1:6380/2",
                "redis://alice:***@10.0.0.1:6380/2",
            ),
            ("redis://:s3cret@cache/", "redis://:***@cache/"),
            (
                "rediss://alice:s%40cret@cache:6379",
                "rediss://alice:***@cache:6379",
            ),
            ("redis://cache:6379/0", "redis://cache:6379/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret&user=alice",
                "redis+unix:///run/redis.sock?db=1&pass=***&user=alice",
            ),
            ("not a url s3cret", "<a URL that does not parse, not shown>"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(!redact_url(url).contains("s3cret"));
        }
        assert_eq!(redis_user("redis://alice:x@h/"), "alice");
        assert_eq!(redis_user("redis://:x@h/"), "default");
        assert_eq!(redis_user("redis+unix:///s?user=bob&pass=x"), "bob");
    }

    #[test]
    fn the_debug_of_a_config_redacts_the_redis_password() {
        let mut config = Config::for_database("catalog.sqlite3");
        config.redis_url = Some("redis://alice:s3cret@cache:6379/0".to_owned());
        config.redis_sentinel = vec!["redis://:s3cret@sentinel:26379".to_owned()];
        config.redis_cluster = vec!["redis://:s3cret@node:7000".to_owned()];
        let text = format!("{config:?} {config:#?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("redis://alice:***@cache:6379/0"), "{text}");
    }

    #[test]
    fn sentinel_and_cluster_flags_parse_and_exclude_a_url() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            redis: crate::flags::RedisFlags,
        }
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["catalog"], args].concat()).map(|cli| {
                let mut config = Config::for_database("catalog.sqlite3");
                cli.redis.apply(&mut config);
                config
            })
        };
        let config = parse(&[
            "--redis-sentinel",
            "10.0.0.1:26379,10.0.0.2:26379",
            "--redis-master",
            "mymaster",
        ])
        .unwrap();
        assert_eq!(config.redis_sentinel, ["10.0.0.1:26379", "10.0.0.2:26379"]);
        assert_eq!(config.redis_master.as_deref(), Some("mymaster"));
        assert!(config.has_redis());
        let debug = format!(
            "{:?}",
            config.redis_target(cache_core::Cache::builder()).unwrap()
        );
        assert!(
            debug.contains("Sentinel") && debug.contains("mymaster"),
            "{debug}"
        );

        let config = parse(&[
            "--redis-cluster",
            "redis://u:s3cret@10.0.0.1:7000,10.0.0.2:7000",
        ])
        .unwrap();
        assert_eq!(config.redis_cluster.len(), 2);
        let debug = format!(
            "{:?} {:?}",
            config,
            config.redis_target(cache_core::Cache::builder()).unwrap()
        );
        assert!(
            debug.contains("Cluster") && !debug.contains("s3cret"),
            "{debug}"
        );

        assert!(
            parse(&["--redis-sentinel", "a:1"]).is_err(),
            "a master name is needed"
        );
        assert!(parse(&["--redis-cluster", "a:1", "--redis-url", "redis://b/"]).is_err());
        assert!(
            parse(&[
                "--redis-sentinel",
                "a:1",
                "--redis-master",
                "m",
                "--redis-url",
                "redis://b/"
            ])
            .is_err()
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "0s", "-1s", "10h", "2d", "1e9s", "x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

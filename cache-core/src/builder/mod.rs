//! [`CacheBuilder`]: configuration of a [`Cache`]. Validates the settings, hands them to the
//! engine's constructor (`Engine::start`) and wraps the engine in the facade.
//!
//! Owns the settings; their validation is `validate.rs`, the builder's unit tests `tests.rs`.
//! Never touches the engine's state.

use std::fmt;
use std::time::Duration;

use crate::cache::Cache;
use crate::engine::{Config, Engine, LeaseSettings};
use crate::error::{ConfigError, ConfigErrorKind, Error};
use crate::redis_target::{RedisTarget, TlsConfig, install_crypto_provider};
use crate::store::redis::deployment::Deployment;

mod validate;

pub use self::validate::{MAX_DURATION_SETTING, validate_namespace};

/// How long a fleet lease lasts without renewal, by default: how long a crashed holder keeps
/// other instances waiting at most.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
/// How long a load waits for the value another instance loads under its lease, by default,
/// before loading by itself.
pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(5);

/// Builds a [`Cache`]. Every setting has a production default.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::Error> {
/// use cache_core::{Cache, Error};
/// use std::time::Duration;
/// let cache = Cache::builder()
///     .namespace("shop.v2")
///     .redis_url_opt(None) // Some(url) or .redis_url("redis://host:6379/0") adds the L2
///     .require_redis(false) // unreachable Redis: start degraded, connect later
///     .l1_capacity_bytes(64 * 1024 * 1024)
///     .default_ttl(Duration::from_secs(300))
///     .redis_timeout(Duration::from_millis(250))
///     .redis_connect_timeout(Duration::from_secs(1))
///     .circuit_breaker(3, Duration::from_secs(5))
///     .max_entry_lifetime(Duration::from_secs(7 * 24 * 3600))
///     .build()
///     .await?;
/// assert_eq!(cache.namespace(), "shop.v2");
/// assert_eq!(cache.default_policy().ttl(), Duration::from_secs(300));
///
/// // Invalid settings are an error at build time, not a panic later.
/// let bad = Cache::builder().namespace("no spaces").build().await;
/// assert!(matches!(bad, Err(Error::Config(_))));
/// let bad = Cache::builder().redis_timeout(Duration::MAX).build().await;
/// assert!(matches!(bad, Err(Error::Config(_))));
/// # Ok(()) }
/// ```
///
/// Its `Debug` hides the Redis password (`redis://user:***@host:6379/0`) and TLS key material.
#[derive(Clone)]
#[must_use]
pub struct CacheBuilder {
    namespace: String,
    redis: Option<RedisTarget>,
    /// TLS settings for a `rediss://` URL; kept apart so that the order of the calls is free.
    redis_tls: Option<TlsConfig>,
    require_redis: bool,
    start_degraded_if_refused: bool,
    l1_capacity_bytes: u64,
    default_ttl: Duration,
    op_timeout: Duration,
    connect_timeout: Duration,
    failure_threshold: u32,
    cool_down: Duration,
    max_entry_lifetime: Duration,
    clock_skew_micros: i64,
    lease: LeaseSettings,
    max_value_size: usize,
    fleet_sample_every: u32,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics_export::MetricsSettings,
}

/// The default of [`CacheBuilder::max_value_size`]: 1 MiB.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1024 * 1024;

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            namespace: "cache".into(),
            redis: None,
            redis_tls: None,
            require_redis: false,
            start_degraded_if_refused: false,
            l1_capacity_bytes: 64 * 1024 * 1024,
            default_ttl: Duration::from_secs(300),
            op_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            failure_threshold: 3,
            cool_down: Duration::from_secs(5),
            max_entry_lifetime: Duration::from_secs(7 * 24 * 3600),
            clock_skew_micros: 0,
            lease: LeaseSettings {
                enabled: true,
                ttl: DEFAULT_LEASE_TTL,
                wait: DEFAULT_LEASE_WAIT,
            },
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            fleet_sample_every: 0,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics_export::MetricsSettings {
                prefix: "tiercache".into(),
                interval: Duration::from_secs(1),
                recorder: None,
            },
        }
    }
}

impl CacheBuilder {
    /// Prefix of every Redis key (`shop` gives `shop:k:prod:1`): printable ASCII without spaces,
    /// `:` or the glob characters `* ? [ ] \\`, so that no namespace's key pattern can reach the
    /// keys of another namespace on the same Redis ([`validate_namespace`]). Put a version in it
    /// (`shop.v2`) to never read values written by an incompatible deploy.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The Redis L2, e.g. `redis://127.0.0.1:6379/0`. Without one the cache is L1-only.
    ///
    /// - ACL: `redis://user:password@host:6379/0`; password only (`requirepass`):
    ///   `redis://:password@host:6379/0`. Refused credentials fail [`build`](Self::build) with a
    ///   [`ConfigErrorKind::Auth`] error that names the user, never the password.
    /// - TLS: `rediss://host:6380/0` trusts the system's roots; [`redis_tls`](Self::redis_tls)
    ///   gives a CA and a client certificate; `rediss://host:6380/0#insecure` accepts any
    ///   certificate (self-signed test servers only). A failed handshake fails `build` with a
    ///   [`ConfigErrorKind::Tls`] error.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(RedisTarget::Url(url.into(), None));
        self
    }

    /// Sets or clears the Redis URL.
    pub fn redis_url_opt(mut self, url: Option<String>) -> Self {
        self.redis = url.map(|url| RedisTarget::Url(url, None));
        self
    }

    /// TLS settings of a `rediss://` URL: a CA to trust instead of the system's roots, a client
    /// certificate for mutual TLS. Building fails (a [`ConfigErrorKind::Tls`] error) if the URL
    /// is not `rediss://`, or with [`redis_client`](Self::redis_client).
    pub fn redis_tls(mut self, tls: TlsConfig) -> Self {
        self.redis_tls = Some(tls);
        self
    }

    /// Sets or clears the TLS settings.
    pub fn redis_tls_opt(mut self, tls: Option<TlsConfig>) -> Self {
        self.redis_tls = tls;
        self
    }

    /// The L2 through a redis-rs client the service built itself, with its own TLS and
    /// credentials (replaces a [`redis_url`](Self::redis_url)). The cache opens its own
    /// connection from it; refused credentials and failed handshakes are reported by `build` as
    /// with a URL.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.pem")?;
    /// let client = redis::Client::build_with_tls(
    ///     "rediss://cache-user:secret@redis.internal:6380/0",
    ///     redis::TlsCertificates { client_tls: None, root_cert: Some(ca) },
    /// )?;
    /// let cache = cache_core::Cache::builder()
    ///     .namespace("shop.v2")
    ///     .redis_client(client)
    ///     .build()
    ///     .await?;
    /// assert!(cache.has_l2());
    /// # Ok(()) }
    /// ```
    pub fn redis_client(mut self, client: redis::Client) -> Self {
        self.redis = Some(RedisTarget::Client(client));
        self
    }

    /// The L2 is the master named `master_name` of a Redis Sentinel group, found by asking
    /// `sentinels` (`host:port` or `redis://[user:password@]host:port` of each sentinel). The
    /// cache follows a failover without a restart: it asks the sentinels where the master is
    /// every 250 ms (the answer of the highest configuration epoch wins) and on a `READONLY`
    /// reply, and reconnects when it moved; calls meanwhile are served as with Redis down.
    /// Replaces a [`redis_url`](Self::redis_url).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder()
    ///     .namespace("shop.v2")
    ///     .redis_sentinel("mymaster", ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_sentinel<S: Into<String>>(
        mut self,
        master_name: impl Into<String>,
        sentinels: impl IntoIterator<Item = S>,
    ) -> Self {
        self.redis = Some(RedisTarget::Sentinel {
            master: master_name.into(),
            sentinels: sentinels.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// The L2 is a Redis Cluster reached through these seed nodes (`host:port`, or URLs whose
    /// first gives the credentials: `redis://user:password@host:port`). On a cluster the
    /// entry, tombstone and lease of a key share a hash slot (`ns:k:{<key>}`, README "Key
    /// layout in Redis"), pipelines are split by slot, pattern invalidations scan every primary,
    /// and redirections (`MOVED`, `ASK`) during a resharding are followed. Replaces a
    /// [`redis_url`](Self::redis_url). A namespace holding `{` or `}` is refused here.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder()
    ///     .namespace("shop.v2")
    ///     .redis_cluster(["10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.redis = Some(RedisTarget::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Fail `build()` if Redis cannot be reached (default: build degraded and connect later).
    pub fn require_redis(mut self, require: bool) -> Self {
        self.require_redis = require;
        self
    }

    /// Start degraded (serve from L1 and the loaders, probe Redis in the background) even when
    /// Redis refuses the credentials or the TLS handshake at build time, logging a warning;
    /// for a service that must start whatever the cache's configuration says and reports the
    /// problem itself (the catalog's `--allow-degraded`). Default `false`: `build` fails with a
    /// [`ConfigErrorKind::Auth`] or [`ConfigErrorKind::Tls`] error. Takes precedence over
    /// [`require_redis`](Self::require_redis) for these refusals.
    pub fn start_degraded_if_refused(mut self, start: bool) -> Self {
        self.start_degraded_if_refused = start;
        self
    }

    /// The L1 budget in bytes. Entries weigh an estimate of their decoded size (read off the
    /// MessagePack payload: its length plus the buffers and map entries it decodes to) plus a
    /// fixed per-entry overhead measured on moka, so that the heap an L1 holds stays within the
    /// budget (`l1-footprint` in benches/ measures it). Default 64 MiB. `0` disables L1 (every read goes to Redis or the loader), for measurements.
    pub fn l1_capacity_bytes(mut self, bytes: u64) -> Self {
        self.l1_capacity_bytes = bytes;
        self
    }

    /// TTL of patterns used without one (see [`Cache::default_policy`]). Default 5 min.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Timeout of each Redis call. Default 250 ms.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Timeout of connecting to Redis. Default 1 s.
    pub fn redis_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Consecutive Redis failures that open the circuit (default 3), and how long it stays open
    /// before a background probe (default 5 s).
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.failure_threshold = failures;
        self.cool_down = cool_down;
        self
    }

    /// Upper bound of `ttl + stale` of any pattern; tag and clear marks are kept this long in
    /// Redis. Default 7 days.
    pub fn max_entry_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_entry_lifetime = lifetime;
        self
    }

    /// Tests only: pretends this machine's wall clock is `skew_ms` milliseconds ahead (or, if
    /// negative, behind). Stamps come from Redis's clock once the cache has reached Redis, so a
    /// skew changes nothing then; tests show it.
    #[doc(hidden)]
    pub fn test_clock_skew_ms(mut self, skew_ms: i64) -> Self {
        self.clock_skew_micros = skew_ms.saturating_mul(1_000);
        self
    }

    /// Fleet leases (on by default when there is an L2): on an L2 miss one instance of the
    /// fleet runs the loader while the others wait for its value. `false` turns them off for
    /// every pattern of this cache; a pattern's policy can turn them off for itself
    /// ([`TtlPolicy::lease`]).
    pub fn fleet_lease(mut self, enabled: bool) -> Self {
        self.lease.enabled = enabled;
        self
    }

    /// The fleet lease's timing: `ttl`, how long a lease lasts without renewal (the holder renews
    /// it every third of that while its loader runs; a holder that dies keeps the key at most this
    /// long), default [`DEFAULT_LEASE_TTL`]; `wait`, how long another instance waits for the
    /// holder's value before loading by itself, default [`DEFAULT_LEASE_WAIT`].
    pub fn fleet_lease_timing(mut self, ttl: Duration, wait: Duration) -> Self {
        self.lease.ttl = ttl;
        self.lease.wait = wait;
        self
    }

    /// The largest encoded value (envelope bytes: stamps, tags and MessagePack payload) cached
    /// for patterns whose policy sets none ([`TtlPolicy::max_size`]). A larger value is served to
    /// its caller but cached in neither tier, and counted ([`Counters::oversize`](crate::Counters::oversize)),
    /// so that one huge result cannot fill Redis or evict L1. Default 1 MiB.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Counts one read in `every` that reaches Redis (L2 hits and loads; never L1 hits) in the
    /// namespace's popularity sets in Redis, from which a new instance warms its L1
    /// ([`Cache::warm_from_fleet`](crate::Cache::warm_from_fleet)). Default `0`: nothing is
    /// counted (no key of its own in Redis); 16 is a good start. Without an L2 it has no effect.
    pub fn fleet_sampling(mut self, every: u32) -> Self {
        self.fleet_sample_every = every;
        self
    }

    /// With the `metrics` feature: the prefix of the metric names this cache reports through the
    /// `metrics` facade (default `tiercache`: `tiercache_hits_total`, ...). Letters, digits and
    /// `_`. Two caches in one process reporting to one recorder should use different prefixes
    /// (else the last one's values win).
    #[cfg(feature = "metrics")]
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics.prefix = prefix.into();
        self
    }

    /// With the `metrics` feature: the recorder this cache reports to, instead of the process's
    /// (the one installed when the cache is built). For a service that renders its own recorder
    /// (a `PrometheusRecorder` per instance, say), or several caches kept apart.
    #[cfg(feature = "metrics")]
    pub fn metrics_recorder(
        mut self,
        recorder: std::sync::Arc<dyn metrics::Recorder + Send + Sync>,
    ) -> Self {
        self.metrics.recorder = Some(recorder);
        self
    }

    /// With the `metrics` feature: how often the statistics are copied into the `metrics`
    /// facade (default 1 s). Nothing is recorded per read.
    #[cfg(feature = "metrics")]
    pub fn metrics_interval(mut self, every: Duration) -> Self {
        self.metrics.interval = every;
        self
    }

    /// Builds the cache. Fails on invalid settings, on credentials Redis refuses
    /// ([`ConfigErrorKind::Auth`]) or a TLS handshake that fails ([`ConfigErrorKind::Tls`]), and
    /// when Redis is required and unreachable; otherwise an unreachable Redis only means starting
    /// degraded.
    pub async fn build(self) -> Result<Cache, Error> {
        self.validate()?;
        let redis = self.redis_deployment()?;
        let engine = Engine::start(self.into_config(redis)).await?;
        Ok(Cache::from_engine(engine))
    }

    /// The deployment of the configured L2 (`None`: L1 only).
    fn redis_deployment(&self) -> Result<Option<Deployment>, Error> {
        let target = match (&self.redis, &self.redis_tls) {
            (None, None) => return Ok(None),
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Tls,
                    "redis_tls was given without a Redis URL (redis_url(\"rediss://...\"))",
                )
                .into());
            }
            (Some(RedisTarget::Sentinel { .. } | RedisTarget::Cluster(_)), Some(_)) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Tls,
                    "redis_tls applies to redis_url; for Sentinel and Cluster give rediss:// \
                     addresses (the system's roots)",
                )
                .into());
            }
            (Some(RedisTarget::Client(_)), Some(_)) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Redis,
                    "redis_tls and redis_client were both given: a client of one's own brings its \
                     own TLS settings (redis::Client::build_with_tls)",
                )
                .into());
            }
            (Some(RedisTarget::Url(url, _)), tls @ Some(_)) => {
                RedisTarget::Url(url.clone(), tls.clone())
            }
            (Some(target), None) => target.clone(),
        };
        let deployment = target.deployment()?;
        if deployment.is_cluster() && self.namespace.contains(['{', '}']) {
            return Err(ConfigError::new(
                ConfigErrorKind::Namespace,
                format!(
                    "namespace `{}` holds `{{` or `}}`: on a cluster that would move the hash tag \
                     that keeps an entry and its tombstone in one slot",
                    self.namespace
                ),
            )
            .into());
        }
        if matches!(
            deployment.connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ) {
            install_crypto_provider();
        }
        Ok(Some(deployment))
    }

    fn into_config(self, redis: Option<Deployment>) -> Config {
        Config {
            namespace: self.namespace,
            redis,
            require_redis: self.require_redis,
            start_degraded_if_refused: self.start_degraded_if_refused,
            l1_capacity_bytes: self.l1_capacity_bytes,
            default_ttl: self.default_ttl,
            op_timeout: self.op_timeout,
            connect_timeout: self.connect_timeout,
            failure_threshold: self.failure_threshold,
            cool_down: self.cool_down,
            max_entry_lifetime: self.max_entry_lifetime,
            clock_skew_micros: self.clock_skew_micros,
            lease: self.lease,
            max_value_size: self.max_value_size,
            fleet_sample_every: self.fleet_sample_every,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
        }
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let CacheBuilder {
            namespace,
            redis,
            redis_tls,
            require_redis,
            start_degraded_if_refused,
            l1_capacity_bytes,
            default_ttl,
            op_timeout,
            connect_timeout,
            failure_threshold,
            cool_down,
            max_entry_lifetime,
            clock_skew_micros,
            lease,
            max_value_size,
            fleet_sample_every,
            #[cfg(feature = "metrics")]
            metrics,
        } = self;
        let mut debug = f.debug_struct("CacheBuilder");
        debug
            .field("namespace", namespace)
            .field("redis", redis)
            .field("redis_tls", redis_tls)
            .field("require_redis", require_redis)
            .field("start_degraded_if_refused", start_degraded_if_refused)
            .field("l1_capacity_bytes", l1_capacity_bytes)
            .field("default_ttl", default_ttl)
            .field("op_timeout", op_timeout)
            .field("connect_timeout", connect_timeout)
            .field("failure_threshold", failure_threshold)
            .field("cool_down", cool_down)
            .field("max_entry_lifetime", max_entry_lifetime)
            .field("clock_skew_micros", clock_skew_micros)
            .field("lease", lease)
            .field("max_value_size", max_value_size)
            .field("fleet_sample_every", fleet_sample_every);
        #[cfg(feature = "metrics")]
        debug.field("metrics", metrics);
        debug.finish()
    }
}

#[cfg(test)]
mod tests;

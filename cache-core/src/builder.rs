//! [`CacheBuilder`]: configuration of a [`Cache`]. Validates the settings, hands them to the
//! engine's constructor (`Engine::start`) and wraps the engine in the facade.
//!
//! Owns the settings and their validation; never touches the engine's state.

use std::time::Duration;

use crate::cache::Cache;
use crate::engine::{Config, Engine};
use crate::error::{ConfigError, ConfigErrorKind, Error};
use crate::ttl::TtlPolicy;

/// The largest value any duration setting of the builder accepts: 100 years. Every sum and
/// product the cache derives from its settings (call budgets, expiry times in microseconds since
/// the epoch) then fits; larger values are rejected by [`CacheBuilder::build`].
pub const MAX_DURATION_SETTING: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Builds a [`Cache`]. Every setting has a production default.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::Error> {
/// use cache_core::{Cache, Error};
/// use std::time::Duration;
/// let cache = Cache::builder()
///     .namespace("shop:v2")
///     .redis_url_opt(None) // Some(url) or .redis_url("redis://host:6379/0") adds the L2
///     .require_redis(false) // unreachable Redis: start degraded, connect later
///     .l1_capacity_bytes(64 * 1024 * 1024)
///     .default_ttl(Duration::from_secs(300))
///     .redis_timeout(Duration::from_millis(250))
///     .redis_connect_timeout(Duration::from_secs(1))
///     .circuit_breaker(3, Duration::from_secs(5))
///     .max_entry_lifetime(Duration::from_secs(7 * 24 * 3600))
///     .mark_refresh_interval(Duration::from_secs(1))
///     .build()
///     .await?;
/// assert_eq!(cache.namespace(), "shop:v2");
/// assert_eq!(cache.default_policy().ttl(), Duration::from_secs(300));
///
/// // Invalid settings are an error at build time, not a panic later.
/// let bad = Cache::builder().namespace("no spaces").build().await;
/// assert!(matches!(bad, Err(Error::Config(_))));
/// let bad = Cache::builder().redis_timeout(Duration::MAX).build().await;
/// assert!(matches!(bad, Err(Error::Config(_))));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheBuilder {
    namespace: String,
    redis_url: Option<String>,
    require_redis: bool,
    l1_capacity_bytes: u64,
    default_ttl: Duration,
    op_timeout: Duration,
    connect_timeout: Duration,
    failure_threshold: u32,
    cool_down: Duration,
    max_entry_lifetime: Duration,
    mark_refresh: Duration,
    fleet_sample_every: u32,
    #[cfg(feature = "metrics")]
    metrics_prefix: String,
    #[cfg(feature = "metrics")]
    metrics_interval: Duration,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            namespace: "cache".into(),
            redis_url: None,
            require_redis: false,
            l1_capacity_bytes: 64 * 1024 * 1024,
            default_ttl: Duration::from_secs(300),
            op_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            failure_threshold: 3,
            cool_down: Duration::from_secs(5),
            max_entry_lifetime: Duration::from_secs(7 * 24 * 3600),
            mark_refresh: Duration::from_secs(1),
            fleet_sample_every: 0,
            #[cfg(feature = "metrics")]
            metrics_prefix: "tiercache".into(),
            #[cfg(feature = "metrics")]
            metrics_interval: Duration::from_secs(1),
        }
    }
}

impl CacheBuilder {
    /// Prefix of every Redis key (`shop` gives `shop:k:prod:1`). Letters, digits and `_ - . :`.
    /// Put a version in it (`shop:v2`) to never read values written by an incompatible deploy.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The Redis L2, e.g. `redis://127.0.0.1:6379/0`. Without one the cache is L1-only.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Sets or clears the Redis URL.
    pub fn redis_url_opt(mut self, url: Option<String>) -> Self {
        self.redis_url = url;
        self
    }

    /// Fail `build()` if Redis cannot be reached (default: build degraded and connect later).
    pub fn require_redis(mut self, require: bool) -> Self {
        self.require_redis = require;
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

    /// How often marks (tag invalidations and clears by other instances) are re-read from Redis
    /// for L1 hits. Default 1 s.
    pub fn mark_refresh_interval(mut self, interval: Duration) -> Self {
        self.mark_refresh = interval;
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
    /// `_`. Two caches in one process should use different prefixes (else the last one's values
    /// win).
    #[cfg(feature = "metrics")]
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics_prefix = prefix.into();
        self
    }

    /// With the `metrics` feature: how often the statistics are copied into the `metrics`
    /// facade (default 1 s). Nothing is recorded per read.
    #[cfg(feature = "metrics")]
    pub fn metrics_interval(mut self, every: Duration) -> Self {
        self.metrics_interval = every;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        let ns_ok = !self.namespace.is_empty()
            && self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !ns_ok {
            return Err(ConfigError::new(
                ConfigErrorKind::Namespace,
                format!(
                    "namespace `{}` must be non-empty and use only letters, digits and `_ - . :`",
                    self.namespace
                ),
            )
            .into());
        }
        #[cfg(feature = "metrics")]
        {
            if self.metrics_interval.is_zero() {
                return Err(ConfigError::new(
                    ConfigErrorKind::Duration,
                    "metrics_interval must be positive",
                )
                .into());
            }
            let prefix = &self.metrics_prefix;
            if prefix.is_empty()
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::Namespace,
                    format!("metrics_prefix `{prefix}` must be non-empty letters, digits and `_`"),
                )
                .into());
            }
        }
        if self.op_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.mark_refresh.is_zero()
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Duration,
                "timeouts and intervals must be positive",
            )
            .into());
        }
        for (name, value) in [
            ("redis_timeout", self.op_timeout),
            ("redis_connect_timeout", self.connect_timeout),
            ("circuit_breaker cool-down", self.cool_down),
            ("max_entry_lifetime", self.max_entry_lifetime),
            ("mark_refresh_interval", self.mark_refresh),
            ("default_ttl", self.default_ttl),
        ] {
            if value > MAX_DURATION_SETTING {
                return Err(ConfigError::new(
                    ConfigErrorKind::Duration,
                    format!(
                        "{name} ({value:?}) exceeds the maximum of {MAX_DURATION_SETTING:?} (100 years)"
                    ),
                )
                .into());
            }
        }
        // Under these caps nothing derived from the settings overflows: the L2 budgets (at most
        // 100 × a timeout) and expiry times in µs since the epoch stay far below the limits, and
        // the budgets saturate regardless (`RedisSettings`).
        TtlPolicy::new(self.default_ttl).validate(self.max_entry_lifetime)
    }

    /// Builds the cache. Fails on invalid settings, or when Redis is required and unreachable;
    /// otherwise an unreachable Redis only means starting degraded.
    pub async fn build(self) -> Result<Cache, Error> {
        self.validate()?;
        let engine = Engine::start(self.into_config()).await?;
        Ok(Cache::from_engine(engine))
    }

    fn into_config(self) -> Config {
        Config {
            namespace: self.namespace,
            redis_url: self.redis_url,
            require_redis: self.require_redis,
            l1_capacity_bytes: self.l1_capacity_bytes,
            default_ttl: self.default_ttl,
            op_timeout: self.op_timeout,
            connect_timeout: self.connect_timeout,
            failure_threshold: self.failure_threshold,
            cool_down: self.cool_down,
            max_entry_lifetime: self.max_entry_lifetime,
            mark_refresh: self.mark_refresh,
            fleet_sample_every: self.fleet_sample_every,
            #[cfg(feature = "metrics")]
            metrics: (self.metrics_prefix, self.metrics_interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_have_a_kind() {
        let kind = |b: CacheBuilder| match b.validate() {
            Err(Error::Config(e)) => e.kind(),
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let b = CacheBuilder::default;
        assert_eq!(kind(b().namespace("")), ConfigErrorKind::Namespace);
        assert_eq!(
            kind(b().redis_timeout(Duration::ZERO)),
            ConfigErrorKind::Duration
        );
        assert_eq!(
            kind(b().default_ttl(Duration::MAX)),
            ConfigErrorKind::Duration
        );
        let long = Duration::from_secs(10 * 24 * 3600);
        assert_eq!(kind(b().default_ttl(long)), ConfigErrorKind::Policy);
    }

    fn config_error(b: CacheBuilder) -> String {
        match b.validate() {
            Err(Error::Config(e)) => e.message().to_owned(),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_required_redis_that_cannot_be_reached_is_an_error_with_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let built = CacheBuilder::default()
            .redis_url(format!("redis://127.0.0.1:{port}/"))
            .require_redis(true)
            .build()
            .await;
        let Err(error) = built else {
            panic!("nothing listens on port {port}");
        };
        let Error::RedisUnavailable(failure) = &error else {
            panic!("expected RedisUnavailable, got {error:?}");
        };
        assert!(
            failure
                .redis_error()
                .is_some_and(|e| e.is_connection_refusal()),
            "the refusal is kept: {failure:?}"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(CacheBuilder::default().validate().is_ok());
        let at_cap = CacheBuilder::default()
            .redis_timeout(MAX_DURATION_SETTING)
            .redis_connect_timeout(MAX_DURATION_SETTING)
            .max_entry_lifetime(MAX_DURATION_SETTING)
            .default_ttl(MAX_DURATION_SETTING);
        assert!(at_cap.validate().is_ok(), "the cap itself is accepted");
    }

    #[test]
    fn settings_that_would_overflow_later_are_rejected() {
        let huge = Duration::MAX;
        let b = CacheBuilder::default;
        assert!(config_error(b().redis_timeout(huge)).contains("redis_timeout"));
        assert!(config_error(b().redis_connect_timeout(huge)).contains("redis_connect_timeout"));
        assert!(config_error(b().circuit_breaker(3, huge)).contains("cool-down"));
        assert!(config_error(b().max_entry_lifetime(huge)).contains("max_entry_lifetime"));
        assert!(config_error(b().mark_refresh_interval(huge)).contains("mark_refresh_interval"));
        assert!(config_error(b().default_ttl(huge)).contains("default_ttl"));
        let just_over = MAX_DURATION_SETTING + Duration::from_secs(1);
        assert!(config_error(b().redis_timeout(just_over)).contains("redis_timeout"));
        // ttl + stale of the default policy is checked against max_entry_lifetime.
        assert!(
            config_error(b().default_ttl(Duration::from_secs(10 * 24 * 3600)))
                .contains("max entry lifetime")
        );
    }
}

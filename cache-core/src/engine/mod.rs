//! The two-tier engine under the facade ([`Cache`](crate::Cache)): what the cache does, one file
//! per concern.
//!
//! - [`read`]: the L1 probe every single-key read starts with (the hit path), L2 reads (one round
//!   trip, marks included) and the copies of L2 values into L1;
//! - [`load`]: cache-aside loads, single-key (one leader per key, [`single_flight`]; one loader in
//!   the fleet, [`lease`]) and batch, with fail-safe (a stale value served when the loader fails);
//! - [`refresh`]: refresh-ahead (a read late in an entry's TTL reloads it in the background);
//! - [`write`](mod@write): write-backs of loaded values and write-throughs (`set`), under the invalidation
//!   gate;
//! - [`invalidate`]: the invalidation log and its gate, the marks, and every invalidation;
//! - [`backplane`]: invalidations and overwrites pushed to the other instances, and received
//!   from them;
//! - [`background`]: the periodic L1 sweep.
//!
//! This file holds the [`Engine`] (private fields), its [`Config`] and constructor, and what the
//! facade reads of it (registry, statistics). The engine owns the tiers ([`crate::store`]), the
//! registry of patterns and of macro call sites, the log, the marks and the loads in flight. It
//! never touches the public API's shapes (the facade's) nor the code the macros generate
//! (`__private`'s), and never imports the facade or the builder.
//!
//! What the macros' support (`__private`) calls, its whole interface to the engine: [`Engine::id`]
//! and [`Engine::sites`] (a call site's binding), [`Engine::register_site`] (its pattern),
//! [`Engine::l1_probe`] (the hit path), [`Engine::load`] with a [`Loaded`] loader, and
//! [`Engine::set_many_shared`] and [`Engine::invalidate`] (`#[cache_put]`, `#[cache_evict]`).

mod background;
mod backplane;
mod fleet;
mod invalidate;
mod lease;
mod load;
mod read;
mod refresh;
mod single_flight;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) use lease::LeaseSettings;
pub(crate) use load::Loaded;
pub(crate) use read::Probe;

use self::backplane::Backplane;
use self::fleet::FleetSampler;
use self::invalidate::{InvalidationLog, TagClock};
use self::single_flight::Flights;
use crate::clock::Clock;
use crate::error::Error;
use crate::key::Pattern;
use crate::key::registry::{PatternConfig, Registry};
use crate::key::site::SiteRegistry;
use crate::key::template::Template;
use crate::metrics::Stats;
use crate::redis_target::configuration_failure;
use crate::store::memory::MemoryStore;
use crate::store::redis::deployment::Deployment;
use crate::store::redis::{RedisSettings, RedisStore, sentinel};
use crate::ttl::TtlPolicy;

/// What an engine is built from: the builder's settings, already validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) namespace: String,
    /// The L2's deployment (a server, Sentinel, a cluster), with its TLS and credentials;
    /// `None`: L1 only.
    pub(crate) redis: Option<Deployment>,
    pub(crate) require_redis: bool,
    /// Refused credentials or TLS handshake at build time: start degraded instead of failing.
    pub(crate) start_degraded_if_refused: bool,
    pub(crate) l1_capacity_bytes: u64,
    pub(crate) default_ttl: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) failure_threshold: u32,
    pub(crate) cool_down: Duration,
    pub(crate) max_entry_lifetime: Duration,
    /// A simulated error of this machine's wall clock, µs (tests only: 0).
    pub(crate) clock_skew_micros: i64,
    pub(crate) lease: LeaseSettings,
    /// The largest encoded value cached when a pattern's policy sets none.
    pub(crate) max_value_size: usize,
    /// One read in this many that reaches Redis is counted in the fleet's popularity sets (0: none).
    pub(crate) fleet_sample_every: u32,
    /// With the `metrics` feature: the metric names' prefix, how often they are reported, and
    /// to which recorder.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics_export::MetricsSettings,
}

/// The engine of one cache (shared by all its clones).
pub(crate) struct Engine {
    /// Distinguishes caches in one process (a macro call site binds to the first it meets).
    id: u64,
    namespace: String,
    registry: Arc<Registry>,
    sites: SiteRegistry,
    l1: MemoryStore,
    l2: Option<Arc<RedisStore>>,
    marks: TagClock,
    log: InvalidationLog,
    flights: Flights,
    lease: LeaseSettings,
    refreshing: refresh::Refreshing,
    fleet: FleetSampler,
    default_policy: TtlPolicy,
    max_lifetime: Duration,
    /// Redis's clock, estimated here: every stamp, mark and tombstone.
    clock: Arc<Clock>,
    backplane: Backplane,
    max_value_size: usize,
    /// With the `metrics` feature: copies the statistics into the `metrics` facade.
    #[cfg(feature = "metrics")]
    reporter: crate::metrics_export::Reporter,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Engine {
    /// Builds an engine and starts its background tasks. With an L2, connects once: failure is an
    /// error only if `require_redis`, else the engine starts degraded and connects later.
    pub(crate) async fn start(config: Config) -> Result<Arc<Engine>, Error> {
        let clock = Arc::new(Clock::new(config.clock_skew_micros));
        let l2 = match &config.redis {
            None => None,
            Some(deployment) => {
                Some(connect_l2(deployment.clone(), &config, Arc::clone(&clock)).await?)
            }
        };
        let registry = Arc::new(Registry::default());
        let l1 = MemoryStore::new(config.l1_capacity_bytes, {
            let registry = Arc::clone(&registry);
            move |pattern| registry.count_eviction(pattern)
        });
        let engine = Arc::new(Engine {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            namespace: config.namespace,
            registry,
            sites: SiteRegistry::default(),
            l1,
            l2,
            marks: TagClock::new(),
            log: InvalidationLog::new(Arc::clone(&clock)),
            flights: Flights::default(),
            lease: config.lease,
            refreshing: refresh::Refreshing::default(),
            fleet: FleetSampler::new(config.fleet_sample_every),
            default_policy: TtlPolicy::new(config.default_ttl),
            max_lifetime: config.max_entry_lifetime,
            clock,
            backplane: Backplane::new(),
            max_value_size: config.max_value_size,
            #[cfg(feature = "metrics")]
            reporter: crate::metrics_export::Reporter::new(&config.metrics),
        });
        backplane::start(&engine).await;
        background::start(&engine).await;
        #[cfg(feature = "metrics")]
        crate::metrics_export::spawn(&engine, config.metrics.interval);
        Ok(engine)
    }

    /// The cache's identity in this process.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// With the `metrics` feature: what reports the statistics to the `metrics` facade.
    #[cfg(feature = "metrics")]
    pub(crate) fn reporter(&self) -> &crate::metrics_export::Reporter {
        &self.reporter
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn has_l2(&self) -> bool {
        self.l2.is_some()
    }

    /// The L2 store, for health checks.
    pub(crate) fn l2(&self) -> Option<&RedisStore> {
        self.l2.as_deref()
    }

    /// (entries, weighted bytes, capacity bytes) of L1.
    pub(crate) fn l1_usage(&self) -> (u64, u64, u64) {
        self.l1.usage()
    }

    pub(crate) fn default_policy(&self) -> &TtlPolicy {
        &self.default_policy
    }

    /// The bindings of macro call sites to this cache (other than each site's first cache).
    #[inline]
    pub(crate) fn sites(&self) -> &SiteRegistry {
        &self.sites
    }

    pub(crate) fn register(&self, config: PatternConfig) -> Result<Pattern, Error> {
        self.registry.register(config, self.max_lifetime)
    }

    /// The pattern a macro call site uses (see [`Registry::register_site`]).
    pub(crate) fn register_site(
        &self,
        key: &Template,
        policy: Option<TtlPolicy>,
    ) -> Result<Pattern, Error> {
        self.registry
            .register_site(key, policy, &self.default_policy, self.max_lifetime)
    }

    pub(crate) fn pattern(&self, template: &str) -> Option<Pattern> {
        self.registry.get(template)
    }

    pub(crate) fn patterns(&self) -> Vec<Pattern> {
        self.registry.all()
    }

    /// A snapshot of the counters of every pattern, and L1 usage.
    pub(crate) fn stats(&self) -> Stats {
        let patterns = self
            .registry
            .all()
            .iter()
            .map(|p| p.stats().snapshot(p.template()))
            .collect();
        let unattributed = self.l2.as_ref().map_or(0, |l2| l2.unattributed_errors());
        Stats::new(
            patterns,
            unattributed,
            self.l1.usage(),
            self.backplane.snapshot(self.l2.is_some()),
        )
    }

    pub(crate) fn loads_in_flight(&self) -> usize {
        self.flights.in_flight()
    }
}

/// The L2 store of `config`, connected once. Refused credentials and failed TLS handshakes are
/// configuration errors at once ([`configuration_failure`]); Redis unreachable is an error only
/// with `require_redis`.
async fn connect_l2(
    deployment: Deployment,
    config: &Config,
    clock: Arc<Clock>,
) -> Result<Arc<RedisStore>, Error> {
    let store = Arc::new(RedisStore::new(
        deployment.clone(),
        RedisSettings {
            namespace: config.namespace.clone(),
            op_timeout: config.op_timeout,
            connect_timeout: config.connect_timeout,
            failure_threshold: config.failure_threshold,
            cool_down: config.cool_down,
            mark_retention: config.max_entry_lifetime,
        },
        clock,
    ));
    if let Deployment::Sentinel(target) = &deployment {
        sentinel::watch(Arc::clone(target), Arc::downgrade(&store));
    }
    if let Err(e) = store.connect().await {
        if let Some(config_error) = configuration_failure(&e, &deployment.connection_info()) {
            if !config.start_degraded_if_refused {
                return Err(config_error.into());
            }
            tracing::warn!(
                error = %config_error,
                "Redis refused the cache at start: running on L1, probing Redis until it accepts"
            );
            return Ok(store);
        }
        if config.require_redis {
            return Err(Error::RedisUnavailable(e));
        }
        tracing::warn!(error = %e, "Redis unreachable at start: running on L1 until it answers");
    }
    Ok(store)
}

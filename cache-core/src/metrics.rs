//! Counters per key pattern and tier, and load latency; snapshots through [`Cache::stats`](crate::Cache::stats).
//!
//! Owns the counters and their snapshot types. Never decides what to count: the engine bumps the
//! counters of the pattern a call concerns; the store counts only what no pattern is charged with.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the load latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Live counters of one pattern. Private atomics; read through [`PatternStatsSnapshot`].
#[derive(Debug, Default)]
pub(crate) struct PatternStats {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) l2_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) lease_waits: AtomicU64,
    pub(crate) lease_timeouts: AtomicU64,
    pub(crate) refresh_aheads: AtomicU64,
    pub(crate) soft_timeouts: AtomicU64,
    pub(crate) hard_timeouts: AtomicU64,
    pub(crate) load_nanos: AtomicU64,
    load_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

/// A latency histogram of atomics: counts per bucket of [`LATENCY_BUCKETS`] (and +Inf) and the
/// total time. Recorded per Redis call with the `metrics` feature.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    nanos: AtomicU64,
}

impl LatencyHistogram {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn record(&self, took: Duration) {
        self.nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        bump(&self.buckets[bucket_of(took)]);
    }

    /// Cumulative counts per upper bound (the last `+Inf`), and the total time.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn snapshot(&self) -> (Vec<(f64, u64)>, Duration) {
        (
            cumulative(&self.buckets),
            Duration::from_nanos(self.nanos.load(Relaxed)),
        )
    }
}

/// The bucket of [`LATENCY_BUCKETS`] (or the last, +Inf) a duration falls in.
fn bucket_of(took: Duration) -> usize {
    let secs = took.as_secs_f64();
    LATENCY_BUCKETS
        .iter()
        .position(|&b| secs <= b)
        .unwrap_or(LATENCY_BUCKETS.len())
}

/// Cumulative counts per upper bound, the last `+Inf`.
fn cumulative(buckets: &[AtomicU64]) -> Vec<(f64, u64)> {
    let mut total = 0;
    buckets
        .iter()
        .zip(LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]))
        .map(|(count, le)| {
            total += count.load(Relaxed);
            (le, total)
        })
        .collect()
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl PatternStats {
    pub(crate) fn record_load(&self, took: Duration, ok: bool) {
        bump(&self.loads);
        if !ok {
            bump(&self.load_errors);
        }
        self.load_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        bump(&self.load_buckets[bucket_of(took)]);
    }

    pub(crate) fn snapshot(&self, pattern: &str) -> PatternStatsSnapshot {
        let load_latency_buckets = cumulative(&self.load_buckets);
        PatternStatsSnapshot {
            pattern: pattern.to_owned(),
            counters: Counters {
                l1_hits: self.l1_hits.load(Relaxed),
                l2_hits: self.l2_hits.load(Relaxed),
                misses: self.misses.load(Relaxed),
                loads: self.loads.load(Relaxed),
                load_errors: self.load_errors.load(Relaxed),
                l2_errors: self.l2_errors.load(Relaxed),
                decode_errors: self.decode_errors.load(Relaxed),
                oversize: self.oversize.load(Relaxed),
                stale_served: self.stale_served.load(Relaxed),
                evictions: self.evictions.load(Relaxed),
                lease_waits: self.lease_waits.load(Relaxed),
                lease_timeouts: self.lease_timeouts.load(Relaxed),
                refresh_aheads: self.refresh_aheads.load(Relaxed),
                soft_timeouts: self.soft_timeouts.load(Relaxed),
                hard_timeouts: self.hard_timeouts.load(Relaxed),
                load_time: Duration::from_nanos(self.load_nanos.load(Relaxed)),
            },
            load_latency_buckets,
        }
    }
}

/// Counter values, per pattern or summed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::Error> {
/// # use cache_core::{Cache, PatternConfig, TtlPolicy};
/// # use std::time::Duration;
/// let cache = Cache::builder().build().await?;
/// let p = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
/// let key = p.key(&[&1u64])?;
/// let _ = cache.get_or_load(&key, || async { Err::<u8, _>("db down") }).await;
/// cache.get_or_load(&key, || async { Ok::<_, &str>(1u8) }).await.unwrap();
/// cache.get::<u8>(&key).await;
/// let c = cache.stats().total;
/// assert_eq!((c.misses, c.loads, c.load_errors, c.l1_hits), (2, 2, 1, 1));
/// assert!((c.hit_ratio() - 1.0 / 3.0).abs() < 1e-9);
/// assert_eq!(c.l1_hit_ratio(), c.hit_ratio()); // no L2 here
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Served from L1.
    pub l1_hits: u64,
    /// Served from L2 (and copied into L1).
    pub l2_hits: u64,
    /// Found in neither tier.
    pub misses: u64,
    /// Loader runs.
    pub loads: u64,
    /// Loader runs that returned `Err`.
    pub load_errors: u64,
    /// Failed or skipped-by-timeout Redis calls.
    pub l2_errors: u64,
    /// Values in Redis that did not decode (deleted and reloaded).
    pub decode_errors: u64,
    /// Values served but not cached: their encoded form exceeded the pattern's maximum size
    /// ([`TtlPolicy::max_size`](crate::TtlPolicy::max_size)).
    pub oversize: u64,
    /// Stale values served because the loader failed (fail-safe).
    pub stale_served: u64,
    /// L1 entries evicted to stay within the byte budget.
    pub evictions: u64,
    /// Loads that found another instance's fleet lease on the key and waited for its value.
    pub lease_waits: u64,
    /// Lease waits that ran out of time: the caller then loaded by itself.
    pub lease_timeouts: u64,
    /// Background reloads run by refresh-ahead (in this instance).
    pub refresh_aheads: u64,
    /// Loads past their soft timeout: the caller got the stale value, the load went on.
    pub soft_timeouts: u64,
    /// Loads past their hard timeout: abandoned, the stale value served.
    pub hard_timeouts: u64,
    /// Total time spent in loaders.
    pub load_time: Duration,
}

impl Counters {
    /// Hits over lookups, in `[0, 1]`; 0 when nothing was looked up.
    pub fn hit_ratio(&self) -> f64 {
        let hits = self.l1_hits + self.l2_hits;
        let total = hits + self.misses;
        if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        }
    }

    /// L1 hits over lookups.
    pub fn l1_hit_ratio(&self) -> f64 {
        let total = self.l1_hits + self.l2_hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.l1_hits as f64 / total as f64
        }
    }

    fn add(&mut self, o: &Counters) {
        self.l1_hits += o.l1_hits;
        self.l2_hits += o.l2_hits;
        self.misses += o.misses;
        self.loads += o.loads;
        self.load_errors += o.load_errors;
        self.l2_errors += o.l2_errors;
        self.decode_errors += o.decode_errors;
        self.oversize += o.oversize;
        self.stale_served += o.stale_served;
        self.evictions += o.evictions;
        self.lease_waits += o.lease_waits;
        self.lease_timeouts += o.lease_timeouts;
        self.refresh_aheads += o.refresh_aheads;
        self.soft_timeouts += o.soft_timeouts;
        self.hard_timeouts += o.hard_timeouts;
        self.load_time += o.load_time;
    }
}

/// The counters of one pattern.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PatternStatsSnapshot {
    /// The pattern's template.
    pub pattern: String,
    /// Its counters.
    pub counters: Counters,
    /// Cumulative load latency histogram: (upper bound in seconds, loads at most that long).
    pub load_latency_buckets: Vec<(f64, u64)>,
}

/// A snapshot of the whole cache's statistics, from [`Cache::stats`](crate::Cache::stats).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::Error> {
/// # use cache_core::{Cache, PatternConfig, TtlPolicy};
/// # use std::time::Duration;
/// let cache = Cache::builder().build().await?;
/// let p = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
/// cache.set(&p.key(&[&1u64])?, 1u8).await;
/// cache.get::<u8>(&p.key(&[&1u64])?).await;
/// let stats = cache.stats();
/// let prod = stats.pattern("prod:<id>").expect("registered");
/// assert_eq!(prod.counters.l1_hits, 1);
/// assert_eq!(stats.total, prod.counters); // one pattern: the total is its counters
/// assert_eq!(stats.l1_entries, 1);
/// assert!(stats.l1_weighted_bytes > 0 && stats.l1_weighted_bytes <= stats.l1_capacity_bytes);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Per pattern, sorted by template.
    pub patterns: Vec<PatternStatsSnapshot>,
    /// Sum over patterns.
    pub total: Counters,
    /// Redis calls that failed outside any pattern (invalidations, tag reads, probes).
    pub l2_errors_unattributed: u64,
    /// Entries in L1.
    pub l1_entries: u64,
    /// Weighted size of L1, in bytes.
    pub l1_weighted_bytes: u64,
    /// The L1 byte budget.
    pub l1_capacity_bytes: u64,
    /// The backplane (invalidations pushed between instances).
    pub backplane: BackplaneStats,
}

/// The backplane's state and counters: see [`Stats::backplane`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Whether there is one (with an L2).
    pub enabled: bool,
    /// Whether the instance reads it right now (if not, L1 entries older than the outage were
    /// dropped and later ones are served at most their L1 TTL).
    pub subscribed: bool,
    /// Messages sent (invalidations and overwrites made here).
    pub published: u64,
    /// Messages of other instances applied here.
    pub received: u64,
    /// Times L1 was dropped (wholly, or the entries older than a gap) because messages may
    /// have been missed: a subscription lost, a gap the stream no longer held.
    pub resyncs: u64,
    /// The delay of the last message received, from its sending to its application here (on
    /// Redis's clock, so not skewed by the two machines' clocks).
    pub lag: std::time::Duration,
}

impl Stats {
    pub(crate) fn new(
        patterns: Vec<PatternStatsSnapshot>,
        l2_errors_unattributed: u64,
        l1: (u64, u64, u64),
        backplane: BackplaneStats,
    ) -> Self {
        let mut total = Counters::default();
        for p in &patterns {
            total.add(&p.counters);
        }
        Stats {
            patterns,
            total,
            l2_errors_unattributed,
            l1_entries: l1.0,
            l1_weighted_bytes: l1.1,
            l1_capacity_bytes: l1.2,
            backplane,
        }
    }

    /// The snapshot of one pattern.
    pub fn pattern(&self, template: &str) -> Option<&PatternStatsSnapshot> {
        self.patterns.iter().find(|p| p.pattern == template)
    }

    /// Overall hit ratio.
    pub fn hit_ratio(&self) -> f64 {
        self.total.hit_ratio()
    }
}

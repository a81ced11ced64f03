//! The `metrics` feature: the cache's statistics reported through the [`metrics`] facade, so
//! that any service gets them with the exporter of its choice (Prometheus, StatsD, ...).
//!
//! Nothing is recorded on a read: a background task, once per
//! [`CacheBuilder::metrics_interval`](crate::CacheBuilder::metrics_interval), snapshots the
//! counters the cache keeps anyway ([`Cache::stats`](crate::Cache::stats)) and sets the facade's
//! counters to their values (`absolute`), its gauges to the current levels;
//! [`Cache::report_metrics`] does the same at once (a scrape handler that wants the values of
//! this instant). The L1 hit path is the same with the feature as without it; without it this
//! file is not compiled.
//!
//! The series go to the recorder given to
//! [`CacheBuilder::metrics_recorder`](crate::CacheBuilder::metrics_recorder), else to the
//! process's recorder (the one installed when the cache is built): a process with several
//! caches gives each its own recorder, or its own prefix.
//!
//! Metric names start with the prefix of
//! [`CacheBuilder::metrics_prefix`](crate::CacheBuilder::metrics_prefix) (default `tiercache`),
//! shown here as `P`:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `P_hits_total` | counter | `pattern`, `tier` (`l1`, `l2`) |
//! | `P_misses_total`, `P_loads_total`, `P_load_errors_total`, `P_l2_errors_total`, `P_decode_errors_total`, `P_oversize_total`, `P_stale_served_total`, `P_evictions_total`, `P_lease_waits_total`, `P_lease_timeouts_total`, `P_refresh_aheads_total`, `P_soft_timeouts_total`, `P_hard_timeouts_total` | counter | `pattern` |
//! | `P_hit_ratio` | gauge: hits over lookups, all patterns | |
//! | `P_load_seconds_bucket` (cumulative, `le`), `P_load_seconds_count` | counter | `pattern` |
//! | `P_load_seconds_sum` (seconds) | gauge | `pattern` |
//! | `P_l2_seconds_bucket` (`le`), `P_l2_seconds_count`; `P_l2_seconds_sum` | counter; gauge | (every Redis call) |
//! | `P_l2_errors_unattributed_total` | counter | |
//! | `P_loads_in_flight`, `P_l1_entries`, `P_l1_bytes`, `P_l1_capacity_bytes`, `P_l2_pending_invalidations` | gauge | |
//! | `P_circuit_state` | gauge: 0 closed, 1 half-open, 2 open | |
//! | `P_backplane_subscribed` (0/1), `P_backplane_lag_seconds` | gauge | |
//! | `P_backplane_messages_total` | counter | `direction` (`sent`, `received`) |
//! | `P_backplane_resyncs_total` | counter | |
//!
//! The latency histograms are exported as their cumulative bucket counters (what a Prometheus
//! histogram is made of: `histogram_quantile` reads them), because the cache keeps buckets, not
//! samples.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Recorder};
use parking_lot::Mutex;

use crate::cache::Cache;
use crate::engine::Engine;
use crate::metrics::{Counters, LATENCY_BUCKETS, PatternStatsSnapshot};
use crate::store::circuit::CircuitState;

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A recorder shared with the service (which renders it), as the builder keeps it.
pub(crate) type SharedRecorder = Arc<dyn Recorder + Send + Sync>;

/// The builder's metrics settings: prefix, interval, and the recorder if not the process's.
#[derive(Clone)]
pub(crate) struct MetricsSettings {
    pub(crate) prefix: String,
    pub(crate) interval: Duration,
    pub(crate) recorder: Option<SharedRecorder>,
}

impl fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("prefix", &self.prefix)
            .field("interval", &self.interval)
            .field("recorder", &self.recorder.as_ref().map(|_| "given"))
            .finish()
    }
}

/// The per-pattern counter families: name (after the prefix), help, and how to read it.
type Family = (&'static str, &'static str, fn(&Counters) -> u64);

const PER_PATTERN: [Family; 13] = [
    (
        "misses_total",
        "Lookups found in neither tier, per key pattern.",
        |c| c.misses,
    ),
    ("loads_total", "Loader runs per key pattern.", |c| c.loads),
    (
        "load_errors_total",
        "Loader runs that failed, per key pattern.",
        |c| c.load_errors,
    ),
    (
        "l2_errors_total",
        "Failed or skipped Redis calls, per key pattern.",
        |c| c.l2_errors,
    ),
    (
        "decode_errors_total",
        "Values in Redis that did not decode, per key pattern.",
        |c| c.decode_errors,
    ),
    (
        "oversize_total",
        "Values served but not cached: larger than the pattern's maximum size.",
        |c| c.oversize,
    ),
    (
        "stale_served_total",
        "Stale values served because the loader failed, per key pattern.",
        |c| c.stale_served,
    ),
    (
        "evictions_total",
        "L1 entries evicted for room, per key pattern.",
        |c| c.evictions,
    ),
    (
        "lease_waits_total",
        "Loads that waited for another instance's value under its fleet lease.",
        |c| c.lease_waits,
    ),
    (
        "lease_timeouts_total",
        "Fleet lease waits that timed out (the instance then loaded by itself).",
        |c| c.lease_timeouts,
    ),
    (
        "refresh_aheads_total",
        "Background reloads run by refresh-ahead.",
        |c| c.refresh_aheads,
    ),
    (
        "soft_timeouts_total",
        "Loads past their soft timeout (the stale value served meanwhile).",
        |c| c.soft_timeouts,
    ),
    (
        "hard_timeouts_total",
        "Loads abandoned past their hard timeout (the stale value served).",
        |c| c.hard_timeouts,
    ),
];

/// The other families (help texts): counters end in `_total` or `_bucket`, the rest are gauges.
const OTHERS: [(&str, &str); 16] = [
    ("hits_total", "Cache hits per key pattern and tier."),
    (
        "load_seconds_bucket",
        "Loads at most `le` seconds long (cumulative), per key pattern.",
    ),
    (
        "l2_seconds_bucket",
        "Redis calls at most `le` seconds long (cumulative).",
    ),
    (
        "l2_errors_unattributed_total",
        "Failed Redis calls outside any key pattern (invalidations, tag reads, probes).",
    ),
    ("hit_ratio", "Hits over lookups, all patterns."),
    ("loads_in_flight", "Loads running now."),
    ("l1_entries", "Entries in L1."),
    ("l1_bytes", "Weighted size of L1, bytes."),
    ("l1_capacity_bytes", "The L1 byte budget."),
    (
        "l2_pending_invalidations",
        "Invalidations waiting for Redis to answer again.",
    ),
    (
        "circuit_state",
        "The Redis circuit breaker: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "backplane_subscribed",
        "1 while this instance reads the backplane (invalidations pushed by the others).",
    ),
    (
        "backplane_messages_total",
        "Backplane messages sent by this instance and received from the others.",
    ),
    (
        "backplane_resyncs_total",
        "Times L1 was dropped because backplane messages may have been missed.",
    ),
    (
        "backplane_lag_seconds",
        "Delay of the last backplane message received, from its sending (Redis's clock).",
    ),
    (
        "load_seconds_sum",
        "Time spent in loaders, seconds, per key pattern.",
    ),
];

/// The facade's handles, registered once per series.
struct Handles {
    prefix: String,
    patterns: HashMap<String, PatternHandles>,
    l2_latency: Histogram,
    unattributed: Counter,
    hit_ratio: Gauge,
    in_flight: Gauge,
    l1_entries: Gauge,
    l1_bytes: Gauge,
    l1_capacity: Gauge,
    pending: Gauge,
    circuit: Gauge,
    backplane: BackplaneHandles,
}

struct PatternHandles {
    l1_hits: Counter,
    l2_hits: Counter,
    /// One per [`PER_PATTERN`] family, in its order.
    families: Vec<Counter>,
    load_latency: Histogram,
}

struct BackplaneHandles {
    subscribed: Gauge,
    sent: Counter,
    received: Counter,
    resyncs: Counter,
    lag: Gauge,
}

/// A histogram's bucket counters (cumulative, one per bound and `+Inf`), sum and count.
struct Histogram {
    buckets: Vec<Counter>,
    sum: Gauge,
    count: Counter,
}

fn name(prefix: &str, what: &str) -> String {
    format!("{prefix}_{what}")
}

fn counter(name: String, labels: Vec<Label>) -> Counter {
    metrics::with_recorder(|r| r.register_counter(&Key::from_parts(name, labels), &METADATA))
}

fn gauge(name: String, labels: Vec<Label>) -> Gauge {
    metrics::with_recorder(|r| r.register_gauge(&Key::from_parts(name, labels), &METADATA))
}

impl Histogram {
    fn new(prefix: &str, what: &str, labels: &[Label]) -> Self {
        let bounds = LATENCY_BUCKETS
            .iter()
            .map(f64::to_string)
            .chain(["+Inf".to_owned()]);
        let with = |extra: Option<Label>| labels.iter().cloned().chain(extra).collect::<Vec<_>>();
        Histogram {
            buckets: bounds
                .map(|le| {
                    counter(
                        name(prefix, &format!("{what}_bucket")),
                        with(Some(Label::new("le", le))),
                    )
                })
                .collect(),
            sum: gauge(name(prefix, &format!("{what}_sum")), with(None)),
            count: counter(name(prefix, &format!("{what}_count")), with(None)),
        }
    }

    fn set(&self, cumulative: &[(f64, u64)], sum: Duration) {
        for (counter, (_, n)) in self.buckets.iter().zip(cumulative) {
            counter.absolute(*n);
        }
        self.count
            .absolute(cumulative.last().map_or(0, |&(_, n)| n));
        self.sum.set(sum.as_secs_f64());
    }
}

impl PatternHandles {
    fn new(prefix: &str, pattern: &str) -> Self {
        let labels = || vec![Label::new("pattern", pattern.to_owned())];
        let tier = |tier: &'static str| {
            let mut labels = labels();
            labels.push(Label::new("tier", tier));
            counter(name(prefix, "hits_total"), labels)
        };
        PatternHandles {
            l1_hits: tier("l1"),
            l2_hits: tier("l2"),
            families: PER_PATTERN
                .iter()
                .map(|(what, _, _)| counter(name(prefix, what), labels()))
                .collect(),
            load_latency: Histogram::new(prefix, "load_seconds", &labels()),
        }
    }

    fn set(&self, p: &PatternStatsSnapshot) {
        let c = &p.counters;
        self.l1_hits.absolute(c.l1_hits);
        self.l2_hits.absolute(c.l2_hits);
        for (handle, (_, _, read)) in self.families.iter().zip(PER_PATTERN) {
            handle.absolute(read(c));
        }
        self.load_latency.set(&p.load_latency_buckets, c.load_time);
    }
}

impl BackplaneHandles {
    fn new(prefix: &str) -> Self {
        let direction = |d: &'static str| {
            counter(
                name(prefix, "backplane_messages_total"),
                vec![Label::new("direction", d)],
            )
        };
        BackplaneHandles {
            subscribed: gauge(name(prefix, "backplane_subscribed"), Vec::new()),
            sent: direction("sent"),
            received: direction("received"),
            resyncs: counter(name(prefix, "backplane_resyncs_total"), Vec::new()),
            lag: gauge(name(prefix, "backplane_lag_seconds"), Vec::new()),
        }
    }
}

impl Handles {
    fn new(prefix: &str) -> Self {
        describe(prefix);
        let plain = |what: &str| gauge(name(prefix, what), Vec::new());
        Handles {
            prefix: prefix.to_owned(),
            patterns: HashMap::new(),
            l2_latency: Histogram::new(prefix, "l2_seconds", &[]),
            unattributed: counter(name(prefix, "l2_errors_unattributed_total"), Vec::new()),
            hit_ratio: plain("hit_ratio"),
            in_flight: plain("loads_in_flight"),
            l1_entries: plain("l1_entries"),
            l1_bytes: plain("l1_bytes"),
            l1_capacity: plain("l1_capacity_bytes"),
            pending: plain("l2_pending_invalidations"),
            circuit: plain("circuit_state"),
            backplane: BackplaneHandles::new(prefix),
        }
    }

    /// Sets every series from the engine's counters now (registering the series of a pattern
    /// seen for the first time).
    fn record(&mut self, engine: &Engine) {
        let stats = engine.stats();
        for p in &stats.patterns {
            let prefix = &self.prefix;
            self.patterns
                .entry(p.pattern.clone())
                .or_insert_with(|| PatternHandles::new(prefix, &p.pattern))
                .set(p);
        }
        self.unattributed.absolute(stats.l2_errors_unattributed);
        self.hit_ratio.set(stats.hit_ratio());
        self.in_flight.set(engine.loads_in_flight() as f64);
        self.l1_entries.set(stats.l1_entries as f64);
        self.l1_bytes.set(stats.l1_weighted_bytes as f64);
        self.l1_capacity.set(stats.l1_capacity_bytes as f64);
        let bp = &stats.backplane;
        self.backplane
            .subscribed
            .set(f64::from(u8::from(bp.subscribed)));
        self.backplane.sent.absolute(bp.published);
        self.backplane.received.absolute(bp.received);
        self.backplane.resyncs.absolute(bp.resyncs);
        self.backplane.lag.set(bp.lag.as_secs_f64());
        if let Some(l2) = engine.l2() {
            self.pending.set(l2.pending_invalidations() as f64);
            self.circuit.set(match l2.circuit_state() {
                CircuitState::Closed => 0.0,
                CircuitState::HalfOpen => 1.0,
                CircuitState::Open => 2.0,
            });
            let (buckets, sum) = l2.latency().snapshot();
            self.l2_latency.set(&buckets, sum);
        }
    }
}

/// Describes every family once (help texts for the exporter).
fn describe(prefix: &str) {
    let families = PER_PATTERN
        .iter()
        .map(|(what, help, _)| (*what, *help))
        .chain(OTHERS);
    metrics::with_recorder(|r| {
        for (what, help) in families {
            let key = name(prefix, what).into();
            if what.ends_with("_total") || what.ends_with("_bucket") {
                r.describe_counter(key, None, help.into());
            } else {
                r.describe_gauge(key, None, help.into());
            }
        }
    });
}

/// What copies one engine's statistics into the facade: its handles, and the recorder they
/// belong to when the builder was given one.
pub(crate) struct Reporter {
    recorder: Option<SharedRecorder>,
    handles: Mutex<Handles>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("prefix", &self.handles.lock().prefix)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// Registers the cache-wide series with the recorder of `settings` (else the process's).
    pub(crate) fn new(settings: &MetricsSettings) -> Reporter {
        let recorder = settings.recorder.clone();
        let handles = within(recorder.as_ref(), || Handles::new(&settings.prefix));
        Reporter {
            recorder,
            handles: Mutex::new(handles),
        }
    }

    /// Sets every series of `engine` now.
    pub(crate) fn report(&self, engine: &Engine) {
        let mut handles = self.handles.lock();
        within(self.recorder.as_ref(), || handles.record(engine));
    }
}

/// Runs `f` with `recorder` as the facade's recorder on this thread, if there is one.
fn within<T>(recorder: Option<&SharedRecorder>, f: impl FnOnce() -> T) -> T {
    match recorder {
        Some(recorder) => metrics::with_local_recorder(recorder.as_ref(), f),
        None => f(),
    }
}

/// Starts the task that reports `engine`'s statistics every `every` while it lives.
pub(crate) fn spawn(engine: &Arc<Engine>, every: Duration) {
    let engine: Weak<Engine> = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            engine.reporter().report(&engine);
        }
    });
}

impl Cache {
    /// With the `metrics` feature: copies the statistics into the `metrics` facade now, rather
    /// than at the next [`CacheBuilder::metrics_interval`](crate::CacheBuilder::metrics_interval)
    /// tick. A scrape handler calls it before rendering, so that a scrape shows every call made
    /// before it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// use std::sync::Arc;
    /// use metrics_util::debugging::DebuggingRecorder;
    /// let recorder = Arc::new(DebuggingRecorder::new());
    /// let snapshotter = recorder.snapshotter();
    /// let cache = cache_core::Cache::builder()
    ///     .metrics_prefix("shop_cache")
    ///     .metrics_recorder(recorder)
    ///     .build()
    ///     .await?;
    /// cache.report_metrics();
    /// let names: Vec<String> = snapshotter
    ///     .snapshot()
    ///     .into_vec()
    ///     .into_iter()
    ///     .map(|(key, ..)| key.key().name().to_owned())
    ///     .collect();
    /// assert!(names.iter().any(|n| n == "shop_cache_l1_entries"), "{names:?}");
    /// # Ok(()) }
    /// ```
    pub fn report_metrics(&self) {
        self.engine().reporter().report(self.engine());
    }
}

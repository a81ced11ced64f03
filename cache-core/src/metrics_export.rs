//! The `metrics` feature: the cache's statistics reported through the [`metrics`] facade, so
//! that any service gets them with the exporter of its choice (Prometheus, StatsD, ...).
//!
//! Nothing is recorded on a read: a background task, once per
//! [`CacheBuilder::metrics_interval`](crate::CacheBuilder::metrics_interval), snapshots the
//! counters the cache keeps anyway ([`Cache::stats`](crate::Cache::stats)) and sets the facade's
//! counters to their values (`absolute`), its gauges to the current levels. The L1 hit path is
//! the same with the feature as without it; without it this file is not compiled.
//!
//! Metric names start with the prefix of
//! [`CacheBuilder::metrics_prefix`](crate::CacheBuilder::metrics_prefix) (default `tiercache`),
//! shown here as `P`:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `P_hits_total` | counter | `pattern`, `tier` (`l1`, `l2`) |
//! | `P_misses_total`, `P_loads_total`, `P_load_errors_total`, `P_l2_errors_total`, `P_decode_errors_total`, `P_stale_served_total`, `P_evictions_total` | counter | `pattern` |
//! | `P_load_seconds_bucket` (cumulative, `le`), `P_load_seconds_count` | counter | `pattern` |
//! | `P_load_seconds_sum` (seconds) | gauge | `pattern` |
//! | `P_l2_seconds_bucket` (`le`), `P_l2_seconds_count`; `P_l2_seconds_sum` | counter; gauge | (every Redis call) |
//! | `P_l2_errors_unattributed_total` | counter | |
//! | `P_loads_in_flight`, `P_l1_entries`, `P_l1_bytes`, `P_l1_capacity_bytes`, `P_l2_pending_invalidations` | gauge | |
//! | `P_circuit_state` | gauge: 0 closed, 1 half-open, 2 open | |
//!
//! The latency histograms are exported as their cumulative bucket counters (what a Prometheus
//! histogram is made of: `histogram_quantile` reads them), because the cache keeps buckets, not
//! samples.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use metrics::{Counter, Gauge, Key, Label, Level, Metadata};

use crate::engine::Engine;
use crate::metrics::{LATENCY_BUCKETS, PatternStatsSnapshot};
use crate::store::circuit::CircuitState;

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The facade's handles, registered once per series.
struct Handles {
    prefix: String,
    patterns: HashMap<String, PatternHandles>,
    l2_latency: Histogram,
    unattributed: Counter,
    in_flight: Gauge,
    l1_entries: Gauge,
    l1_bytes: Gauge,
    l1_capacity: Gauge,
    pending: Gauge,
    circuit: Gauge,
}

struct PatternHandles {
    l1_hits: Counter,
    l2_hits: Counter,
    misses: Counter,
    loads: Counter,
    load_errors: Counter,
    l2_errors: Counter,
    decode_errors: Counter,
    stale_served: Counter,
    evictions: Counter,
    load_latency: Histogram,
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

fn gauge(name: String) -> Gauge {
    metrics::with_recorder(|r| r.register_gauge(&Key::from_name(name), &METADATA))
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
            sum: metrics::with_recorder(|r| {
                r.register_gauge(
                    &Key::from_parts(name(prefix, &format!("{what}_sum")), with(None)),
                    &METADATA,
                )
            }),
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
            counter(
                name(prefix, "hits_total"),
                vec![
                    Label::new("pattern", pattern.to_owned()),
                    Label::new("tier", tier),
                ],
            )
        };
        let family = |what: &str| counter(name(prefix, what), labels());
        PatternHandles {
            l1_hits: tier("l1"),
            l2_hits: tier("l2"),
            misses: family("misses_total"),
            loads: family("loads_total"),
            load_errors: family("load_errors_total"),
            l2_errors: family("l2_errors_total"),
            decode_errors: family("decode_errors_total"),
            stale_served: family("stale_served_total"),
            evictions: family("evictions_total"),
            load_latency: Histogram::new(prefix, "load_seconds", &labels()),
        }
    }

    fn set(&self, p: &PatternStatsSnapshot) {
        let c = &p.counters;
        self.l1_hits.absolute(c.l1_hits);
        self.l2_hits.absolute(c.l2_hits);
        self.misses.absolute(c.misses);
        self.loads.absolute(c.loads);
        self.load_errors.absolute(c.load_errors);
        self.l2_errors.absolute(c.l2_errors);
        self.decode_errors.absolute(c.decode_errors);
        self.stale_served.absolute(c.stale_served);
        self.evictions.absolute(c.evictions);
        self.load_latency.set(&p.load_latency_buckets, c.load_time);
    }
}

impl Handles {
    fn new(prefix: &str) -> Self {
        describe(prefix);
        Handles {
            prefix: prefix.to_owned(),
            patterns: HashMap::new(),
            l2_latency: Histogram::new(prefix, "l2_seconds", &[]),
            unattributed: counter(name(prefix, "l2_errors_unattributed_total"), Vec::new()),
            in_flight: gauge(name(prefix, "loads_in_flight")),
            l1_entries: gauge(name(prefix, "l1_entries")),
            l1_bytes: gauge(name(prefix, "l1_bytes")),
            l1_capacity: gauge(name(prefix, "l1_capacity_bytes")),
            pending: gauge(name(prefix, "l2_pending_invalidations")),
            circuit: gauge(name(prefix, "circuit_state")),
        }
    }

    /// Sets every series from the engine's counters now.
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
        self.in_flight.set(engine.loads_in_flight() as f64);
        self.l1_entries.set(stats.l1_entries as f64);
        self.l1_bytes.set(stats.l1_weighted_bytes as f64);
        self.l1_capacity.set(stats.l1_capacity_bytes as f64);
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
    let families: [(&str, &str); 17] = [
        ("hits_total", "Cache hits per key pattern and tier."),
        (
            "misses_total",
            "Lookups found in neither tier, per key pattern.",
        ),
        ("loads_total", "Loader runs per key pattern."),
        (
            "load_errors_total",
            "Loader runs that failed, per key pattern.",
        ),
        (
            "l2_errors_total",
            "Failed or skipped Redis calls, per key pattern.",
        ),
        (
            "decode_errors_total",
            "Values in Redis that did not decode, per key pattern.",
        ),
        (
            "stale_served_total",
            "Stale values served because the loader failed, per key pattern.",
        ),
        (
            "evictions_total",
            "L1 entries evicted for room, per key pattern.",
        ),
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
            "Failed Redis calls outside any key pattern.",
        ),
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
    ];
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

/// Starts the task that reports `engine`'s statistics every `every` while it lives.
pub(crate) fn spawn(engine: &Arc<Engine>, prefix: String, every: Duration) {
    let engine: Weak<Engine> = Arc::downgrade(engine);
    tokio::spawn(async move {
        let mut handles = Handles::new(&prefix);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            handles.record(&engine);
        }
    });
}

//! `/metrics`: Prometheus text with the cache's statistics (per key pattern and tier) and HTTP
//! request counts and latency (per route), recorded by a middleware.
//!
//! Every label comes from a closed set, so that no request can add a series: the method is one
//! of the standard ones or `other`, the route is the matched route template or `unmatched`, the
//! status is a number the service answered.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;

use cache_core::Stats;

/// Upper bounds (seconds) of the HTTP latency histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A counter family of the cache: name, help, and how to read it from the counters.
type CounterFamily = (&'static str, &'static str, fn(&cache_core::Counters) -> u64);

/// HTTP request counts and latency, per method and route; connections (see
/// [`crate::server`]).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<(&'static str, String), Histogram>>,
    /// Connections being served now.
    pub connections_open: AtomicU64,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket, plus one for +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len() + 1];
        }
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

impl HttpMetrics {
    fn record(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .entry((method, route.to_owned(), status))
            .or_default() += 1;
        self.latency
            .lock()
            .entry((method, route.to_owned()))
            .or_default()
            .observe(seconds);
    }

    /// Requests answered so far, in total.
    pub fn total_requests(&self) -> u64 {
        self.requests.lock().values().sum()
    }
}

/// The method label: a standard method, or `other` (any token is a valid method, and each
/// would otherwise be a series of its own).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: times every request and records it under its route template (`unmatched` when
/// no route matched: the path itself is never a label).
pub async fn track(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    metrics.record(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The Prometheus text exposition of the cache statistics and the HTTP metrics.
pub fn render(stats: &Stats, http: &HttpMetrics) -> String {
    let mut out = String::new();

    family(
        "catalog_cache_hits_total",
        "counter",
        "Cache hits per key pattern and tier.",
        &mut out,
    );
    for p in &stats.patterns {
        let l = label(&p.pattern);
        let c = &p.counters;
        let _ = writeln!(
            out,
            "catalog_cache_hits_total{{pattern=\"{l}\",tier=\"l1\"}} {}",
            c.l1_hits
        );
        let _ = writeln!(
            out,
            "catalog_cache_hits_total{{pattern=\"{l}\",tier=\"l2\"}} {}",
            c.l2_hits
        );
    }
    let counters: [CounterFamily; 12] = [
        (
            "catalog_cache_misses_total",
            "Lookups found in neither tier.",
            |c| c.misses,
        ),
        (
            "catalog_cache_loads_total",
            "Loader (database) runs.",
            |c| c.loads,
        ),
        (
            "catalog_cache_load_errors_total",
            "Loader runs that failed.",
            |c| c.load_errors,
        ),
        (
            "catalog_cache_l2_errors_total",
            "Failed or skipped Redis calls.",
            |c| c.l2_errors,
        ),
        (
            "catalog_cache_decode_errors_total",
            "Values in Redis that did not decode.",
            |c| c.decode_errors,
        ),
        (
            "catalog_cache_stale_served_total",
            "Stale values served because a load failed.",
            |c| c.stale_served,
        ),
        (
            "catalog_cache_evictions_total",
            "L1 entries evicted for space.",
            |c| c.evictions,
        ),
        (
            "catalog_cache_lease_waits_total",
            "Loads that waited for another instance's value under its fleet lease.",
            |c| c.lease_waits,
        ),
        (
            "catalog_cache_lease_timeouts_total",
            "Fleet lease waits that timed out (the instance then loaded itself).",
            |c| c.lease_timeouts,
        ),
        (
            "catalog_cache_refresh_aheads_total",
            "Background reloads run by refresh-ahead.",
            |c| c.refresh_aheads,
        ),
        (
            "catalog_cache_soft_timeouts_total",
            "Loads past their soft timeout (the stale value served meanwhile).",
            |c| c.soft_timeouts,
        ),
        (
            "catalog_cache_hard_timeouts_total",
            "Loads abandoned past their hard timeout (the stale value served).",
            |c| c.hard_timeouts,
        ),
    ];
    for (name, help, get) in counters {
        family(name, "counter", help, &mut out);
        for p in &stats.patterns {
            let _ = writeln!(
                out,
                "{name}{{pattern=\"{}\"}} {}",
                label(&p.pattern),
                get(&p.counters)
            );
        }
    }
    family(
        "catalog_cache_load_seconds",
        "histogram",
        "Loader (database) latency per key pattern.",
        &mut out,
    );
    for p in &stats.patterns {
        let l = label(&p.pattern);
        for (le, n) in &p.load_latency_buckets {
            let _ = writeln!(
                out,
                "catalog_cache_load_seconds_bucket{{pattern=\"{l}\",le=\"{le}\"}} {n}"
            );
        }
        let c = &p.counters;
        let _ = writeln!(
            out,
            "catalog_cache_load_seconds_bucket{{pattern=\"{l}\",le=\"+Inf\"}} {}",
            c.loads
        );
        let _ = writeln!(
            out,
            "catalog_cache_load_seconds_sum{{pattern=\"{l}\"}} {}",
            c.load_time.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "catalog_cache_load_seconds_count{{pattern=\"{l}\"}} {}",
            c.loads
        );
    }
    family(
        "catalog_cache_hit_ratio",
        "gauge",
        "Hits over lookups, all patterns.",
        &mut out,
    );
    let _ = writeln!(out, "catalog_cache_hit_ratio {}", stats.hit_ratio());
    family(
        "catalog_cache_l2_errors_unattributed_total",
        "counter",
        "Failed Redis calls outside any key pattern (invalidations, tag reads, probes).",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_cache_l2_errors_unattributed_total {}",
        stats.l2_errors_unattributed
    );
    let bp = &stats.backplane;
    family(
        "catalog_cache_backplane_subscribed",
        "gauge",
        "1 while this process reads the backplane (invalidations pushed by the other processes).",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_cache_backplane_subscribed {}",
        u8::from(bp.subscribed)
    );
    family(
        "catalog_cache_backplane_messages_total",
        "counter",
        "Backplane messages: sent by this process (invalidations, overwrites) and received from others.",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_cache_backplane_messages_total{{direction=\"sent\"}} {}",
        bp.published
    );
    let _ = writeln!(
        out,
        "catalog_cache_backplane_messages_total{{direction=\"received\"}} {}",
        bp.received
    );
    family(
        "catalog_cache_backplane_resyncs_total",
        "counter",
        "Times L1 was dropped because backplane messages may have been missed.",
        &mut out,
    );
    let _ = writeln!(out, "catalog_cache_backplane_resyncs_total {}", bp.resyncs);
    family(
        "catalog_cache_backplane_lag_seconds",
        "gauge",
        "Delay of the last backplane message received, from its sending (on Redis's clock).",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_cache_backplane_lag_seconds {}",
        bp.lag.as_secs_f64()
    );
    family(
        "catalog_cache_l1_entries",
        "gauge",
        "Entries in L1.",
        &mut out,
    );
    let _ = writeln!(out, "catalog_cache_l1_entries {}", stats.l1_entries);
    family(
        "catalog_cache_l1_bytes",
        "gauge",
        "Weighted size of L1 in bytes.",
        &mut out,
    );
    let _ = writeln!(out, "catalog_cache_l1_bytes {}", stats.l1_weighted_bytes);
    family(
        "catalog_cache_l1_capacity_bytes",
        "gauge",
        "L1 byte budget.",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_cache_l1_capacity_bytes {}",
        stats.l1_capacity_bytes
    );

    family(
        "catalog_http_requests_total",
        "counter",
        "HTTP requests per method, route and status.",
        &mut out,
    );
    for ((method, route, status), n) in http.requests.lock().iter() {
        let _ = writeln!(
            out,
            "catalog_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    family(
        "catalog_http_connections_open",
        "gauge",
        "HTTP connections being served.",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_http_connections_open {}",
        http.connections_open.load(Ordering::Relaxed)
    );
    family(
        "catalog_http_connections_refused_total",
        "counter",
        "Connections closed at once because the connection limit was reached.",
        &mut out,
    );
    let _ = writeln!(
        out,
        "catalog_http_connections_refused_total {}",
        http.connections_refused.load(Ordering::Relaxed)
    );
    family(
        "catalog_http_request_duration_seconds",
        "histogram",
        "HTTP request latency per method and route.",
        &mut out,
    );
    for ((method, route), h) in http.latency.lock().iter() {
        let route = label(route);
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "catalog_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "catalog_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "catalog_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "catalog_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\"}} {}",
            h.count
        );
    }
    out
}

fn family(name: &str, kind: &str, help: &str, out: &mut String) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

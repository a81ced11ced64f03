//! `/metrics`: the Prometheus exposition of one instance, rendered by `metrics-exporter-prometheus`
//! from the recorder this file owns (one per [`App`](crate::App), so that instances in one
//! process, as in the tests, never mix their series).
//!
//! The recorder holds three groups of series:
//! - the cache's (`catalog_cache_*`): cache-core's `metrics` feature reports to this recorder
//!   ([`cache_core::CacheBuilder::metrics_recorder`]), and a scrape first brings them up to date
//!   ([`cache_core::Cache::report_metrics`]);
//! - HTTP request counts and latency per method and route (`catalog_http_*`), recorded by the
//!   [`track`] middleware, and the connection counts of [`crate::server`], copied at a scrape;
//! - Redis's memory, evictions and PING (`catalog_redis_*`), from [`RedisReadings`] (at most one
//!   reading per [`READING_MAX_AGE`](crate::redis_info::READING_MAX_AGE)).
//!
//! Every label comes from a closed set, so that no request can add a series: the method is one
//! of the standard ones or `other`, the route is the matched route template or `unmatched`, the
//! status is a number the service answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use cache_core::Cache;
use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::redis_info::{RedisReading, RedisReadings};

/// Upper bounds (seconds) of the HTTP latency histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// The prefix of the cache's series (`catalog_cache_hits_total`, ...).
pub const CACHE_PREFIX: &str = "catalog_cache";
const REQUESTS: &str = "catalog_http_requests_total";
const DURATION: &str = "catalog_http_request_duration_seconds";
/// How often the HTTP latency samples are folded into the histogram between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The instance's recorder and what it copies in at a scrape: the connection counts of
/// [`crate::server`] and the Redis reading.
#[derive(Debug)]
pub struct HttpMetrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Connections being served now.
    pub connections_open: AtomicU64,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused: AtomicU64,
    connection_series: (Gauge, Counter),
    redis: RedisReadings,
}

impl HttpMetrics {
    /// A recorder of its own, its families described, and a task that folds the latency samples
    /// in every few seconds while the metrics live (so that they stay bounded without scrapes).
    pub fn start() -> anyhow::Result<Arc<HttpMetrics>> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), BUCKETS)?
            .build_recorder();
        describe(&recorder);
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_name(name), &METADATA);
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_name(name), &METADATA);
        let metrics = Arc::new(HttpMetrics {
            handle: recorder.handle(),
            connection_series: (
                gauge("catalog_http_connections_open"),
                counter("catalog_http_connections_refused_total"),
            ),
            recorder: Arc::new(recorder),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            redis: RedisReadings::default(),
        });
        let weak: Weak<HttpMetrics> = Arc::downgrade(&metrics);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(metrics) => metrics.handle.run_upkeep(),
                    None => return,
                }
            }
        });
        Ok(metrics)
    }

    /// The recorder the cache reports to ([`cache_core::CacheBuilder::metrics_recorder`]).
    pub fn recorder(&self) -> Arc<dyn Recorder + Send + Sync> {
        self.recorder.clone()
    }

    /// Redis's memory, evictions and PING, as `/metrics` and `/cache/stats` show them.
    pub async fn redis_reading(&self, cache: &Cache) -> Option<RedisReading> {
        self.redis.read(cache).await
    }

    fn record(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let route = Label::new("route", route.to_owned());
        let requests = Key::from_parts(
            REQUESTS,
            vec![
                Label::new("method", method),
                route.clone(),
                Label::new("status", status.to_string()),
            ],
        );
        self.recorder
            .register_counter(&requests, &METADATA)
            .increment(1);
        let latency = Key::from_parts(DURATION, vec![Label::new("method", method), route]);
        self.recorder
            .register_histogram(&latency, &METADATA)
            .record(seconds);
    }

    /// The Prometheus text of every series, brought up to date first.
    pub async fn render(&self, cache: &Cache) -> String {
        cache.report_metrics();
        let (open, refused) = &self.connection_series;
        open.set(self.connections_open.load(Ordering::Relaxed) as f64);
        refused.absolute(self.connections_refused.load(Ordering::Relaxed));
        if let Some(reading) = self.redis.read(cache).await {
            let gauge = |name: &'static str, value: f64| {
                self.recorder
                    .register_gauge(&Key::from_name(name), &METADATA)
                    .set(value);
            };
            gauge("catalog_redis_up", f64::from(u8::from(reading.up)));
            gauge(
                "catalog_redis_used_memory_bytes",
                reading.used_memory_bytes as f64,
            );
            gauge(
                "catalog_redis_max_memory_bytes",
                reading.max_memory_bytes as f64,
            );
            gauge("catalog_redis_ping_seconds", reading.ping_seconds);
            self.recorder
                .register_counter(
                    &Key::from_name("catalog_redis_evicted_keys_total"),
                    &METADATA,
                )
                .absolute(reading.evicted_keys);
        }
        self.handle.render()
    }
}

/// Help texts of the catalog's own families (the cache's are described by cache-core).
fn describe(recorder: &PrometheusRecorder) {
    let counters = [
        (REQUESTS, "HTTP requests per method, route and status."),
        (
            "catalog_http_connections_refused_total",
            "Connections closed at once because the connection limit was reached.",
        ),
        (
            "catalog_redis_evicted_keys_total",
            "Keys Redis evicted for maxmemory since it started (INFO evicted_keys).",
        ),
    ];
    let gauges = [
        (
            "catalog_http_connections_open",
            "HTTP connections being served.",
        ),
        (
            "catalog_redis_up",
            "1 if Redis answered the last reading of its memory (the catalog_redis_* gauges).",
        ),
        (
            "catalog_redis_used_memory_bytes",
            "Memory Redis uses, bytes (INFO used_memory).",
        ),
        (
            "catalog_redis_max_memory_bytes",
            "Redis's memory limit, bytes (INFO maxmemory; 0: none).",
        ),
        (
            "catalog_redis_ping_seconds",
            "Round trip of a PING to Redis, seconds.",
        ),
    ];
    for (name, help) in counters {
        recorder.describe_counter(name.into(), None, help.into());
    }
    for (name, help) in gauges {
        recorder.describe_gauge(name.into(), None, help.into());
    }
    recorder.describe_histogram(
        DURATION.into(),
        None,
        "HTTP request latency per method and route, seconds.".into(),
    );
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

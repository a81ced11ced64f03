//! The HTTP phase: what HTTP caching and the batch endpoint save, against a two-tier server of its
//! own (a separate process, like every scenario's).
//!
//! - **Revalidation**: a client that keeps the `ETag` of each response and revalidates
//!   (`If-None-Match`) against one that fetches in full: bytes received and time, over the same
//!   popular paths (product details and listings), all cached on the server.
//! - **Batch**: `GET /products?ids=` of ten popular products against the ten single reads, cached.
//!
//! Sequential requests on one connection: the per-request cost, not throughput.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde::Serialize;

use crate::workload::Workload;

/// Products and listings the revalidation round reads, and ids per batch.
const DETAILS: usize = 40;
const LISTINGS: usize = 10;
const BATCH: usize = 10;

/// What the phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpResult {
    pub rounds: u32,
    pub paths: usize,
    /// Full fetches: body bytes and wall time per round.
    pub full_bytes_per_round: u64,
    pub full_ms_per_round: f64,
    /// Revalidating fetches (all `304`): body bytes and time per round.
    pub revalidated_bytes_per_round: u64,
    pub revalidated_ms_per_round: f64,
    pub not_modified: u64,
    /// Ten products: one batch request vs ten single ones (mean ms each way).
    pub batch_ms: f64,
    pub singles_ms: f64,
}

/// Runs the phase against the server at `base` (two-tier, warmed by this phase's first round).
pub async fn measure(base: &str, workload: &Workload, rounds: u32) -> anyhow::Result<HttpResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .context("HTTP client")?;
    let mut paths: Vec<String> = workload
        .products
        .iter()
        .take(DETAILS)
        .map(|(id, _)| format!("/products/{id}"))
        .collect();
    paths.extend(
        workload
            .categories
            .iter()
            .take(LISTINGS)
            .map(|c| format!("/products?category={c}&page=1")),
    );
    // Warm the server and learn the tags.
    let mut etags = HashMap::new();
    for path in &paths {
        let r = client.get(format!("{base}{path}")).send().await?;
        ensure!(r.status() == StatusCode::OK, "GET {path}: {}", r.status());
        if let Some(tag) = r.headers().get(ETAG) {
            etags.insert(path.clone(), tag.clone());
        }
        let _ = r.bytes().await?;
    }
    let mut result = HttpResult {
        rounds,
        paths: paths.len(),
        ..HttpResult::default()
    };
    let (mut full, mut revalidated) = (Duration::ZERO, Duration::ZERO);
    let (mut full_bytes, mut revalidated_bytes) = (0u64, 0u64);
    for _ in 0..rounds {
        let started = Instant::now();
        for path in &paths {
            let r = client.get(format!("{base}{path}")).send().await?;
            full_bytes += r.bytes().await?.len() as u64;
        }
        full += started.elapsed();
        let started = Instant::now();
        for path in &paths {
            let mut req = client.get(format!("{base}{path}"));
            if let Some(tag) = etags.get(path) {
                req = req.header(IF_NONE_MATCH, tag.clone());
            }
            let r = req.send().await?;
            if r.status() == StatusCode::NOT_MODIFIED {
                result.not_modified += 1;
            }
            revalidated_bytes += r.bytes().await?.len() as u64;
        }
        revalidated += started.elapsed();
    }
    let per_round = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(rounds.max(1));
    result.full_bytes_per_round = full_bytes / u64::from(rounds.max(1));
    result.revalidated_bytes_per_round = revalidated_bytes / u64::from(rounds.max(1));
    result.full_ms_per_round = per_round(full);
    result.revalidated_ms_per_round = per_round(revalidated);

    let ids: Vec<i64> = workload
        .products
        .iter()
        .take(BATCH)
        .map(|(id, _)| *id)
        .collect();
    let batch_path = format!(
        "{base}/products?ids={}",
        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    );
    let (mut batch, mut singles) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let started = Instant::now();
        let r = client.get(&batch_path).send().await?;
        ensure!(r.status() == StatusCode::OK, "batch: {}", r.status());
        let _ = r.bytes().await?;
        batch += started.elapsed();
        let started = Instant::now();
        for id in &ids {
            let _ = client
                .get(format!("{base}/products/{id}"))
                .send()
                .await?
                .bytes()
                .await?;
        }
        singles += started.elapsed();
    }
    result.batch_ms = per_round(batch);
    result.singles_ms = per_round(singles);
    Ok(result)
}

impl HttpResult {
    /// The markdown section.
    pub fn markdown(&self) -> String {
        let pct = |part: f64, whole: f64| {
            if whole > 0.0 {
                100.0 * (1.0 - part / whole)
            } else {
                0.0
            }
        };
        format!(
            "## HTTP caching and batch reads (two-tier, cached)\n\n\
             A client revalidating with `If-None-Match` against one fetching in full, {} rounds of \
             {} popular paths (details and listings; sequential, one connection):\n\n\
             | client | body bytes per round | ms per round |\n|---|---:|---:|\n\
             | full fetch | {} | {:.2} |\n| revalidating ({} × 304) | {} | {:.2} |\n\n\
             Saved by revalidating: {:.1} % of the bytes, {:.1} % of the time.\n\n\
             Ten products: one `GET /products?ids=` {:.3} ms vs ten single reads {:.3} ms \
             ({:.1}x).\n\n",
            self.rounds,
            self.paths,
            self.full_bytes_per_round,
            self.full_ms_per_round,
            self.not_modified,
            self.revalidated_bytes_per_round,
            self.revalidated_ms_per_round,
            pct(
                self.revalidated_bytes_per_round as f64,
                self.full_bytes_per_round as f64
            ),
            pct(self.revalidated_ms_per_round, self.full_ms_per_round),
            self.batch_ms,
            self.singles_ms,
            if self.batch_ms > 0.0 {
                self.singles_ms / self.batch_ms
            } else {
                0.0
            },
        )
    }
}

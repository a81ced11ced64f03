//! `--faults`: the two-tier server under load while its Redis misbehaves (issue 14). Each scenario
//! starts a fresh server on an emptied Redis, drives reads for the run's duration with a writer
//! beside them, and injects one fault at a third of the time:
//!
//! - `DEBUG SLEEP`: Redis stalls (blocked for a third of the run);
//! - `CLIENT PAUSE`: Redis holds every client for a third of the run;
//! - `FLUSHALL`: every entry and mark disappears;
//! - `maxmemory` tiny: 1 MB with `noeviction`, so that Redis refuses writes;
//! - garbage: every entry's bytes are overwritten with random ones.
//!
//! Counted per scenario: requests, failures (a transport error or a 5xx), and stale reads after a
//! write: the writer changes a product's stock, then reads the product and compares the stock it
//! is shown with the stock the write returned.
//!
//! Owns the fault scenarios and their table. Starts servers through [`server`](crate::server) and
//! Redis through [`l2`](crate::l2); never measures CPU or memory (the main scenarios do).

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;

use crate::run::open_catalog;
use crate::server::{ServerOptions, ServerProcess, default_server_bin};
use crate::workload::Workload;
use crate::{args::LoadtestArgs, l2};

/// A Redis fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Stall,
    Pause,
    Flush,
    TinyMaxmemory,
    Garbage,
}

impl Fault {
    /// Every fault, in the table's order.
    pub const ALL: [Fault; 5] = [
        Fault::Stall,
        Fault::Pause,
        Fault::Flush,
        Fault::TinyMaxmemory,
        Fault::Garbage,
    ];

    /// The scenario's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Stall => "Redis stalled (DEBUG SLEEP)",
            Fault::Pause => "Redis paused (CLIENT PAUSE)",
            Fault::Flush => "Redis flushed (FLUSHALL)",
            Fault::TinyMaxmemory => "maxmemory 1mb, noeviction",
            Fault::Garbage => "garbage bytes over every entry",
        }
    }

    /// Injects the fault into the Redis at `url` (namespace `namespace`); `hold`: how long a
    /// stall or pause lasts.
    async fn inject(self, url: &str, namespace: &str, hold: Duration) -> anyhow::Result<()> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        match self {
            Fault::Stall => {
                // DEBUG SLEEP blocks the server (and this connection) for its duration: the
                // client's response timeout may give up first, which is no failure here.
                let slept = redis::cmd("DEBUG")
                    .arg("SLEEP")
                    .arg(format!("{:.3}", ms as f64 / 1000.0))
                    .exec_async(&mut conn)
                    .await;
                match slept {
                    Err(e) if e.is_timeout() => {}
                    other => other?,
                }
            }
            Fault::Pause => {
                redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(ms)
                    .exec_async(&mut conn)
                    .await?;
            }
            Fault::Flush => redis::cmd("FLUSHALL").exec_async(&mut conn).await?,
            Fault::TinyMaxmemory => {
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("maxmemory-policy")
                    .arg("noeviction")
                    .exec_async(&mut conn)
                    .await?;
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("maxmemory")
                    .arg("1mb")
                    .exec_async(&mut conn)
                    .await?;
            }
            Fault::Garbage => {
                let mut rng = StdRng::seed_from_u64(7);
                let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
                    .arg(format!("{namespace}:k:*"))
                    .query_async(&mut conn)
                    .await?;
                for key in keys {
                    let len = rng.random_range(0..64);
                    let garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    redis::cmd("SET")
                        .arg(key)
                        .arg(garbage)
                        .arg("KEEPTTL")
                        .exec_async(&mut conn)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// What one fault scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct FaultResult {
    pub name: String,
    pub requests: u64,
    /// Transport errors and 5xx answers.
    pub failures: u64,
    /// Writes checked by reading the product back.
    pub checked_writes: u64,
    /// Reads after a write that showed another stock than the write returned.
    pub stale_reads: u64,
    /// A sample of the failures.
    pub failure_samples: Vec<String>,
}

/// The table of the fault scenarios, in markdown.
pub fn markdown(results: &[FaultResult]) -> String {
    let mut out = String::from(
        "## Redis faults under load (two-tier)\n\n\
         | fault | requests | failures | writes checked | stale reads after a write |\n\
         |---|---|---|---|---|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name, r.requests, r.failures, r.checked_writes, r.stale_reads
        ));
    }
    out
}

/// Runs every fault scenario: the catalog generated (or opened) once, then per fault a Redis and
/// a two-tier server of its own.
pub async fn run(args: &LoadtestArgs) -> anyhow::Result<Vec<FaultResult>> {
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => default_server_bin()?,
    };
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let (base, app, workload) = open_catalog(args, tmp.path()).await?;
    drop(app);
    let options = ServerOptions {
        bin,
        database: base.database.clone(),
        products: args.products,
        categories: args.categories,
        seed: args.seed,
        namespace: base.namespace.clone(),
        l1_mb: args.l1_mb,
        redis_url: None,
        ceiling: false,
    };
    let logs = tmp.path();
    let mut results = Vec::new();
    for fault in Fault::ALL {
        let redis = l2::start(OsString::from(&args.redis_server_bin), &[]).await?;
        let options = ServerOptions {
            redis_url: Some(redis.url()),
            l1_mb: args.l1_mb,
            ..options.clone()
        };
        let server = ServerProcess::start(&options, logs)
            .await
            .with_context(|| format!("{}: starting the catalog server", fault.name()))?;
        let result = drive_with_fault(
            args,
            &server,
            &workload,
            fault,
            &redis.url(),
            &options.namespace,
        )
        .await;
        server.stop().await?;
        let result = result?;
        eprintln!(
            "catalog-loadtest: {}: {} requests, {} failures, {} stale of {} checked writes",
            result.name,
            result.requests,
            result.failures,
            result.stale_reads,
            result.checked_writes
        );
        results.push(result);
    }
    Ok(results)
}

async fn drive_with_fault(
    args: &LoadtestArgs,
    server: &ServerProcess,
    workload: &Arc<Workload>,
    fault: Fault,
    redis_url: &str,
    namespace: &str,
) -> anyhow::Result<FaultResult> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + args.duration;
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let base = server.url().to_owned();
    let record = {
        let (requests, failures, samples) = (requests.clone(), failures.clone(), samples.clone());
        move |outcome: Result<reqwest::StatusCode, String>| {
            requests.fetch_add(1, Relaxed);
            let failure = match outcome {
                Ok(status) if status.is_server_error() => Some(format!("HTTP {status}")),
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if let Some(f) = failure {
                failures.fetch_add(1, Relaxed);
                let mut s = samples.lock();
                if s.len() < 5 {
                    s.push(f);
                }
            }
        }
    };
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let (http, base, workload, record, done) = (
            http.clone(),
            base.clone(),
            workload.clone(),
            record.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(args_seed(worker));
            while !done.load(Relaxed) {
                let request = workload.next(&mut rng);
                if request.body.is_some() {
                    continue; // the writer below does the writes
                }
                let outcome = http
                    .get(format!("{base}{}", request.path))
                    .send()
                    .await
                    .map(|r| r.status())
                    .map_err(|e| e.to_string());
                record(outcome);
            }
        }));
    }
    let (checked, stale) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (http, base, workload, record, done) = (
            http.clone(),
            base.clone(),
            workload.clone(),
            record.clone(),
            done.clone(),
        );
        let (checked, stale) = (checked.clone(), stale.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(99);
            while !done.load(Relaxed) {
                let (id, variant) =
                    workload.products[rng.random_range(0..workload.products.len().min(50))];
                let written = http
                    .post(format!("{base}/products/{id}/variants/{variant}/stock"))
                    .json(&serde_json::json!({"delta": 1, "reason": "faults"}))
                    .send()
                    .await;
                let stock_after = match written {
                    Ok(r) => {
                        record(Ok(r.status()));
                        if !r.status().is_success() {
                            continue;
                        }
                        r.json::<serde_json::Value>()
                            .await
                            .ok()
                            .and_then(|v| v["stock_after"].as_i64())
                    }
                    Err(e) => {
                        record(Err(e.to_string()));
                        None
                    }
                };
                let Some(stock_after) = stock_after else {
                    continue;
                };
                let read = http.get(format!("{base}/products/{id}")).send().await;
                let shown = match read {
                    Ok(r) => {
                        record(Ok(r.status()));
                        r.json::<serde_json::Value>().await.ok()
                    }
                    Err(e) => {
                        record(Err(e.to_string()));
                        None
                    }
                };
                let Some(shown) = shown else { continue };
                let shown_stock = shown["variants"].as_array().and_then(|vs| {
                    vs.iter()
                        .find(|v| v["id"] == variant)
                        .and_then(|v| v["stock"].as_i64())
                });
                checked.fetch_add(1, Relaxed);
                // Only this task writes these products, so the read must show at least its write.
                if shown_stock.is_none_or(|s| s < stock_after) {
                    stale.fetch_add(1, Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(args.duration / 3).await;
    let injected = fault.inject(redis_url, namespace, args.duration / 3).await;
    tokio::time::sleep_until(deadline.into()).await;
    done.store(true, Relaxed);
    for t in tasks {
        t.await?;
    }
    writer.await?;
    injected.with_context(|| format!("{}: injecting the fault", fault.name()))?;
    let failure_samples = samples.lock().clone();
    Ok(FaultResult {
        name: fault.name().to_owned(),
        requests: requests.load(Relaxed),
        failures: failures.load(Relaxed),
        checked_writes: checked.load(Relaxed),
        stale_reads: stale.load(Relaxed),
        failure_samples,
    })
}

/// Each reader's seed.
fn args_seed(worker: u64) -> u64 {
    0x5eed ^ worker.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

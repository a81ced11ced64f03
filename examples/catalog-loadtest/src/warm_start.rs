//! The warm start: a fresh Redis, `catalog warmup` (the server binary's own subcommand, timed),
//! then a new two-tier server process and the first reads of the workload's mix, one at a time,
//! with the server's hit ratio read at checkpoints (1k, 3k, 10k reads): how well a warmup
//! prepares a cache for the traffic that follows it.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::l2;
use crate::server::{ServerOptions, ServerProcess};
use crate::workload::{Kind, Workload};

/// Reads after which the hit ratio is read.
pub const CHECKPOINTS: [u64; 3] = [1_000, 3_000, 10_000];

/// The hit ratio after a number of reads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checkpoint {
    /// Reads sent since the server started.
    pub reads: u64,
    /// Hits over lookups of all reads so far.
    pub hit_ratio: f64,
    /// Hits over lookups of the reads since the previous checkpoint.
    pub window_hit_ratio: f64,
    /// Of the reads so far whose route answers from a cached body (`X-Cache`), the share
    /// answered from the cache (`hit-l1` or `hit-l2`): what a client saw.
    pub request_hit_ratio: f64,
    pub loads: u64,
}

/// What the warm start measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WarmStartResult {
    /// Wall time of the `catalog warmup` process.
    pub warmup_s: f64,
    /// What `catalog warmup` printed.
    pub warmup_report: String,
    pub redis_keys: u64,
    pub checkpoints: Vec<Checkpoint>,
    pub errors: u64,
}

/// Runs the warm start against `database` with the server `opts` describe (its L1 budget), up to
/// `reads` reads (the checkpoints past it are skipped).
pub async fn measure(
    opts: &ServerOptions,
    redis_bin: OsString,
    workload: &Arc<Workload>,
    seed: u64,
    reads: u64,
    log_dir: &Path,
) -> anyhow::Result<WarmStartResult> {
    let redis = l2::start(redis_bin, &[]).await?;
    let url = redis.url();
    let started = Instant::now();
    let output = tokio::process::Command::new(&opts.bin)
        .arg("warmup")
        .arg("--quiet")
        .arg("--database")
        .arg(&opts.database)
        .args(["--namespace", &opts.namespace])
        .args(["--redis-url", &url])
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} warmup", opts.bin.display()))?;
    let warmup_s = started.elapsed().as_secs_f64();
    ensure!(
        output.status.success(),
        "catalog warmup failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let warmup_report = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    eprintln!("catalog-loadtest: warm start: {warmup_report} ({warmup_s:.2} s with the process)");
    let redis_keys = l2::dbsize(&url).await.unwrap_or(0);

    let server = ServerProcess::start(
        &ServerOptions {
            redis_url: Some(url.clone()),
            ..opts.clone()
        },
        log_dir,
    )
    .await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut result = WarmStartResult {
        warmup_s,
        warmup_report,
        redis_keys,
        ..WarmStartResult::default()
    };
    let mut previous = server.cache_counters().await?;
    let start = previous;
    let mut sent = 0;
    let (mut with_x_cache, mut answered_cached) = (0u64, 0u64);
    for checkpoint in CHECKPOINTS.into_iter().filter(|&c| c <= reads) {
        while sent < checkpoint {
            let request = workload.next(&mut rng);
            if request.kind == Kind::Write {
                continue;
            }
            let response = http
                .get(format!("{}{}", server.url(), request.path))
                .send()
                .await;
            let ok = response.as_ref().is_ok_and(|r| {
                r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND
            });
            if !ok {
                result.errors += 1;
            }
            if let Some(x_cache) = response
                .ok()
                .and_then(|r| r.headers().get("x-cache").cloned())
            {
                with_x_cache += 1;
                answered_cached += u64::from(x_cache.as_bytes().starts_with(b"hit"));
            }
            sent += 1;
        }
        let now = server.cache_counters().await?;
        result.checkpoints.push(Checkpoint {
            reads: sent,
            hit_ratio: now.since(&start).hit_ratio(),
            window_hit_ratio: now.since(&previous).hit_ratio(),
            request_hit_ratio: if with_x_cache == 0 {
                0.0
            } else {
                answered_cached as f64 / with_x_cache as f64
            },
            loads: now.loads - start.loads,
        });
        previous = now;
    }
    server.stop().await?;
    drop(redis);
    Ok(result)
}

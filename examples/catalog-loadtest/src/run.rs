//! A whole run: the catalog generated once, then every scenario (a cache mode) against a server
//! process of its own, then the memory phase.
//!
//! Everything is local and owned by the run: a generated SQLite catalog (reused across
//! scenarios), a `redis-server` on a free `127.0.0.1` port (through the test harness; never 6379,
//! killed at the end, also on error), and per scenario a catalog server process on `127.0.0.1:0`.
//! Every scenario starts cold: a new server (empty L1) and `FLUSHALL` on Redis.
//!
//! The L1 residency measurement and the Redis size of a warmed cache need no server: they run
//! the catalog's repository in this process.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use tiercache_tests::RedisServer;

use catalog::repo::Repo;
use catalog::{App, Config, build_app, ops};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

use crate::args::{LoadtestArgs, MAX_CONCURRENCY};
use crate::drive::{DrivePlan, Pacing, drive};
use crate::http_phase::HttpResult;
use crate::report::{L1Residency, MemoryResult, Report, ScenarioResult};
use crate::server::{CacheCounters, ServerOptions, ServerProcess, default_server_bin};
use crate::workload::Workload;
use crate::{l2, report, usage, warm_start};

/// The cache namespace of every server of a run.
const NAMESPACE: &str = "loadtest";

/// A cache mode.
#[derive(Debug, Clone, Copy)]
struct Mode {
    name: &'static str,
    l1: bool,
    l2: bool,
    kill_redis: bool,
    /// The ceiling: a `--ceiling` server (no cache, no database once primed).
    ceiling: bool,
    /// Primed as the ceiling is (one unmeasured pass of the workload first): the cache's steady
    /// state, measured on the same footing as the ceiling.
    primed: bool,
    /// On the PostgreSQL catalog (`--postgres`) instead of the SQLite one.
    postgres: bool,
}

/// In this order: the scenarios that need Redis come before the one that kills it.
const MODES: [Mode; 8] = [
    Mode {
        name: "no cache",
        l1: false,
        l2: false,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: false,
    },
    Mode {
        name: "L2 only",
        l1: false,
        l2: true,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: false,
    },
    Mode {
        name: "L1 only",
        l1: true,
        l2: false,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: false,
    },
    Mode {
        name: "two-tier",
        l1: true,
        l2: true,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: false,
    },
    Mode {
        name: "L1 only, primed",
        l1: true,
        l2: false,
        kill_redis: false,
        ceiling: false,
        primed: true,
        postgres: false,
    },
    Mode {
        name: "two-tier, primed",
        l1: true,
        l2: true,
        kill_redis: false,
        ceiling: false,
        primed: true,
        postgres: false,
    },
    Mode {
        name: "two-tier, Redis killed at half time",
        l1: true,
        l2: true,
        kill_redis: true,
        ceiling: false,
        primed: false,
        postgres: false,
    },
    Mode {
        name: CEILING,
        l1: false,
        l2: false,
        kill_redis: false,
        ceiling: true,
        primed: true,
        postgres: false,
    },
];

/// The PostgreSQL scenarios (with `--postgres`): the pair of "no cache" and "two-tier" on the
/// other database.
const POSTGRES_MODES: [Mode; 2] = [
    Mode {
        name: "no cache, PostgreSQL",
        l1: false,
        l2: false,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: true,
    },
    Mode {
        name: "two-tier, PostgreSQL",
        l1: true,
        l2: true,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: true,
    },
];

/// The name of the ceiling scenario.
pub const CEILING: &str = "ceiling: responses from memory";

/// What every scenario of a run shares.
struct Context {
    args: LoadtestArgs,
    server: ServerOptions,
    /// The same on the PostgreSQL catalog (`--postgres`).
    postgres: Option<ServerOptions>,
    workload: Arc<Workload>,
    /// Where the servers' logs go.
    logs: tempfile::TempDir,
}

/// Runs every scenario and the memory phase; the report. Every process it started is stopped
/// before it returns, also on error.
pub async fn run(args: &LoadtestArgs) -> anyhow::Result<Report> {
    ensure!(
        (1..=MAX_CONCURRENCY).contains(&args.concurrency),
        "--concurrency must be 1 to {MAX_CONCURRENCY}"
    );
    ensure!(
        (0.0..=1.0).contains(&args.write_share),
        "--write-share must be in [0, 1]"
    );
    let server_bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => default_server_bin()?,
    };
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let started = Instant::now();
    let (base, app, workload) = open_catalog(args, tmp.path()).await?;
    let mut residency = Vec::new();
    if !args.no_memory && !args.warm_start_only {
        residency = l1_residencies(&app.repo, args, &workload).await?;
    }
    drop(app);
    let postgres = match &args.postgres {
        Some(url) => Some(open_postgres_catalog(args, url).await?),
        None => None,
    };
    eprintln!(
        "catalog-loadtest: catalog {} ({} products, {} categories) ready in {:.1?}; server {}",
        base.database.display(),
        workload.products.len(),
        workload.categories.len(),
        started.elapsed(),
        server_bin.display()
    );

    let server = ServerOptions {
        bin: server_bin,
        database: base.database.clone(),
        products: args.products,
        categories: args.categories,
        seed: args.seed,
        namespace: NAMESPACE.to_owned(),
        l1_mb: 0,
        redis_url: None,
        ceiling: false,
    };
    let cx = Context {
        args: args.clone(),
        postgres: postgres.map(|database| ServerOptions {
            database: database.into(),
            ..server.clone()
        }),
        server,
        workload,
        logs: tempfile::tempdir().context("temporary directory for server logs")?,
    };
    let redis_bin = OsString::from(&args.redis_server_bin);
    let mut redis = l2::start(redis_bin.clone(), &[]).await?;
    let redis_version = l2::info(&redis.url(), "server")
        .await
        .ok()
        .and_then(|i| i.get("redis_version").cloned())
        .unwrap_or_default();
    let mut report = Report {
        duration_s: args.duration.as_secs_f64(),
        concurrency: args.concurrency,
        rate: args.rate,
        server_bin: cx.server.bin.display().to_string(),
        products: cx.workload.products.len() as u32,
        categories: cx.workload.categories.len() as u64,
        write_share: args.write_share,
        zipf: args.zipf,
        seed: args.seed,
        l1_budget_bytes: args.l1_capacity_bytes(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        redis_version,
        l1_residency: residency,
        ..Report::default()
    };
    if !args.warm_start_only {
        for mode in MODES {
            let result = run_scenario(&cx, mode, &mut redis, args.l1_mb).await?;
            eprintln!("catalog-loadtest: {}", one_line(&result));
            report.scenarios.push(result);
        }
    }
    if cx.postgres.is_some() {
        // A scenario above killed it.
        tokio::task::block_in_place(|| redis.restart());
        for mode in POSTGRES_MODES {
            let result = run_scenario(&cx, mode, &mut redis, args.l1_mb).await?;
            eprintln!("catalog-loadtest: {}", one_line(&result));
            report.scenarios.push(result);
        }
    }
    if args.http_rounds > 0 {
        report.http = Some(http_phase(&cx, &mut redis).await?);
    }
    drop(redis);
    if !args.no_warm_start {
        let opts = ServerOptions {
            l1_mb: args.l1_mb,
            ..cx.server.clone()
        };
        report.warm_start = Some(
            warm_start::measure(
                &opts,
                redis_bin.clone(),
                &cx.workload,
                args.seed,
                args.warm_start_reads,
                cx.logs.path(),
            )
            .await?,
        );
    }
    if args.warm_start_only {
        return Ok(report);
    }
    if !args.no_memory {
        report.memory = Some(memory_phase(&cx, &base, redis_bin).await?);
    }
    Ok(report)
}

/// Generates (or opens) the load-test catalog (`--db`, else `loadtest.sqlite3` in `tmp`): its
/// configuration, the service over it (no cache), and the workload, whose key spaces come from it.
pub(crate) async fn open_catalog(
    args: &LoadtestArgs,
    tmp: &Path,
) -> anyhow::Result<(Config, App, Arc<Workload>)> {
    let mut base = Config::for_database(
        args.db
            .clone()
            .unwrap_or_else(|| tmp.join("loadtest.sqlite3")),
    );
    base.products = args.products;
    base.categories = args.categories;
    base.seed = args.seed;
    base.namespace = NAMESPACE.to_owned();
    base.l1_mb = 0;
    let app = build_app(&base)
        .await
        .context("opening the load-test database")?;
    let workload =
        Arc::new(Workload::load(&app.repo, args.seed, args.zipf, args.write_share).await?);
    Ok((base, app, workload))
}

/// Creates (if missing) and generates (if empty) the PostgreSQL catalog of the run on the server
/// at `server_url` (see `--postgres`): the same plan as the SQLite one, so the same rows. Its URL.
async fn open_postgres_catalog(args: &LoadtestArgs, server_url: &str) -> anyhow::Result<String> {
    let name = format!(
        "catalog_loadtest_p{}_c{}_s{}",
        args.products, args.categories, args.seed
    );
    let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                catalog::config::redact_url(server_url)
            )
        })?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
    }
    drop(client);
    let _ = connection.await;
    let mut url = url::Url::parse(server_url).context("--postgres is not a URL")?;
    url.set_path(&name);
    let mut config = Config::for_database(url.to_string());
    config.products = args.products;
    config.categories = args.categories;
    config.seed = args.seed;
    config.namespace = NAMESPACE.to_owned();
    config.l1_mb = 0;
    config.quiet = false;
    let started = Instant::now();
    drop(
        build_app(&config)
            .await
            .context("opening the PostgreSQL load-test database")?,
    );
    eprintln!(
        "catalog-loadtest: PostgreSQL catalog {} ready in {:.1?}",
        catalog::config::redact_url(url.as_str()),
        started.elapsed()
    );
    Ok(url.to_string())
}

/// Writes `count` request paths of the workload's reads (its writes left out), one per line, for
/// replaying the same mix with another load generator (`wrk -s wrk-paths.lua`).
pub async fn write_paths(args: &LoadtestArgs, path: &Path, count: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let (_, _, workload) = open_catalog(args, tmp.path()).await?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut out = String::new();
    let mut written = 0;
    while written < count {
        let request = workload.next(&mut rng);
        if request.body.is_none() {
            out.push_str(&request.path);
            out.push('\n');
            written += 1;
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// One scenario: a server process in `mode` (with an L2: the emptied `redis`), driven for the run's
/// duration, then read (cache counters, CPU, RSS, Redis memory) and stopped.
/// The HTTP phase ([`crate::http_phase`]) against a two-tier server of its own.
async fn http_phase(cx: &Context, redis: &mut RedisServer) -> anyhow::Result<HttpResult> {
    // The Redis-kill scenario left it stopped: a fresh one (restarted on its port).
    redis.restart();
    l2::flushall(&redis.url()).await?;
    let options = ServerOptions {
        l1_mb: cx.args.l1_mb,
        redis_url: Some(redis.url()),
        ..cx.server.clone()
    };
    let server = ServerProcess::start(&options, cx.logs.path())
        .await
        .context("HTTP phase: starting the catalog server")?;
    let result = crate::http_phase::measure(server.url(), &cx.workload, cx.args.http_rounds).await;
    server.stop().await?;
    let result = result?;
    eprintln!(
        "catalog-loadtest: HTTP phase: revalidating {} B/{:.2} ms vs full {} B/{:.2} ms per round; batch {:.3} ms vs 10 singles {:.3} ms",
        result.revalidated_bytes_per_round,
        result.revalidated_ms_per_round,
        result.full_bytes_per_round,
        result.full_ms_per_round,
        result.batch_ms,
        result.singles_ms
    );
    Ok(result)
}

async fn run_scenario(
    cx: &Context,
    mode: Mode,
    redis: &mut RedisServer,
    l1_mb: u64,
) -> anyhow::Result<ScenarioResult> {
    let redis_url = if mode.l2 {
        l2::flushall(&redis.url()).await?;
        Some(redis.url())
    } else {
        None
    };
    let base = if mode.postgres {
        cx.postgres
            .as_ref()
            .context("a PostgreSQL scenario without --postgres")?
    } else {
        &cx.server
    };
    let options = ServerOptions {
        l1_mb: if mode.l1 { l1_mb } else { 0 },
        redis_url: redis_url.clone(),
        ceiling: mode.ceiling,
        ..base.clone()
    };
    let server = ServerProcess::start(&options, cx.logs.path())
        .await
        .with_context(|| format!("{}: starting the catalog server", mode.name))?;
    if mode.l2 {
        let status = server.l2_status().await?;
        ensure!(
            status == "up",
            "{}: the server's L2 is {status:?}, not up",
            mode.name
        );
    }
    let plan = DrivePlan {
        duration: cx.args.duration,
        concurrency: cx.args.concurrency,
        pacing: cx
            .args
            .rate
            .map_or(Pacing::Closed, |rate| Pacing::Open { rate }),
        seed: cx.args.seed,
    };
    if mode.primed {
        prime(cx, &server, plan)
            .await
            .with_context(|| format!("{}: priming", mode.name))?;
    }
    let ceiling_before = if mode.ceiling {
        Some(server.ceiling_counters().await?)
    } else {
        None
    };
    // The measured pass's own counts: a primed server's include the priming pass.
    let cache_before = if mode.ceiling {
        CacheCounters::default()
    } else {
        server.cache_counters().await?
    };
    let rss_before = server.rss();
    let (server_cpu, own_cpu) = (server.cpu(), usage::own_cpu());
    let kill = mode.kill_redis.then_some(redis);
    let outcome = drive(server.url(), plan, &cx.workload, kill).await;
    let server_cpu_s = cpu_seconds(server_cpu, server.cpu());
    let generator_cpu_s = cpu_seconds(own_cpu, usage::own_cpu());
    let rss_after = server.rss();
    let counters = match ceiling_before {
        Some(before) => server.ceiling_counters().await.map(|after| {
            let (fills, hits) = (after.fills - before.fills, after.hits - before.hits);
            // No cache: the share served from memory is the hit ratio, a computed response a load.
            (
                CacheCounters {
                    misses: fills,
                    loads: fills,
                    ..CacheCounters::default()
                },
                ratio(hits, hits + fills),
            )
        }),
        None => server.cache_counters().await.map(|c| {
            let c = c.since(&cache_before);
            (c, c.hit_ratio())
        }),
    };
    let (used, keys, evicted) = match &redis_url {
        Some(url) if !mode.kill_redis => (
            l2::info_u64(url, "memory", "used_memory").await,
            l2::dbsize(url).await,
            l2::info_u64(url, "stats", "evicted_keys").await,
        ),
        _ => (None, None, None),
    };
    server
        .stop()
        .await
        .with_context(|| format!("{}: stopping the catalog server", mode.name))?;
    let load = outcome?;
    let (c, hit_ratio) =
        counters.with_context(|| format!("{}: reading the server's counters", mode.name))?;
    Ok(ScenarioResult {
        name: mode.name.to_owned(),
        l1: mode.l1,
        l2: mode.l2,
        total: load.total,
        mix: load.mix,
        error_samples: load.error_samples,
        l1_hits: c.l1_hits,
        l2_hits: c.l2_hits,
        misses: c.misses,
        loads: c.loads,
        l2_errors: c.l2_errors,
        l1_evictions: c.evictions,
        hit_ratio,
        l1_entries: c.l1_entries,
        l1_weighted_bytes: c.l1_weighted_bytes,
        l1_capacity_bytes: c.l1_capacity_bytes,
        rss_before,
        rss_after,
        server_cpu_s,
        generator_cpu_s,
        redis_used_memory: used,
        redis_keys: keys,
        redis_evicted_keys: evicted,
        before_kill: load.before,
        after_kill: load.after,
        timeline: load.timeline,
    })
}

/// The priming of the ceiling and of the primed cache modes: one unmeasured pass of the workload
/// (closed loop, as long as a scenario), so that the measured pass finds the steady state (nearly
/// every request in memory, or what the cache keeps of it).
async fn prime(cx: &Context, server: &ServerProcess, plan: DrivePlan) -> anyhow::Result<()> {
    let plan = DrivePlan {
        pacing: Pacing::Closed,
        ..plan
    };
    let primed = drive(server.url(), plan, &cx.workload, None).await?;
    ensure!(
        primed.total.errors == 0,
        "priming: {} errors: {:?}",
        primed.total.errors,
        primed.error_samples
    );
    Ok(())
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn cpu_seconds(before: Option<Duration>, after: Option<Duration>) -> Option<f64> {
    Some(after?.checked_sub(before?)?.as_secs_f64())
}

/// The same reads without a cache first (SQLite's page cache, the allocator's pools), then with
/// the small L1 of the memory phase (to show that its budget bounds the growth), then with the
/// configured budget (the rest of the growth: a whole catalog's worth).
async fn l1_residencies(
    repo: &Repo,
    args: &LoadtestArgs,
    workload: &Workload,
) -> anyhow::Result<Vec<L1Residency>> {
    read_all(repo, workload).await;
    read_all(repo, workload).await;
    let mut out = Vec::new();
    for budget in [args.memory_l1_mb * 1024 * 1024, args.l1_capacity_bytes()] {
        let r = l1_residency(repo, budget, workload).await?;
        eprintln!(
            "catalog-loadtest: L1 budget {} MiB: {} entries, weighted {} MiB, RSS {} -> {} MiB",
            report::mib(budget),
            r.entries,
            report::mib(r.weighted_bytes),
            report::opt_mib(r.rss_before),
            report::opt_mib(r.rss_after)
        );
        out.push(r);
    }
    Ok(out)
}

/// Reads every product detail and the first three listing pages of every category; how many
/// succeeded.
async fn read_all(repo: &Repo, workload: &Workload) -> u64 {
    let products = futures::stream::iter(workload.products.iter().map(|p| p.0))
        .map(|id| {
            let repo = repo.clone();
            async move { repo.product(id).await.is_ok() }
        })
        .buffer_unordered(16)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let pages = workload
        .categories
        .iter()
        .flat_map(|&c| (1..=3).map(move |p| (c, p)));
    let listings = futures::stream::iter(pages)
        .map(|(c, p)| {
            let repo = repo.clone();
            async move {
                let query = catalog::domain::ListQuery {
                    category: Some(c),
                    page: Some(p),
                    ..catalog::domain::ListQuery::default()
                };
                repo.list_products(&query).await.is_ok()
            }
        })
        .buffer_unordered(16)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    (products + listings) as u64
}

/// Fills an L1 of `budget` bytes (no L2) with [`read_all`], twice; its weighted size and this
/// process's resident size before and after.
async fn l1_residency(
    repo: &Repo,
    budget: u64,
    workload: &Workload,
) -> anyhow::Result<L1Residency> {
    let cache = cache_core::Cache::builder()
        .namespace(NAMESPACE.to_owned())
        .l1_capacity_bytes(budget)
        .build()
        .await
        .context("building an L1-only cache")?;
    let repo = Repo::new(repo.db.clone(), cache);
    let rss_before = usage::rss(None);
    let reads = read_all(&repo, workload).await + read_all(&repo, workload).await;
    // Let moka apply its pending maintenance (evictions, weighted size).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = repo.cache.stats();
    let rss_after = usage::rss(None);
    Ok(L1Residency {
        budget_bytes: budget,
        reads,
        entries: stats.l1_entries,
        weighted_bytes: stats.l1_weighted_bytes,
        evictions: stats.total.evictions,
        rss_before,
        rss_after,
    })
}

/// Redis memory after a warmup and with every product detail cached (through the repository in
/// this process), then the two-tier load against a Redis with a low `maxmemory` and
/// `allkeys-lru`, and a small L1.
async fn memory_phase(
    cx: &Context,
    base: &Config,
    redis_bin: OsString,
) -> anyhow::Result<MemoryResult> {
    let redis = l2::start(redis_bin.clone(), &[]).await?;
    let url = redis.url();
    let empty = l2::info_u64(&url, "memory", "used_memory")
        .await
        .unwrap_or(0);
    let mut config = base.clone();
    config.redis_url = Some(url.clone());
    config.l1_mb = cx.args.l1_mb;
    let app = build_app(&config).await?;
    let warmup = ops::warmup(&app.repo, false, false).await?;
    let after_warmup = l2::info_u64(&url, "memory", "used_memory")
        .await
        .unwrap_or(0);
    let after_warmup_keys = l2::dbsize(&url).await.unwrap_or(0);
    let repo = app.repo.clone();
    let loaded = futures::stream::iter(cx.workload.products.iter().map(|p| p.0))
        .map(|id| {
            let repo = repo.clone();
            async move { repo.product(id).await }
        })
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(matches!(r, Ok(Some(_)))))
        .count()
        .await as u64;
    let all_products = l2::info_u64(&url, "memory", "used_memory")
        .await
        .unwrap_or(0);
    let all_products_keys = l2::dbsize(&url).await.unwrap_or(0);
    drop(repo);
    drop(app);
    drop(redis);
    eprintln!(
        "catalog-loadtest: Redis used_memory empty {empty}, after warmup {after_warmup} \
         ({after_warmup_keys} keys), with all {loaded} products {all_products} \
         ({all_products_keys} keys)"
    );

    let maxmemory = cx.args.memory_maxmemory.as_str();
    let mut low = l2::start(
        redis_bin,
        &[
            "--maxmemory",
            maxmemory,
            "--maxmemory-policy",
            "allkeys-lru",
        ],
    )
    .await?;
    let mode = Mode {
        name: "two-tier, low memory",
        l1: true,
        l2: true,
        kill_redis: false,
        ceiling: false,
        primed: false,
        postgres: false,
    };
    let result = run_scenario(cx, mode, &mut low, cx.args.memory_l1_mb).await?;
    eprintln!("catalog-loadtest: {}", one_line(&result));
    Ok(MemoryResult {
        redis_empty_used_memory: empty,
        warmup: warmup.to_string(),
        after_warmup_used_memory: after_warmup,
        after_warmup_keys,
        all_products_used_memory: all_products,
        all_products_keys,
        products_loaded: loaded,
        maxmemory: maxmemory.to_owned(),
        low_memory: Some(result),
    })
}

/// A scenario's result in one line, for progress on stderr.
fn one_line(r: &ScenarioResult) -> String {
    format!(
        "{}: {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, hit ratio {:.3}, \
         CPU server {:.2} s / generator {:.2} s",
        r.name,
        r.total.requests,
        r.total.throughput,
        r.total.latency.p50_ms,
        r.total.latency.p99_ms,
        r.total.errors,
        r.hit_ratio,
        r.server_cpu_s.unwrap_or(0.0),
        r.generator_cpu_s.unwrap_or(0.0),
    )
}

/// Writes `report` to `path`: JSON if the name ends in `.json`, markdown otherwise.
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = if path.extension().is_some_and(|e| e == "json") {
        serde_json::to_string_pretty(report)?
    } else {
        report.markdown()
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

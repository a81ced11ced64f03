//! `catalog loadtest`: drives the service over HTTP on loopback with a Zipf-distributed mix of
//! reads and a small share of writes, for a bounded time and with bounded concurrency, in every
//! cache mode (no cache, L2 only, L1 only, two-tier, two-tier with Redis killed half-way), then
//! measures memory (Redis after a warmup; a low `maxmemory` with `allkeys-lru`).
//!
//! Everything is local and owned by the run: a generated SQLite catalog (reused across
//! scenarios), a `redis-server` child process on a free `127.0.0.1` port (never 6379; killed at
//! the end, also on error), and for each scenario a catalog server started in-process on
//! `127.0.0.1:0`. Every scenario starts cold: a new server (empty L1) and `FLUSHALL` on Redis.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tempfile::TempDir;

use crate::{Config, Server, build_app, ops};

/// The most concurrent connections `--concurrency` accepts.
pub const MAX_CONCURRENCY: u64 = 1000;

/// Options of `catalog loadtest`. The global `--seed` seeds both the generated catalog and the
/// workload; the global `--l1-mb` is the L1 budget of the scenarios that have an L1.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// Time per scenario (`10`, `10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent connections: client tasks with one request in flight each (1 to 1000).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY))]
    pub concurrency: u64,
    /// Products in the generated load-test catalog.
    #[arg(long, default_value_t = 20_000)]
    pub products: u32,
    /// Share of requests that are writes (stock changes of Zipf-chosen products).
    #[arg(long, default_value_t = 0.02)]
    pub write_share: f64,
    /// Zipf exponent of every popularity distribution (products, categories, terms, pages).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// The `redis-server` binary to run (its own instance, on a free loopback port).
    #[arg(long, default_value = "redis-server")]
    pub redis_server_bin: PathBuf,
    /// Database of the load test (generated if missing, reused across scenarios); default: a
    /// temporary file, deleted at the end.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Write the results here: JSON if the name ends in `.json`, markdown otherwise.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Skip the memory phase.
    #[arg(long)]
    pub no_memory: bool,
    /// L1 budget (MiB) of the low-memory run of the memory phase.
    #[arg(long, default_value_t = 2)]
    pub memory_l1_mb: u64,
    /// Redis `maxmemory` of the low-memory run of the memory phase (with `allkeys-lru`).
    #[arg(long, default_value = "4mb")]
    pub memory_maxmemory: String,
}

impl LoadtestArgs {
    /// The defaults, with `duration` and `concurrency` as given (for tests and embedding).
    pub fn new(duration: Duration, concurrency: u64) -> LoadtestArgs {
        LoadtestArgs {
            duration,
            concurrency,
            products: 20_000,
            write_share: 0.02,
            zipf: 1.0,
            redis_server_bin: PathBuf::from("redis-server"),
            db: None,
            out: None,
            no_memory: false,
            memory_l1_mb: 2,
            memory_maxmemory: "4mb".to_owned(),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|e| format!("bad duration {s:?}: {e}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit {unit:?} (ms, s, m)")),
    };
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("duration {s:?} must be in (0, 1h]"));
    }
    Ok(Duration::from_secs_f64(secs))
}

// ----- results -----

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// One phase of a scenario's traffic (the whole run, or before / after the Redis kill).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub latency: Latency,
}

/// What one scenario measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub l1: bool,
    pub l2: bool,
    pub total: Phase,
    /// Requests per kind.
    pub mix: BTreeMap<String, u64>,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    pub l1_hits: u64,
    pub l2_hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub l2_errors: u64,
    pub l1_evictions: u64,
    pub hit_ratio: f64,
    pub l1_entries: u64,
    pub l1_weighted_bytes: u64,
    pub l1_capacity_bytes: u64,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
    pub redis_used_memory: Option<u64>,
    pub redis_keys: Option<u64>,
    pub redis_evicted_keys: Option<u64>,
    /// With Redis killed half-way: before and after the kill, and per second.
    pub before_kill: Option<Phase>,
    pub after_kill: Option<Phase>,
    pub timeline: Vec<Second>,
}

/// Requests completed in one second of a run, and their worst latency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub max_ms: f64,
}

/// The memory phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryResult {
    pub redis_empty_used_memory: u64,
    pub warmup: String,
    pub after_warmup_used_memory: u64,
    pub after_warmup_keys: u64,
    pub all_products_used_memory: u64,
    pub all_products_keys: u64,
    pub products_loaded: u64,
    pub maxmemory: String,
    pub low_memory: Option<ScenarioResult>,
}

/// The whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub duration_s: f64,
    pub concurrency: u64,
    pub products: u32,
    pub categories: u64,
    pub write_share: f64,
    pub zipf: f64,
    pub seed: u64,
    pub l1_budget_bytes: u64,
    pub cores: usize,
    pub redis_version: String,
    pub scenarios: Vec<ScenarioResult>,
    pub memory: Option<MemoryResult>,
    /// The L1's resident size against its budget, measured before the scenarios.
    pub l1_residency: Vec<L1Residency>,
}

/// What filling an L1 of a given budget did to the process's resident size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct L1Residency {
    pub budget_bytes: u64,
    pub reads: u64,
    pub entries: u64,
    pub weighted_bytes: u64,
    pub evictions: u64,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
}

impl Report {
    /// A scenario's result by name.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

// ----- the workload -----

/// A Zipf distribution over ranks `0..n`: rank `k` has weight `1 / (k + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let cdf = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let u = rng.random::<f64>() * total;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

const SORTS: &[&str] = &["popular", "price_asc", "newest", "top_selling"];
/// Read mix (before the write share): detail, listing, search, autocomplete, other.
const MIX: [(Kind, f64); 5] = [
    (Kind::Detail, 0.45),
    (Kind::Listing, 0.20),
    (Kind::Search, 0.15),
    (Kind::Autocomplete, 0.15),
    (Kind::Other, 0.05),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Detail,
    Listing,
    Search,
    Autocomplete,
    Other,
    Write,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Detail => "detail",
            Kind::Listing => "listing",
            Kind::Search => "search",
            Kind::Autocomplete => "autocomplete",
            Kind::Other => "other",
            Kind::Write => "write",
        }
    }
}

/// Popularity-ordered key spaces, from the generated database.
#[derive(Debug)]
struct Workload {
    /// (product id, a variant id), most popular first.
    products: Vec<(i64, i64)>,
    product_zipf: Zipf,
    categories: Vec<i64>,
    category_zipf: Zipf,
    terms: Vec<String>,
    term_zipf: Zipf,
    prefixes: Vec<String>,
    prefix_zipf: Zipf,
    page_zipf: Zipf,
    sort_zipf: Zipf,
    write_share: f64,
}

struct Request {
    kind: Kind,
    path: String,
    body: Option<serde_json::Value>,
}

impl Workload {
    async fn load(
        repo: &crate::repo::Repo,
        seed: u64,
        s: f64,
        write_share: f64,
    ) -> anyhow::Result<Workload> {
        let (products, mut categories, names) = repo
            .db
            .read(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT p.id, MIN(v.id) FROM products p JOIN variants v ON v.product_id = p.id
                     GROUP BY p.id ORDER BY p.popularity DESC, p.id",
                )?;
                let products = stmt
                    .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut stmt = conn.prepare("SELECT id FROM categories ORDER BY id")?;
                let categories = stmt
                    .query_map([], |r| r.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut stmt =
                    conn.prepare("SELECT name FROM products ORDER BY popularity DESC LIMIT 5000")?;
                let names = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((products, categories, names))
            })
            .await?;
        ensure!(
            !products.is_empty(),
            "the load-test catalog has no products"
        );
        ensure!(
            !categories.is_empty(),
            "the load-test catalog has no categories"
        );
        let mut rng = StdRng::seed_from_u64(seed);
        categories.shuffle(&mut rng);
        // Search terms: the first one or two words of popular names ("sleek", "sleek lamp");
        // autocomplete prefixes: 2 to 4 first letters of their words. Popular first.
        let mut terms = Vec::new();
        let mut prefixes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for name in &names {
            let words: Vec<String> = name.split_whitespace().map(str::to_lowercase).collect();
            let mut candidates: Vec<(bool, String)> = Vec::new();
            if let Some(w) = words.first() {
                candidates.push((true, w.clone()));
            }
            if words.len() >= 2 {
                candidates.push((true, format!("{} {}", words[0], words[1])));
            }
            for w in words.iter().filter(|w| w.chars().all(char::is_alphabetic)) {
                for len in 2..=4.min(w.len()) {
                    candidates.push((false, w[..len].to_owned()));
                }
            }
            for (is_term, c) in candidates {
                if seen.insert((is_term, c.clone())) {
                    if is_term { &mut terms } else { &mut prefixes }.push(c);
                }
            }
        }
        ensure!(!terms.is_empty() && !prefixes.is_empty(), "no search terms");
        Ok(Workload {
            product_zipf: Zipf::new(products.len(), s),
            products,
            category_zipf: Zipf::new(categories.len(), s),
            categories,
            term_zipf: Zipf::new(terms.len(), s),
            terms,
            prefix_zipf: Zipf::new(prefixes.len(), s),
            prefixes,
            page_zipf: Zipf::new(5, s),
            sort_zipf: Zipf::new(SORTS.len(), 1.0),
            write_share,
        })
    }

    fn product(&self, rng: &mut StdRng) -> (i64, i64) {
        self.products[self.product_zipf.sample(rng)]
    }

    fn next(&self, rng: &mut StdRng) -> Request {
        if rng.random::<f64>() < self.write_share {
            let (id, variant) = self.product(rng);
            return Request {
                kind: Kind::Write,
                path: format!("/products/{id}/variants/{variant}/stock"),
                body: Some(serde_json::json!({"delta": 1, "reason": "loadtest"})),
            };
        }
        let total: f64 = MIX.iter().map(|m| m.1).sum();
        let mut u = rng.random::<f64>() * total;
        let mut kind = Kind::Other;
        for (k, w) in MIX {
            if u < w {
                kind = k;
                break;
            }
            u -= w;
        }
        let path = match kind {
            Kind::Detail => format!("/products/{}", self.product(rng).0),
            Kind::Listing => {
                let cat = self.categories[self.category_zipf.sample(rng)];
                let sort = SORTS[self.sort_zipf.sample(rng)];
                let page = self.page_zipf.sample(rng) + 1;
                format!("/products?category={cat}&sort={sort}&page={page}")
            }
            Kind::Search => {
                let q = &self.terms[self.term_zipf.sample(rng)];
                format!("/search?q={}", q.replace(' ', "+"))
            }
            Kind::Autocomplete => {
                format!(
                    "/autocomplete?prefix={}",
                    self.prefixes[self.prefix_zipf.sample(rng)]
                )
            }
            Kind::Other | Kind::Write => match rng.random_range(0..4) {
                0 => format!("/products/{}/recommendations", self.product(rng).0),
                1 => format!(
                    "/filters?category={}",
                    self.categories[self.category_zipf.sample(rng)]
                ),
                2 => "/products/top-sellers".to_owned(),
                _ => "/categories/tree".to_owned(),
            },
        };
        Request {
            kind,
            path,
            body: None,
        }
    }
}

// ----- its own redis-server -----

/// A `redis-server` child process on a free loopback port; killed on drop.
#[derive(Debug)]
struct OwnRedis {
    child: Option<Child>,
    port: u16,
    _dir: TempDir,
}

impl OwnRedis {
    async fn start(bin: &Path, extra: &[&str]) -> anyhow::Result<OwnRedis> {
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let dir = tempfile::tempdir().context("temporary directory for redis-server")?;
            let mut cmd = Command::new(bin);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(["--logfile", "redis.log"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = cmd
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let pid = child.id();
            let mut redis = OwnRedis {
                child: Some(child),
                port,
                _dir: dir,
            };
            match redis.wait_ready(pid).await {
                Ok(()) => return Ok(redis),
                Err(e) => {
                    redis.kill();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// Waits until our process answers on the port (its `process_id` is our child's).
    async fn wait_ready(&mut self, pid: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("redis-server exited at start ({status})");
            }
            if let Ok(info) = info(&self.url(), "server").await {
                ensure!(
                    info.get("process_id").map(String::as_str) == Some(&pid.to_string()),
                    "another process answers on port {}",
                    self.port
                );
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    for _ in 0..10 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if port != 6379 {
            return Ok(port);
        }
    }
    bail!("no free port")
}

async fn redis_conn(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .context("connecting to redis-server: timed out")??;
    Ok(conn)
}

/// `INFO <section>` as a map.
async fn info(url: &str, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut conn = redis_conn(url).await?;
    let text: String = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("INFO").arg(section).query_async(&mut conn),
    )
    .await
    .context("INFO timed out")??;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

async fn info_u64(url: &str, section: &str, key: &str) -> Option<u64> {
    info(url, section).await.ok()?.get(key)?.parse().ok()
}

async fn dbsize(url: &str) -> Option<u64> {
    let mut conn = redis_conn(url).await.ok()?;
    redis::cmd("DBSIZE").query_async(&mut conn).await.ok()
}

async fn flushall(url: &str) -> anyhow::Result<()> {
    let mut conn = redis_conn(url).await?;
    let _: String = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    Ok(())
}

/// This process's resident set size, in bytes.
pub fn vm_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ----- running -----

#[derive(Debug, Clone, Copy)]
struct Mode {
    name: &'static str,
    l1: bool,
    l2: bool,
    kill_redis: bool,
}

const MODES: [Mode; 5] = [
    Mode {
        name: "no cache",
        l1: false,
        l2: false,
        kill_redis: false,
    },
    Mode {
        name: "L2 only",
        l1: false,
        l2: true,
        kill_redis: false,
    },
    Mode {
        name: "L1 only",
        l1: true,
        l2: false,
        kill_redis: false,
    },
    Mode {
        name: "two-tier",
        l1: true,
        l2: true,
        kill_redis: false,
    },
    Mode {
        name: "two-tier, Redis killed at half time",
        l1: true,
        l2: true,
        kill_redis: true,
    },
];

/// Runs every scenario and the memory phase; the report. Every process and server it started is
/// stopped before it returns, also on error.
pub async fn run(config: &Config, args: &LoadtestArgs) -> anyhow::Result<Report> {
    ensure!(
        (1..=MAX_CONCURRENCY).contains(&args.concurrency),
        "--concurrency must be 1 to {MAX_CONCURRENCY}"
    );
    ensure!(
        (0.0..=1.0).contains(&args.write_share),
        "--write-share must be in [0, 1]"
    );
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let mut base = config.clone();
    base.listen = (Ipv4Addr::LOCALHOST, 0).into();
    base.database = args
        .db
        .clone()
        .unwrap_or_else(|| tmp.path().join("loadtest.sqlite3"));
    base.products = args.products;
    base.namespace = "loadtest".to_owned();
    base.redis_url = None;

    // Generate (or open) the catalog once; the workload's key spaces come from it.
    let started = Instant::now();
    let app = {
        let mut c = base.clone();
        c.l1_mb = 0;
        build_app(&c)
            .await
            .context("opening the load-test database")?
    };
    let workload =
        Arc::new(Workload::load(&app.repo, config.seed, args.zipf, args.write_share).await?);
    let categories = workload.categories.len() as u64;
    let mut residency = Vec::new();
    if !args.no_memory {
        // The same reads without a cache first (SQLite's page cache, the allocator's pools), then
        // with the small L1 of the memory phase (to show that its budget bounds the growth), then
        // with the configured budget (the rest of the growth: a whole catalog's worth).
        read_all(&app.repo, &workload).await;
        read_all(&app.repo, &workload).await;
        for budget in [args.memory_l1_mb * 1024 * 1024, config.l1_capacity_bytes()] {
            let r = l1_residency(&app.repo, &base.namespace, budget, &workload).await?;
            eprintln!(
                "loadtest: L1 budget {} MiB: {} entries, weighted {} MiB, RSS {} -> {} MiB",
                mib(budget),
                r.entries,
                mib(r.weighted_bytes),
                opt_mib(r.rss_before),
                opt_mib(r.rss_after)
            );
            residency.push(r);
        }
    }
    drop(app);
    eprintln!(
        "loadtest: catalog {} ({} products, {categories} categories) ready in {:.1?}",
        base.database.display(),
        workload.products.len(),
        started.elapsed()
    );

    let mut redis = OwnRedis::start(&args.redis_server_bin, &[]).await?;
    let redis_version = info(&redis.url(), "server")
        .await
        .ok()
        .and_then(|i| i.get("redis_version").cloned())
        .unwrap_or_default();
    let mut report = Report {
        duration_s: args.duration.as_secs_f64(),
        concurrency: args.concurrency,
        products: workload.products.len() as u32,
        categories,
        write_share: args.write_share,
        zipf: args.zipf,
        seed: config.seed,
        l1_budget_bytes: config.l1_capacity_bytes(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        redis_version,
        l1_residency: residency,
        ..Report::default()
    };
    for mode in MODES {
        let result =
            run_scenario(&base, args, &workload, mode, Some(&mut redis), config.l1_mb).await?;
        eprintln!("loadtest: {}", one_line(&result));
        report.scenarios.push(result);
    }
    redis.kill();
    if !args.no_memory {
        report.memory = Some(memory_phase(&base, args, &workload).await?);
    }
    Ok(report)
}

async fn run_scenario(
    base: &Config,
    args: &LoadtestArgs,
    workload: &Arc<Workload>,
    mode: Mode,
    redis: Option<&mut OwnRedis>,
    l1_mb: u64,
) -> anyhow::Result<ScenarioResult> {
    let redis_url = match (&redis, mode.l2) {
        (Some(r), true) => {
            flushall(&r.url()).await?;
            Some(r.url())
        }
        _ => None,
    };
    let mut config = base.clone();
    config.l1_mb = if mode.l1 { l1_mb } else { 0 };
    config.redis_url = redis_url.clone();
    let rss_before = vm_rss();
    let server = Server::start(&config, false).await?;
    if mode.l2 {
        ensure!(
            server.app.repo.cache.has_l2(),
            "{}: the cache did not connect to Redis",
            mode.name
        );
    }
    let outcome = drive(server.url(), args, workload, mode, redis, base.seed).await;
    let stats = server.app.repo.cache.stats();
    let rss_after = vm_rss();
    let (used, keys, evicted) = match &redis_url {
        Some(url) if !mode.kill_redis => (
            info_u64(url, "memory", "used_memory").await,
            dbsize(url).await,
            info_u64(url, "stats", "evicted_keys").await,
        ),
        _ => (None, None, None),
    };
    server.shutdown().await?;
    let load = outcome?;
    let t = &stats.total;
    Ok(ScenarioResult {
        name: mode.name.to_owned(),
        l1: mode.l1,
        l2: mode.l2,
        total: load.total,
        mix: load.mix,
        error_samples: load.error_samples,
        l1_hits: t.l1_hits,
        l2_hits: t.l2_hits,
        misses: t.misses,
        loads: t.loads,
        l2_errors: t.l2_errors + stats.l2_errors_unattributed,
        l1_evictions: t.evictions,
        hit_ratio: t.hit_ratio(),
        l1_entries: stats.l1_entries,
        l1_weighted_bytes: stats.l1_weighted_bytes,
        l1_capacity_bytes: stats.l1_capacity_bytes,
        rss_before,
        rss_after,
        redis_used_memory: used,
        redis_keys: keys,
        redis_evicted_keys: evicted,
        before_kill: load.before,
        after_kill: load.after,
        timeline: load.timeline,
    })
}

struct LoadOutcome {
    total: Phase,
    before: Option<Phase>,
    after: Option<Phase>,
    mix: BTreeMap<String, u64>,
    error_samples: Vec<String>,
    timeline: Vec<Second>,
}

#[derive(Default)]
struct WorkerOut {
    all: Option<Histogram<u64>>,
    before: Option<Histogram<u64>>,
    after: Option<Histogram<u64>>,
    errors: [u64; 2],
    mix: BTreeMap<&'static str, u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Drives `url` for `args.duration` with `args.concurrency` client tasks; with `mode.kill_redis`,
/// SIGKILLs the redis-server at half time.
async fn drive(
    url: String,
    args: &LoadtestArgs,
    workload: &Arc<Workload>,
    mode: Mode,
    redis: Option<&mut OwnRedis>,
    seed: u64,
) -> anyhow::Result<LoadOutcome> {
    let concurrency = args.concurrency as usize;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let seconds = args.duration.as_secs() as usize + 2;
    let timeline: Arc<Vec<[AtomicU64; 3]>> = Arc::new(
        (0..seconds)
            .map(|_| [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)])
            .collect(),
    );
    let samples = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (client, url, workload) = (client.clone(), url.clone(), workload.clone());
        let (timeline, samples, killed) = (timeline.clone(), samples.clone(), killed.clone());
        let seed = seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut out = WorkerOut {
                all: Some(histogram()),
                before: Some(histogram()),
                after: Some(histogram()),
                ..WorkerOut::default()
            };
            while Instant::now() < deadline {
                let req = workload.next(&mut rng);
                let after = killed.load(Ordering::Relaxed);
                let t0 = Instant::now();
                let result = send(&client, &url, &req).await;
                let us = t0.elapsed().as_micros() as u64;
                *out.mix.entry(req.kind.name()).or_default() += 1;
                for h in [
                    &mut out.all,
                    if after {
                        &mut out.after
                    } else {
                        &mut out.before
                    },
                ]
                .into_iter()
                .flatten()
                {
                    h.saturating_record(us.max(1));
                }
                let sec = (t0 - start).as_secs() as usize;
                let slot = timeline.get(sec.min(timeline.len() - 1));
                if let Some(slot) = slot {
                    slot[0].fetch_add(1, Ordering::Relaxed);
                    slot[2].fetch_max(us, Ordering::Relaxed);
                }
                if let Err(e) = result {
                    out.errors[usize::from(after)] += 1;
                    if let Some(slot) = slot {
                        slot[1].fetch_add(1, Ordering::Relaxed);
                    }
                    let mut s = samples.lock();
                    if s.len() < 5 {
                        s.push(format!("{} {}: {e}", req.kind.name(), req.path));
                    }
                }
            }
            out
        }));
    }
    let mut kill_at = None;
    if mode.kill_redis
        && let Some(redis) = redis
    {
        tokio::time::sleep_until((start + args.duration / 2).into()).await;
        redis.kill();
        killed.store(true, Ordering::Relaxed);
        kill_at = Some(Instant::now());
        eprintln!(
            "loadtest: killed redis-server (SIGKILL) at {:.2?}",
            start.elapsed()
        );
    }
    let mut all = histogram();
    let mut before = histogram();
    let mut after = histogram();
    let mut errors = [0u64; 2];
    let mut mix = BTreeMap::new();
    for w in workers {
        let out = w.await.context("load worker panicked")?;
        for (into, from) in [
            (&mut all, out.all),
            (&mut before, out.before),
            (&mut after, out.after),
        ] {
            if let Some(h) = from {
                into.add(&h).context("merging histograms")?;
            }
        }
        errors[0] += out.errors[0];
        errors[1] += out.errors[1];
        for (k, v) in out.mix {
            *mix.entry(k.to_owned()).or_default() += v;
        }
    }
    let end = Instant::now();
    let phase = |h: &Histogram<u64>, errors: u64, seconds: f64| Phase {
        requests: h.len(),
        errors,
        seconds,
        throughput: if seconds > 0.0 {
            h.len() as f64 / seconds
        } else {
            0.0
        },
        latency: Latency::of(h),
    };
    let total = phase(&all, errors[0] + errors[1], (end - start).as_secs_f64());
    let (before, after) = match kill_at {
        Some(k) => (
            Some(phase(&before, errors[0], (k - start).as_secs_f64())),
            Some(phase(&after, errors[1], (end - k).as_secs_f64())),
        ),
        None => (None, None),
    };
    let timeline = timeline
        .iter()
        .enumerate()
        .filter(|(_, s)| s[0].load(Ordering::Relaxed) > 0)
        .map(|(i, s)| Second {
            second: i as u64,
            requests: s[0].load(Ordering::Relaxed),
            errors: s[1].load(Ordering::Relaxed),
            max_ms: s[2].load(Ordering::Relaxed) as f64 / 1000.0,
        })
        .collect();
    let error_samples = samples.lock().clone();
    Ok(LoadOutcome {
        total,
        before,
        after,
        mix,
        error_samples,
        timeline,
    })
}

async fn send(client: &reqwest::Client, url: &str, req: &Request) -> Result<(), String> {
    let full = format!("{url}{}", req.path);
    let builder = match &req.body {
        Some(body) => client.post(full).json(body),
        None => client.get(full),
    };
    let response = builder.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

/// Reads every product detail and the first three listing pages of every category; how many
/// succeeded.
async fn read_all(repo: &crate::repo::Repo, workload: &Workload) -> u64 {
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
                let query = crate::domain::ListQuery {
                    category: Some(c),
                    page: Some(p),
                    ..crate::domain::ListQuery::default()
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

/// Fills an L1 of `budget` bytes (no L2) with [`read_all`], twice; its weighted size and the
/// process's resident size before and after.
async fn l1_residency(
    repo: &crate::repo::Repo,
    namespace: &str,
    budget: u64,
    workload: &Workload,
) -> anyhow::Result<L1Residency> {
    let cache = cache_core::Cache::builder()
        .namespace(namespace.to_owned())
        .l1_capacity_bytes(budget)
        .build()
        .await
        .context("building an L1-only cache")?;
    let repo = crate::repo::Repo::new(repo.db.clone(), cache);
    let rss_before = vm_rss();
    let reads = read_all(&repo, workload).await + read_all(&repo, workload).await;
    // Let moka apply its pending maintenance (evictions, weighted size).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = repo.cache.stats();
    let rss_after = vm_rss();
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

/// Redis memory after a warmup and with every product detail cached, then the two-tier load
/// against a Redis with a low `maxmemory` and `allkeys-lru`, and a small L1.
async fn memory_phase(
    base: &Config,
    args: &LoadtestArgs,
    workload: &Arc<Workload>,
) -> anyhow::Result<MemoryResult> {
    let redis = OwnRedis::start(&args.redis_server_bin, &[]).await?;
    let url = redis.url();
    let empty = info_u64(&url, "memory", "used_memory").await.unwrap_or(0);
    let mut config = base.clone();
    config.redis_url = Some(url.clone());
    let app = build_app(&config).await?;
    let warmup = ops::warmup(&app.repo, false, false).await?;
    let after_warmup = info_u64(&url, "memory", "used_memory").await.unwrap_or(0);
    let after_warmup_keys = dbsize(&url).await.unwrap_or(0);
    let repo = app.repo.clone();
    let loaded = futures::stream::iter(workload.products.iter().map(|p| p.0))
        .map(|id| {
            let repo = repo.clone();
            async move { repo.product(id).await }
        })
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(matches!(r, Ok(Some(_)))))
        .count()
        .await as u64;
    let all_products = info_u64(&url, "memory", "used_memory").await.unwrap_or(0);
    let all_products_keys = dbsize(&url).await.unwrap_or(0);
    drop(repo);
    drop(app);
    drop(redis);
    eprintln!(
        "loadtest: Redis used_memory empty {empty}, after warmup {after_warmup} ({after_warmup_keys} keys), \
         with all {loaded} products {all_products} ({all_products_keys} keys)"
    );

    let mut low = OwnRedis::start(
        &args.redis_server_bin,
        &[
            "--maxmemory",
            &args.memory_maxmemory,
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
    };
    let result = run_scenario(
        base,
        args,
        workload,
        mode,
        Some(&mut low),
        args.memory_l1_mb,
    )
    .await?;
    eprintln!("loadtest: {}", one_line(&result));
    drop(low);
    Ok(MemoryResult {
        redis_empty_used_memory: empty,
        warmup: warmup.to_string(),
        after_warmup_used_memory: after_warmup,
        after_warmup_keys,
        all_products_used_memory: all_products,
        all_products_keys,
        products_loaded: loaded,
        maxmemory: args.memory_maxmemory.clone(),
        low_memory: Some(result),
    })
}

// ----- output -----

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn opt_mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), mib)
}

fn one_line(r: &ScenarioResult) -> String {
    format!(
        "{}: {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, hit ratio {:.3}",
        r.name,
        r.total.requests,
        r.total.throughput,
        r.total.latency.p50_ms,
        r.total.latency.p99_ms,
        r.total.errors,
        r.hit_ratio
    )
}

fn scenario_row(out: &mut String, r: &ScenarioResult) {
    let l = &r.total.latency;
    let _ = writeln!(
        out,
        "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {:.3} ({:.3} / {:.3}) | {} | {} / {} | {} → {} | {} | {} |",
        r.name,
        r.total.requests,
        r.total.throughput,
        l.p50_ms,
        l.p95_ms,
        l.p99_ms,
        l.max_ms,
        r.total.errors,
        r.hit_ratio,
        ratio(r.l1_hits, r.l1_hits + r.l2_hits + r.misses),
        ratio(r.l2_hits, r.l1_hits + r.l2_hits + r.misses),
        r.loads,
        mib(r.l1_weighted_bytes),
        mib(r.l1_capacity_bytes),
        opt_mib(r.rss_before),
        opt_mib(r.rss_after),
        opt_mib(r.redis_used_memory),
        r.redis_keys
            .map_or_else(|| "-".to_owned(), |k| k.to_string()),
    );
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

const HEADER: &str = "| scenario | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | hit ratio (L1 / L2) | loads | L1 MiB / budget | RSS MiB before → after | Redis used_memory MiB | Redis keys |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

impl Report {
    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# catalog loadtest\n");
        let _ = writeln!(
            o,
            "Generated by `catalog loadtest --duration {}s --concurrency {}` ({} products, {} categories, \
             write share {}, Zipf s = {}, seed {}, L1 budget {} MiB, {} cores, redis-server {}).\n",
            self.duration_s,
            self.concurrency,
            self.products,
            self.categories,
            self.write_share,
            self.zipf,
            self.seed,
            mib(self.l1_budget_bytes),
            self.cores,
            self.redis_version
        );
        let _ = writeln!(
            o,
            "Workload: Zipf-popular product details 45%, listings (category × sort × page) 20%, search 15%, \
             autocomplete 15%, other reads (recommendations, filters, top sellers, category tree) 5%, scaled \
             to the read share; writes are stock changes (+1) of Zipf-popular products. Each scenario starts \
             cold (a new in-process server, so an empty L1, and FLUSHALL on Redis); nothing is warmed. The \
             load generator (reqwest, one connection per client task) runs in the same process and on the \
             same cores as the server, all on 127.0.0.1.\n"
        );
        let _ = writeln!(o, "## Scenarios\n");
        o.push_str(HEADER);
        for r in &self.scenarios {
            scenario_row(&mut o, r);
        }
        let _ = writeln!(
            o,
            "\n`loads` = loader runs (database queries behind cached reads). \"no cache\" has L1 capacity 0 \
             and no Redis, but single-flight still coalesces identical concurrent loads, so loads can be \
             fewer than cached reads. L1 MiB is moka's weighted size at the end of the run. RSS is the whole \
             process (server + load generator + SQLite page cache), read from /proc/self/status.\n"
        );
        let _ = writeln!(o, "## Ratios vs no cache\n");
        let _ = writeln!(
            o,
            "| scenario | throughput × | p50 ÷ | p99 ÷ |\n|---|---|---|---|"
        );
        if let Some(none) = self.scenario("no cache") {
            for r in &self.scenarios {
                let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
                let _ = writeln!(
                    o,
                    "| {} | {:.2} | {:.2} | {:.2} |",
                    r.name,
                    div(r.total.throughput, none.total.throughput),
                    div(r.total.latency.p50_ms, none.total.latency.p50_ms),
                    div(r.total.latency.p99_ms, none.total.latency.p99_ms),
                );
            }
        }
        let _ = writeln!(
            o,
            "\n(p50 ÷ and p99 ÷: the scenario's latency over no cache's; below 1 is faster.)\n"
        );
        if let Some(k) = self.scenarios.iter().find(|s| s.before_kill.is_some()) {
            let _ = writeln!(o, "## Redis killed at half time\n");
            let _ = writeln!(
                o,
                "| phase | seconds | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|---|"
            );
            for (name, p) in [
                ("before the kill", &k.before_kill),
                ("after the kill", &k.after_kill),
            ] {
                if let Some(p) = p {
                    let l = &p.latency;
                    let _ = writeln!(
                        o,
                        "| {name} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                        p.seconds,
                        p.requests,
                        p.throughput,
                        l.p50_ms,
                        l.p95_ms,
                        l.p99_ms,
                        l.max_ms,
                        p.errors
                    );
                }
            }
            let _ = writeln!(
                o,
                "\nRedis errors seen by the cache (fell back to L1 and the database): {}.\n\n\
                 Per second (by request start), beside the same second of the plain two-tier run (both start \
                 cold, so the first seconds are the L1 filling up):\n\n\
                 | second | requests | errors | max ms | two-tier requests | two-tier max ms |\n|---|---|---|---|---|---|",
                k.l2_errors
            );
            let reference = self.scenario("two-tier");
            for s in &k.timeline {
                let same = reference.and_then(|r| r.timeline.iter().find(|t| t.second == s.second));
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {:.1} | {} | {} |",
                    s.second,
                    s.requests,
                    s.errors,
                    s.max_ms,
                    same.map_or_else(|| "-".to_owned(), |t| t.requests.to_string()),
                    same.map_or_else(|| "-".to_owned(), |t| format!("{:.1}", t.max_ms)),
                );
            }
            o.push('\n');
        }
        let errors: Vec<&ScenarioResult> = self
            .scenarios
            .iter()
            .chain(self.memory.iter().filter_map(|m| m.low_memory.as_ref()))
            .filter(|s| !s.error_samples.is_empty())
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(o, "## Errors\n");
            for s in errors {
                for e in &s.error_samples {
                    let _ = writeln!(o, "- {}: {e}", s.name);
                }
            }
            o.push('\n');
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(o, "## Memory\n");
            if !self.l1_residency.is_empty() {
                let _ = writeln!(
                    o,
                    "L1 resident size (before the scenarios, in-process, no HTTP): every product detail and 3 \
                     listing pages of every category read twice through an L1-only cache, after the same reads \
                     without a cache (so SQLite's page cache is already warm).\n\n\
                     | L1 budget MiB | reads | entries | weighted MiB | L1 evictions | RSS MiB before → after | RSS growth ÷ weighted |\n\
                     |---|---|---|---|---|---|---|"
                );
                for r in &self.l1_residency {
                    let growth = match (r.rss_before, r.rss_after) {
                        (Some(b), Some(a)) if r.weighted_bytes > 0 => {
                            format!("{:.2}", (a as f64 - b as f64) / r.weighted_bytes as f64)
                        }
                        _ => "-".to_owned(),
                    };
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} | {} | {} → {} | {growth} |",
                        mib(r.budget_bytes),
                        r.reads,
                        r.entries,
                        mib(r.weighted_bytes),
                        r.evictions,
                        opt_mib(r.rss_before),
                        opt_mib(r.rss_after),
                    );
                }
                o.push('\n');
            }
            let per = |bytes: u64, keys: u64| bytes.checked_div(keys).unwrap_or(0);
            let products_bytes = m
                .all_products_used_memory
                .saturating_sub(m.after_warmup_used_memory);
            let product_keys = m.all_products_keys.saturating_sub(m.after_warmup_keys);
            let _ = writeln!(
                o,
                "- Redis `used_memory` empty: {} MiB.\n- After `catalog warmup` ({}): {} MiB, {} keys.\n\
                 - After also reading every product detail ({} products): {} MiB, {} keys \
                 (≈ {} bytes per added key).",
                mib(m.redis_empty_used_memory),
                m.warmup,
                mib(m.after_warmup_used_memory),
                m.after_warmup_keys,
                m.products_loaded,
                mib(m.all_products_used_memory),
                m.all_products_keys,
                per(products_bytes, product_keys),
            );
            if let Some(r) = &m.low_memory {
                let _ = writeln!(
                    o,
                    "- Two-tier load against a redis-server with `maxmemory {}` and `allkeys-lru`, L1 budget {} MiB: \
                     {} requests, {} errors, hit ratio {:.3}, Redis `evicted_keys` {}, Redis used_memory at the \
                     end {} MiB, L1 {} of {} MiB with {} L1 evictions.\n",
                    m.maxmemory,
                    mib(r.l1_capacity_bytes),
                    r.total.requests,
                    r.total.errors,
                    r.hit_ratio,
                    r.redis_evicted_keys
                        .map_or_else(|| "-".to_owned(), |k| k.to_string()),
                    opt_mib(r.redis_used_memory),
                    mib(r.l1_weighted_bytes),
                    mib(r.l1_capacity_bytes),
                    r.l1_evictions,
                );
                o.push_str(HEADER);
                scenario_row(&mut o, r);
                o.push('\n');
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks_and_stays_in_range() {
        let zipf = Zipf::new(100, 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 100];
        for _ in 0..20_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[99]);
        // Rank 1 has weight 1 / H(100) ≈ 0.193.
        assert!((3_400..4_300).contains(&counts[0]), "{}", counts[0]);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
    }
}

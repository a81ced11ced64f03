//! The command line of `catalog-loadtest`: what to run (duration, connections, closed or open
//! loop), the generated catalog, and the programs it starts (the catalog server, redis-server).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The most concurrent connections `--concurrency` accepts.
pub const MAX_CONCURRENCY: u64 = 1000;

/// The highest request rate `--rate` accepts (requests per second, all connections together).
pub const MAX_RATE: f64 = 1_000_000.0;

/// Drives the catalog service over HTTP on loopback in every cache mode, each a server process of
/// its own, and reports throughput, latency, hit ratios, memory and the CPU of server and generator.
#[derive(Debug, Clone, Parser)]
#[command(name = "catalog-loadtest", version)]
pub struct LoadtestArgs {
    /// Time per scenario (`10`, `10s`, `500ms`, `1m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent connections: client tasks with one request in flight each (1 to 1000).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY))]
    pub concurrency: u64,
    /// Open loop: send this many requests per second in all (spread evenly over the
    /// connections), and measure each latency from the request's intended send time, so a slow
    /// server cannot hide its queueing (no coordinated omission). Without it: closed loop, each
    /// connection sends its next request when the previous one is answered.
    #[arg(long, value_name = "REQ_PER_S", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Products in the generated load-test catalog.
    #[arg(long, default_value_t = 20_000)]
    pub products: u32,
    /// Approximate number of categories in the generated catalog.
    #[arg(long, default_value_t = 500)]
    pub categories: u32,
    /// Seed of the generated catalog and of the workload.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// L1 budget (MiB) of the scenarios that have an L1.
    #[arg(long, default_value_t = 64)]
    pub l1_mb: u64,
    /// Share of requests that are writes (stock changes of Zipf-chosen products).
    #[arg(long, default_value_t = 0.02)]
    pub write_share: f64,
    /// Zipf exponent of every popularity distribution (products, categories, terms, pages).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// The catalog server to run, one process per scenario. Default: `catalog-server` next to this
    /// executable (this package builds it from the service's sources), else `catalog` there.
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// The `redis-server` binary to run (its own instance, on a free loopback port).
    #[arg(long, env = "REDIS_SERVER_BIN", default_value = "redis-server")]
    pub redis_server_bin: PathBuf,
    /// Database of the load test (generated if missing, reused across scenarios); default: a
    /// temporary file, deleted at the end.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// A PostgreSQL server: adds the PostgreSQL scenarios ("no cache" and "two-tier" on
    /// PostgreSQL, beside the same on SQLite). Their catalog is the database
    /// `catalog_loadtest_p<products>_c<categories>_s<seed>` there, created and generated if
    /// missing, reused by later runs.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub postgres: Option<String>,
    /// Write the results here: JSON if the name ends in `.json`, markdown otherwise.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Instead of running: write 100,000 request paths of the workload's reads to this file, one
    /// per line, to replay the same mix with another generator (`wrk -s wrk-paths.lua`).
    #[arg(long, value_name = "PATH", conflicts_with = "out")]
    pub paths_out: Option<PathBuf>,
    /// Instead of the cache modes: the Redis fault scenarios (two-tier, a fault injected at a
    /// third of `--duration`: DEBUG SLEEP, CLIENT PAUSE, FLUSHALL, a tiny maxmemory, garbage bytes
    /// over the entries), with their table of requests, failures and stale reads after a write.
    #[arg(long, conflicts_with = "paths_out")]
    pub faults: bool,
    /// Skip the memory phase.
    #[arg(long)]
    pub no_memory: bool,
    /// Rounds of the HTTP phase (revalidating vs full fetches, batch vs single reads); 0 skips it.
    #[arg(long, default_value_t = 20)]
    pub http_rounds: u32,
    /// Skip the warm start (`catalog warmup`, then the hit ratio of the first reads).
    #[arg(long, conflicts_with = "warm_start_only")]
    pub no_warm_start: bool,
    /// Run only the warm start: `catalog warmup` into a fresh Redis, then a new two-tier server
    /// and its hit ratio after the first 1,000, 3,000 and 10,000 reads of the mix.
    #[arg(long)]
    pub warm_start_only: bool,
    /// Reads of the warm start (checkpoints past it are skipped).
    #[arg(long, default_value_t = 10_000)]
    pub warm_start_reads: u64,
    /// L1 budget (MiB) of the low-memory run of the memory phase.
    #[arg(long, default_value_t = 2)]
    pub memory_l1_mb: u64,
    /// Redis `maxmemory` of the low-memory run of the memory phase (with `allkeys-lru`).
    #[arg(long, default_value = "4mb")]
    pub memory_maxmemory: String,
}

impl LoadtestArgs {
    /// The L1 budget of the scenarios with an L1, in bytes.
    pub fn l1_capacity_bytes(&self) -> u64 {
        self.l1_mb.saturating_mul(1024 * 1024)
    }
}

/// `10`, `10s`, `500ms`, `1m`: more than zero, at most an hour.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|e| format!("bad rate {s:?}: {e}"))?;
    if !(rate > 0.0 && rate <= MAX_RATE) {
        return Err(format!("rate {s:?} must be in (0, {MAX_RATE}]"));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        LoadtestArgs::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn concurrency_and_rate_are_bounded() {
        let parse =
            |extra: &[&str]| LoadtestArgs::try_parse_from(["catalog-loadtest"].iter().chain(extra));
        let args = parse(&["--duration", "2s"]).expect("parses");
        assert_eq!(args.duration, Duration::from_secs(2));
        assert_eq!(args.concurrency, 64);
        assert_eq!(args.rate, None);
        assert!(parse(&["--concurrency", "1000"]).is_ok());
        assert!(parse(&["--concurrency", "1001"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert_eq!(
            parse(&["--rate", "2500"]).expect("parses").rate,
            Some(2500.0)
        );
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--rate", "-5"]).is_err());
        assert!(parse(&["--rate", "2000000"]).is_err());
    }
}

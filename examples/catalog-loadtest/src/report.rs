//! What a run measured, and its report: markdown tables (LOADTEST.md) or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::run::CEILING;
use crate::warm_start::WarmStartResult;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
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
    /// The server process's resident size after its start and at the end of the run.
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
    /// CPU seconds (user + system) of the server process and of the load generator's process
    /// while the load ran.
    pub server_cpu_s: Option<f64>,
    pub generator_cpu_s: Option<f64>,
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
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// The catalog server binary that was driven.
    pub server_bin: String,
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
    /// The hit ratio after `catalog warmup`.
    pub warm_start: Option<WarmStartResult>,
    /// The L1's resident size against its budget, measured before the scenarios.
    pub l1_residency: Vec<L1Residency>,
    /// The HTTP phase (revalidation and batch savings).
    pub http: Option<crate::http_phase::HttpResult>,
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
    /// How the requests were paced, in a sentence.
    fn pacing_text(&self) -> String {
        match self.rate {
            None => format!(
                "Closed loop: {} connections, each sending its next request as soon as the previous one \
                 is answered (throughput is what the server sustains; latency excludes time a request would \
                 have waited to be sent).",
                self.concurrency
            ),
            Some(rate) => format!(
                "Open loop: {rate} requests per second in all, on a fixed schedule over {} connections; \
                 each latency is measured from the request's intended send time, so time spent waiting \
                 behind a slow response counts (no coordinated omission). Throughput below {rate} means the \
                 server did not keep up.",
                self.concurrency
            ),
        }
    }

    /// A scenario's result by name.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

// ----- output -----

/// Bytes in MiB, one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// [`mib`], or `-`.
pub fn opt_mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), mib)
}

fn scenario_row(out: &mut String, r: &ScenarioResult) {
    let l = &r.total.latency;
    let _ = writeln!(
        out,
        "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {:.3} ({:.3} / {:.3}) | {} | {} / {} | {} → {} | {} | {} | {} | {} |",
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
        cpu_percent(r.server_cpu_s, r.total.seconds),
        cpu_percent(r.generator_cpu_s, r.total.seconds),
    );
}

/// CPU seconds over wall seconds, as a percentage of one core.
fn cpu_percent(cpu_s: Option<f64>, wall_s: f64) -> String {
    match cpu_s {
        Some(cpu) if wall_s > 0.0 => format!("{:.0}", cpu / wall_s * 100.0),
        _ => "-".to_owned(),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

const HEADER: &str = "| scenario | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | hit ratio (L1 / L2) | loads | L1 MiB / budget | RSS MiB before → after | Redis used_memory MiB | Redis keys | server CPU % | generator CPU % |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

impl Report {
    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        self.write_header(&mut o);
        self.write_scenarios(&mut o);
        self.write_ratios(&mut o);
        self.write_redis_kill(&mut o);
        self.write_errors(&mut o);
        self.write_warm_start(&mut o);
        self.write_memory(&mut o);
        if let Some(http) = &self.http {
            o.push_str(&http.markdown());
        }
        o
    }

    /// The hit-ratio curve after `catalog warmup`.
    fn write_warm_start(&self, o: &mut String) {
        let Some(w) = &self.warm_start else {
            return;
        };
        let _ = writeln!(
            o,
            "## Warm start\n\n\
             `catalog warmup` into an empty Redis took {:.2} s (the whole process): \
             {}. Redis then held {} keys. A new two-tier server then received the mix's reads \
             one at a time ({} errors):\n",
            w.warmup_s, w.warmup_report, w.redis_keys, w.errors
        );
        let _ = writeln!(
            o,
            "| first reads | hit ratio | hit ratio of these reads since the previous row | \
             requests answered from the cache (`X-Cache`) | loads |\n\
             |---|---|---|---|---|"
        );
        for c in &w.checkpoints {
            let _ = writeln!(
                o,
                "| {} | {:.3} | {:.3} | {:.3} | {} |",
                c.reads, c.hit_ratio, c.window_hit_ratio, c.request_hit_ratio, c.loads
            );
        }
        let _ = writeln!(
            o,
            "\nHit ratio: hits over lookups of every pattern (a request whose body is cached is one \
             lookup; one whose body is not looks its value up too). Requests answered from the \
             cache: of the reads whose route answers from a cached body (all but filters and top \
             sellers), the share whose `X-Cache` was `hit-l1` or `hit-l2`, as a client sees it.\n"
        );
    }

    /// What was run, on what, and how the load was paced.
    fn write_header(&self, o: &mut String) {
        let _ = writeln!(o, "# catalog loadtest\n");
        let rate = self
            .rate
            .map_or_else(String::new, |r| format!(" --rate {r}"));
        let _ = writeln!(
            o,
            "Generated by `catalog-loadtest --duration {}s --concurrency {}{rate}` ({} products, {} categories, \
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
             cold (a new server process, so an empty L1, and FLUSHALL on Redis); the \"primed\" \
             scenarios and the ceiling then run one unmeasured pass of the workload first, and only \
             the second pass is measured (the steady state). The \
             server (`{}`) and the load generator (`catalog-loadtest`: reqwest, one connection per client \
             task) are separate processes on the same cores, talking over 127.0.0.1.\n",
            self.server_bin
        );
        let _ = writeln!(o, "{}\n", self.pacing_text());
    }

    /// The scenarios table and what its columns mean.
    fn write_scenarios(&self, o: &mut String) {
        let _ = writeln!(o, "## Scenarios\n");
        o.push_str(HEADER);
        for r in &self.scenarios {
            scenario_row(o, r);
        }
        let _ = writeln!(
            o,
            "\n`loads` = loader runs (database queries behind cached reads). \"no cache\" has L1 capacity 0 \
             and no Redis, but single-flight still coalesces identical concurrent loads, so loads can be \
             fewer than cached reads. \"{CEILING}\" is the same server started with `--ceiling`: each \
             distinct request is computed once (no cache, from the database) and then served from a copy \
             of its response bytes in memory; it is primed by one unmeasured pass of the same workload, \
             its hit ratio is the share of the measured pass served from memory and its loads the \
             responses computed during it. A \"primed\" cache mode is primed the same way; its counts \
             (hits, loads) are those of the measured pass. L1 MiB is moka's weighted size at the end of the run. RSS is the server \
             process's (with SQLite's page cache), from /proc/<pid>/status after its start and at the end. \
             CPU % is CPU time (user + system) over the run's wall time, in percent of one core: the server's \
             from /proc/<pid>/stat, the generator's from getrusage of its own process (on a machine with few \
             cores, the generator's share is taken from the server).\n"
        );
    }

    /// Each scenario against no cache and against the ceiling.
    fn write_ratios(&self, o: &mut String) {
        let _ = writeln!(o, "## Ratios vs no cache\n");
        let _ = writeln!(
            o,
            "| scenario | throughput × | p50 ÷ | p99 ÷ | throughput ÷ ceiling |\n|---|---|---|---|---|"
        );
        if let Some(none) = self.scenario("no cache") {
            let ceiling = self.scenario(CEILING);
            for r in &self.scenarios {
                let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
                let _ = writeln!(
                    o,
                    "| {} | {:.2} | {:.2} | {:.2} | {} |",
                    r.name,
                    div(r.total.throughput, none.total.throughput),
                    div(r.total.latency.p50_ms, none.total.latency.p50_ms),
                    div(r.total.latency.p99_ms, none.total.latency.p99_ms),
                    ceiling.map_or_else(
                        || "-".to_owned(),
                        |c| format!("{:.2}", div(r.total.throughput, c.total.throughput))
                    ),
                );
            }
        }
        let _ = writeln!(
            o,
            "\n(p50 ÷ and p99 ÷: the scenario's latency over no cache's; below 1 is faster. \
             Throughput ÷ ceiling: how close the scenario comes to the same server answering from \
             bytes in memory.)\n"
        );
        self.write_two_tier_vs_l1(o);
    }

    /// Two-tier against L1 only, cold and primed: what the L2 costs or saves beside the same L1.
    fn write_two_tier_vs_l1(&self, o: &mut String) {
        let pairs = [
            ("cold", "two-tier", "L1 only"),
            ("primed", "two-tier, primed", "L1 only, primed"),
        ];
        let rows: Vec<String> = pairs
            .iter()
            .filter_map(|(start, two, one)| {
                let (two, one) = (self.scenario(two)?, self.scenario(one)?);
                let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
                Some(format!(
                    "| {start} | {:.2} | {:.2} | {:.2} | {} | {} |",
                    div(two.total.throughput, one.total.throughput),
                    div(two.total.latency.p50_ms, one.total.latency.p50_ms),
                    div(two.total.latency.p99_ms, one.total.latency.p99_ms),
                    two.loads,
                    one.loads,
                ))
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "## Two-tier vs L1 only\n\n\
             | start | throughput ÷ | p50 ÷ | p99 ÷ | loads, two-tier | loads, L1 only |\n\
             |---|---|---|---|---|---|"
        );
        for row in rows {
            let _ = writeln!(o, "{row}");
        }
        let _ = writeln!(
            o,
            "\n(The same L1 budget in both. Cold: both start empty, and every miss of the two-tier \
             server also writes Redis (the lease, the write-back). Primed: after one unmeasured pass; \
             an L1 miss of the two-tier server is then mostly an L2 hit instead of a database load.)\n"
        );
    }

    /// Before and after the Redis kill, and second by second.
    fn write_redis_kill(&self, o: &mut String) {
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
    }

    /// The first errors of each scenario that had any.
    fn write_errors(&self, o: &mut String) {
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
    }

    /// The memory phase.
    fn write_memory(&self, o: &mut String) {
        if let Some(m) = &self.memory {
            let _ = writeln!(o, "## Memory\n");
            if !self.l1_residency.is_empty() {
                let _ = writeln!(
                    o,
                    "L1 resident size (before the scenarios, in the load tool's own process, no HTTP): every product detail and 3 \
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
                "- Redis `used_memory` empty: {} MiB.\n- After a warmup (as `catalog warmup`: {}): {} MiB, {} keys.\n\
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
                scenario_row(o, r);
                o.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str, throughput: f64, server_cpu_s: f64) -> ScenarioResult {
        ScenarioResult {
            name: name.to_owned(),
            total: Phase {
                requests: (throughput * 2.0) as u64,
                seconds: 2.0,
                throughput,
                ..Phase::default()
            },
            server_cpu_s: Some(server_cpu_s),
            generator_cpu_s: Some(0.5),
            ..ScenarioResult::default()
        }
    }

    #[test]
    fn the_markdown_has_cpu_columns_and_ratios_to_the_ceiling() {
        let report = Report {
            duration_s: 2.0,
            concurrency: 8,
            rate: Some(500.0),
            server_bin: "catalog-server".to_owned(),
            scenarios: vec![
                scenario("no cache", 1000.0, 1.5),
                scenario("L1 only", 3000.0, 2.0),
                scenario(CEILING, 6000.0, 1.0),
            ],
            ..Report::default()
        };
        let md = report.markdown();
        assert!(
            md.contains("`catalog-loadtest --duration 2s --concurrency 8 --rate 500`"),
            "{md}"
        );
        assert!(md.contains("Open loop: 500 requests per second"), "{md}");
        // CPU % of one core: 2.0 s over 2 s, and the generator's 0.5 s.
        assert!(md.contains("| - | - | 100 | 25 |\n"), "{md}");
        assert!(
            md.contains("| L1 only | 3.00 | 0.00 | 0.00 | 0.50 |"),
            "{md}"
        );
        assert!(
            md.contains(&format!("| {CEILING} | 6.00 | 0.00 | 0.00 | 1.00 |")),
            "{md}"
        );
        assert!(!md.contains("## Redis killed"), "{md}");
    }

    #[test]
    fn two_tier_is_compared_with_l1_only_cold_and_primed() {
        let report = Report {
            scenarios: vec![
                scenario("no cache", 1000.0, 1.5),
                scenario("L1 only", 4000.0, 2.0),
                scenario("two-tier", 3000.0, 2.0),
                scenario("L1 only, primed", 5000.0, 2.0),
                scenario("two-tier, primed", 6000.0, 2.0),
            ],
            ..Report::default()
        };
        let md = report.markdown();
        assert!(md.contains("## Two-tier vs L1 only\n\n| start |"), "{md}");
        assert!(md.contains("| cold | 0.75 |"), "{md}");
        assert!(md.contains("| primed | 1.20 |"), "{md}");
        let without = Report {
            scenarios: vec![scenario("no cache", 1000.0, 1.5)],
            ..Report::default()
        };
        assert!(!without.markdown().contains("## Two-tier vs L1 only"));
    }

    #[test]
    fn the_warm_start_section_has_the_hit_ratio_curve() {
        use crate::warm_start::{Checkpoint, WarmStartResult};
        let report = Report {
            warm_start: Some(WarmStartResult {
                warmup_s: 2.5,
                warmup_report: "warmed 10 entries".into(),
                redis_keys: 10,
                checkpoints: vec![Checkpoint {
                    reads: 1000,
                    hit_ratio: 0.85,
                    window_hit_ratio: 0.85,
                    request_hit_ratio: 0.9,
                    loads: 150,
                }],
                errors: 0,
            }),
            ..Report::default()
        };
        let md = report.markdown();
        assert!(
            md.contains(
                "## Warm start\n\n`catalog warmup` into an empty Redis took 2.50 s (the whole \
                 process): warmed 10 entries. Redis then held 10 keys."
            ),
            "{md}"
        );
        assert!(
            md.contains("| 1000 | 0.850 | 0.850 | 0.900 | 150 |"),
            "{md}"
        );
    }
}

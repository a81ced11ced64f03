//! Regenerates `BENCHMARKS.md` from criterion's results (`<target>/criterion/**/new/`), so that
//! every figure in it comes from the tool. Run through `scripts/bench-report.sh`, which runs the
//! suite first; by hand:
//!
//! ```text
//! bench-report --target-dir target --out BENCHMARKS.md --since <unix seconds> --mode quick \
//!     --command "BENCH_QUICK=1 cargo bench -p tiercache-benches --bench l1_hit" ...
//! ```
//!
//! `--since`: results written before this time are ignored (reported as not measured), so that a
//! stale result of an earlier run never passes for a new one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// One benchmark's result.
#[derive(Debug, Clone)]
struct Estimate {
    mean: f64,
    lower: f64,
    upper: f64,
    median: f64,
}

/// A ratio the report shows: `library / baseline`, lower is better.
#[derive(Debug)]
struct Comparison {
    bench: &'static str,
    what: &'static str,
    library: &'static str,
    baseline: &'static str,
    /// The largest ratio that passes.
    target: Option<f64>,
}

const fn cmp(
    bench: &'static str,
    what: &'static str,
    library: &'static str,
    baseline: &'static str,
    target: Option<f64>,
) -> Comparison {
    Comparison {
        bench,
        what,
        library,
        baseline,
        target,
    }
}

const COMPARISONS: &[Comparison] = &[
    cmp(
        "l1_hit",
        "`#[cached]` fn returning `Arc<Product>` vs raw moka `get` (both Arc: like for like)",
        "l1_hit/tiercache_attribute_arc",
        "l1_hit/raw_moka_get_arc",
        Some(1.5),
    ),
    cmp(
        "l1_hit",
        "`#[cached]` fn returning `Arc<Product>` vs `cached` crate `#[cached]` (async, in-memory; it returns an owned clone)",
        "l1_hit/tiercache_attribute_arc",
        "l1_hit/cached_cached",
        Some(1.0),
    ),
    cmp(
        "l1_hit",
        "`#[cached]` fn returning `Arc<Product>` vs `cached` crate `#[concurrent_cached]` (in-memory, owned clone)",
        "l1_hit/tiercache_attribute_arc",
        "l1_hit/cached_concurrent_cached",
        Some(1.0),
    ),
    cmp(
        "l1_hit",
        "`#[cached]` fn returning an owned `Product` vs `cached` crate `#[cached]` (both clone the value)",
        "l1_hit/tiercache_attribute",
        "l1_hit/cached_cached",
        None,
    ),
    cmp(
        "l1_hit",
        "`#[cached]` fn returning an owned `Product` vs raw moka `get` (Arc)",
        "l1_hit/tiercache_attribute",
        "l1_hit/raw_moka_get_arc",
        None,
    ),
    cmp(
        "l1_hit",
        "`#[cached]` hit vs raw moka `get` + clone (both owned)",
        "l1_hit/tiercache_attribute",
        "l1_hit/raw_moka_get_clone",
        None,
    ),
    cmp(
        "l1_hit",
        "`get_or_load` hit (Arc) vs raw moka `get` (Arc)",
        "l1_hit/tiercache_get_or_load",
        "l1_hit/raw_moka_get_arc",
        None,
    ),
    cmp(
        "l1_hit",
        "`get::<Product>` hit (Arc) vs raw moka `get` (Arc)",
        "l1_hit/tiercache_get_arc",
        "l1_hit/raw_moka_get_arc",
        None,
    ),
    cmp(
        "l1_hit",
        "`get::<Product>` hit, key built beforehand, vs raw moka `get`",
        "l1_hit/tiercache_get_arc_prebuilt_key",
        "l1_hit/raw_moka_get_arc",
        None,
    ),
    cmp(
        "l1_hit",
        "decomposition: moka's sync cache keyed by the rendered `String` (as tiercache's L1) vs raw moka (future, `u64` keys)",
        "l1_hit/moka_sync_string_key",
        "l1_hit/raw_moka_get_arc",
        None,
    ),
    cmp(
        "l1_hit",
        "decomposition: the same with L1's weigher and per-entry expiry vs without (tiercache no longer sets the expiry)",
        "l1_hit/moka_sync_string_key_l1_config",
        "l1_hit/moka_sync_string_key",
        None,
    ),
    cmp(
        "l2_hit",
        "`get` L2 hit vs raw redis-rs `GET` + `rmp_serde::from_slice`",
        "l2_hit/tiercache_get",
        "l2_hit/raw_redis_get_decode",
        Some(1.15),
    ),
    cmp(
        "l2_hit",
        "`get_or_load` L2 hit vs raw `GET` + decode",
        "l2_hit/tiercache_get_or_load",
        "l2_hit/raw_redis_get_decode",
        Some(1.15),
    ),
    cmp(
        "l2_hit",
        "decomposition: `get` L2 hit vs raw redis-rs in tiercache's call shape (one `MGET` of key + clear mark, 250 ms timeouts)",
        "l2_hit/tiercache_get",
        "l2_hit/raw_redis_tiercache_shape",
        None,
    ),
    cmp(
        "l2_hit",
        "decomposition: `get` L2 hit with L1 disabled (no copy into L1) vs raw `GET` + decode",
        "l2_hit/tiercache_get_no_l1",
        "l2_hit/raw_redis_get_decode",
        None,
    ),
    cmp(
        "l2_hit",
        "decomposition: `get` L2 hit vs the same with L1 disabled (the copy into L1)",
        "l2_hit/tiercache_get",
        "l2_hit/tiercache_get_no_l1",
        None,
    ),
    cmp(
        "l2_hit",
        "decomposition: raw redis-rs in tiercache's call shape vs plain `GET` + decode",
        "l2_hit/raw_redis_tiercache_shape",
        "l2_hit/raw_redis_get_decode",
        None,
    ),
    cmp(
        "l2_hit",
        "`cached` `AsyncRedisCache` hit vs raw `GET` + decode",
        "l2_hit/cached_async_redis",
        "l2_hit/raw_redis_get_decode",
        None,
    ),
    cmp(
        "l2_hit",
        "`cached` `AsyncRedisCache` + client-side caching (RESP3) vs raw `GET` + decode",
        "l2_hit/cached_async_redis_csc",
        "l2_hit/raw_redis_get_decode",
        None,
    ),
    cmp(
        "l2_hit",
        "`get` L2 hit vs `cached` `AsyncRedisCache` hit",
        "l2_hit/tiercache_get",
        "l2_hit/cached_async_redis",
        None,
    ),
    cmp(
        "l2_hit",
        "cold miss: `get_or_load` vs raw `GET` (miss) + encode + `SET EX`",
        "l2_miss/tiercache_get_or_load",
        "l2_miss/raw_redis_get_miss_set",
        None,
    ),
    cmp(
        "l2_hit",
        "cold miss: `cached` `AsyncRedisCache` vs raw `GET` + `SET EX`",
        "l2_miss/cached_async_redis",
        "l2_miss/raw_redis_get_miss_set",
        None,
    ),
    cmp(
        "batch",
        "`get_many` of 10 vs 10 sequential `get`s (L2)",
        "batch_get/get_many/10",
        "batch_get/sequential_get/10",
        None,
    ),
    cmp(
        "batch",
        "`get_many` of 100 vs 100 sequential `get`s (L2)",
        "batch_get/get_many/100",
        "batch_get/sequential_get/100",
        None,
    ),
    cmp(
        "batch",
        "`set_many` of 10 vs 10 `set`s",
        "batch_set/set_many/10",
        "batch_set/sequential_set/10",
        None,
    ),
    cmp(
        "batch",
        "`set_many` of 100 vs 100 `set`s",
        "batch_set/set_many/100",
        "batch_set/sequential_set/100",
        None,
    ),
    cmp(
        "tls",
        "over TLS: `get` L2 hit vs raw redis-rs `GET` + decode over TLS",
        "tls/tiercache_get",
        "tls/raw_redis_get_decode",
        Some(1.15),
    ),
    cmp(
        "tls",
        "over TLS: `get_many` of 100 (L2) vs raw redis-rs `MGET` of 100 + decode over TLS",
        "tls/tiercache_get_many_100",
        "tls/raw_redis_mget_decode_100",
        Some(1.15),
    ),
    cmp(
        "cluster",
        "on a 3-primary Redis Cluster: `get` L2 hit vs the redis-rs cluster client's `GET` + decode",
        "cluster/tiercache_get",
        "cluster/raw_redis_get_decode",
        Some(1.15),
    ),
    cmp(
        "cluster",
        "on a 3-primary Redis Cluster: `get_many` of 100 (L2) vs the cluster client's `MGET` of 100 + decode",
        "cluster/tiercache_get_many_100",
        "cluster/raw_redis_mget_decode_100",
        Some(1.15),
    ),
    cmp(
        "keys_codec",
        "`pattern.key(&[&id])` vs `format!(\"prod:{id}\")`",
        "keys/pattern_key_u64",
        "keys/format_baseline",
        None,
    ),
    cmp(
        "keys_codec",
        "`pattern.key(&[&Hashed(&query)])` vs `format!(\"prod:{id}\")`",
        "keys/pattern_key_hashed",
        "keys/format_baseline",
        None,
    ),
    cmp(
        "keys_codec",
        "encode: rmp `encode_value` vs `serde_json::to_vec`",
        "codec/encode_rmp",
        "codec/encode_json",
        None,
    ),
    cmp(
        "keys_codec",
        "decode: rmp `decode_value` vs `serde_json::from_slice`",
        "codec/decode_rmp",
        "codec/decode_json",
        None,
    ),
    cmp(
        "single_flight",
        "1,000 callers, cold key: tiercache (L1 only) vs moka `try_get_with`",
        "single_flight/tiercache_l1_only",
        "single_flight/moka_try_get_with",
        None,
    ),
    cmp(
        "single_flight",
        "1,000 callers, cold key: tiercache (L1 + L2) vs moka `try_get_with`",
        "single_flight/tiercache_l1_l2",
        "single_flight/moka_try_get_with",
        None,
    ),
    cmp(
        "fleet",
        "4 instances x 250 callers, cold key, fleet lease: all served vs one caller's load alone",
        "fleet/cold_key_4x250_lease",
        "fleet/one_load",
        Some(1.2),
    ),
    cmp(
        "fleet",
        "4 instances x 250 callers, cold key: fleet lease vs none (every instance loads)",
        "fleet/cold_key_4x250_lease",
        "fleet/cold_key_4x250_no_lease",
        None,
    ),
    cmp(
        "fleet",
        "one L2 miss (instant loader): with the fleet lease vs without",
        "fleet/l2_miss_lease",
        "fleet/l2_miss_no_lease",
        None,
    ),
    cmp(
        "macro_overhead",
        "`#[cached]` method vs the hand-written `get_or_load` + clone",
        "macro_overhead/attribute",
        "macro_overhead/hand_written",
        Some(1.05),
    ),
];

/// The benches, in report order, with what each measures.
const BENCHES: &[(&str, &str)] = &[
    (
        "l1_hit",
        "L1 hit of 10k ~1 KB products: `#[cached]` fn, `get_or_load`, `get` vs raw moka and the `cached` crate's in-memory `#[cached]` / `#[concurrent_cached]`.",
    ),
    (
        "l2_hit",
        "L2 hit with a fresh L1 (1 ms L1 TTL, 10k keys cycled) vs raw redis-rs `GET` + decode and `cached`'s `AsyncRedisCache` (plain and client-side caching); cold misses.",
    ),
    (
        "batch",
        "`get_many` of 10/100 keys vs sequential `get`s (L2 path); pipelined `set_many` vs sequential `set`s.",
    ),
    (
        "tls",
        "The L2 over TLS (rustls, a test CA): `get` L2 hit with a fresh L1 and `get_many` of 100 vs raw redis-rs `GET` / `MGET` + decode over the same TLS server.",
    ),
    (
        "cluster",
        "The L2 on a Redis Cluster of three primaries started by the harness (`redis_cluster(nodes)`: hash-tagged keys, `MGET` split by slot) vs the redis-rs cluster client on the same cluster.",
    ),
    (
        "keys_codec",
        "Key rendering (`pattern.key`, `:hash` keys) and payload codec (MessagePack vs JSON).",
    ),
    (
        "single_flight",
        "1,000 concurrent callers on a cold key whose loader sleeps 10 ms; loader runs counted (asserted 1 per key).",
    ),
    (
        "fleet",
        "4 instances on one Redis, 250 callers each on a cold key (10 ms loader): fleet lease vs none vs one load alone; what the lease adds to an L2 miss.",
    ),
    (
        "macro_overhead",
        "`#[cached]` method vs the hand-written `get_or_load` + clone it expands to.",
    ),
];

/// Targets of the paired measurements: (bench, library, largest passing ratio).
const PAIRED_TARGETS: &[(&str, &str, f64)] = &[
    ("l2_hit", "tiercache_get", 1.15),
    ("l2_hit", "tiercache_get_or_load", 1.15),
    ("macro_overhead", "attribute", 1.05),
];

/// What the ratios mean (no figures here: every figure comes from the run).
const NOTES: &[&str] = &[
    "The targets compare like with like: a `#[cached]` function returning `Arc<Product>` against \
     raw moka's `get` of an `Arc`. A function returning an owned `Product` clones the value out of \
     the cache on every hit (five `String`s and a four-entry `BTreeMap`: about a dozen \
     allocations), as the `cached` crate's functions do; its rows are shown for information. \
     `scripts/hit-profile.sh` counts the instructions of one hit of each contender with callgrind \
     (repeatable on a busy machine) and shows where they go.",
    "The `cached` crate's in-memory stores are keyed by the `u64` argument; tiercache renders a \
     namespaced `String` key on each call, hashes it in moka, checks the entry against the \
     invalidation marks and downcasts the value.",
    "`get`, `get_or_load` and the macros look L1 up first by the rendered key text, without \
     allocating; the owned `Key`, the batch path and the (boxed) load path come only on a miss. \
     An L1 entry lives inline in moka's entry, so a hit increments one reference count (the \
     value's), as a raw moka `get` of an `Arc` does; integer arguments are rendered with `itoa`, \
     and the expiry check reads the kernel's coarse clock.",
    "An L2 hit copies the value into L1 (a moka insert replacing the expired copy), so that the \
     next read is an L1 hit; `tiercache_get_no_l1` is the same read with L1 disabled, which \
     separates that copy from the rest (one `MGET` of the key and the clear mark, the envelope, \
     the circuit breaker and timeout).",
    "Redis benches are bound by loopback round trips and by thread scheduling; on a small shared \
     machine their ratios move by several percent between runs (see the load average above).",
    "L2 benches use a 1 ms L1 TTL and cycle through the 10,000 keys, so every timed tiercache read \
     is served by Redis (the bench asserts no L1 hit and no miss from the cache's counters).",
];

#[derive(Debug, Default)]
struct Args {
    target_dir: PathBuf,
    out: PathBuf,
    since: u64,
    mode: String,
    commands: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        target_dir: PathBuf::from("target"),
        out: PathBuf::from("BENCHMARKS.md"),
        mode: "quick".into(),
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--target-dir" => args.target_dir = value().into(),
            "--out" => args.out = value().into(),
            "--since" => {
                args.since = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--since takes unix seconds"))
            }
            "--mode" => args.mode = value(),
            "--command" => args.commands.push(value()),
            "-h" | "--help" => {
                println!(
                    "bench-report --target-dir DIR --out FILE --since UNIX_SECS --mode quick|full [--command CMD]..."
                );
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument `{other}`")),
        }
    }
    args
}

fn fail(msg: &str) -> ! {
    eprintln!("bench-report: {msg}");
    std::process::exit(2)
}

/// Every result under `<target>/criterion` written at or after `since`, by full id.
fn collect(root: &Path, since: SystemTime) -> BTreeMap<String, Estimate> {
    let mut found = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                if let Some((id, estimate)) = read_result(&path, since) {
                    found.insert(id, estimate);
                }
            } else {
                stack.push(path);
            }
        }
    }
    found
}

/// One table row per leaf of `value`, named by its path (`a.b.c`).
fn flat_rows(w: &mut String, path: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flat_rows(w, &path, inner);
            }
        }
        Value::Number(n) => {
            let shown = match n.as_f64() {
                Some(f) if n.is_f64() => format!("{f:.3}"),
                _ => n.to_string(),
            };
            let _ = writeln!(w, "| `{path}` | {shown} |");
        }
        other => {
            let _ = writeln!(w, "| `{path}` | {other} |");
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_result(new: &Path, since: SystemTime) -> Option<(String, Estimate)> {
    let estimates_path = new.join("estimates.json");
    let written = std::fs::metadata(&estimates_path).ok()?.modified().ok()?;
    if written < since {
        return None;
    }
    let bench = read_json(&new.join("benchmark.json"))?;
    let estimates = read_json(&estimates_path)?;
    let id = bench.get("full_id")?.as_str()?.to_owned();
    let point = |stat: &str, field: &[&str]| {
        let mut v = estimates.get(stat)?;
        for f in field {
            v = v.get(f)?;
        }
        v.as_f64()
    };
    Some((
        id,
        Estimate {
            mean: point("mean", &["point_estimate"])?,
            lower: point("mean", &["confidence_interval", "lower_bound"])?,
            upper: point("mean", &["confidence_interval", "upper_bound"])?,
            median: point("median", &["point_estimate"])?,
        },
    ))
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let args = parse_args();
    let since = UNIX_EPOCH + Duration::from_secs(args.since);
    let results = collect(&args.target_dir.join("criterion"), since);
    let extra = |name: &str| {
        let path = args
            .target_dir
            .join("criterion/tiercache-extra")
            .join(format!("{name}.json"));
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if fresh { read_json(&path) } else { None }
    };
    let l2_commands = extra("l2_commands");
    let hit_profiles = [extra("hit_profile_l1"), extra("hit_profile_l2")];
    let single_flight = extra("single_flight");
    let l1_footprint = extra("l1_footprint");
    let fleet_figures = [
        (
            "backplane",
            "Backplane: propagation to another instance, transports, idle cost",
        ),
        ("fleet", "Fleet lease: one cold key, many instances"),
    ]
    .map(|(name, title)| (title, extra(name)));

    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "<!-- Generated by `scripts/bench-report.sh` (benches/src/bin/report.rs) from criterion's \
         estimates. Do not edit by hand: re-run the script. -->\n"
    );
    let _ = writeln!(
        w,
        "Criterion micro-benchmarks of tiercache (package `tiercache-benches`, sources in \
         `benches/`). Every bench compares tiercache with its baseline **in the same run**, over \
         the same 10,000 entries of the same ~1 KB `Product` (id, sku, name, an 800-character \
         description, brand, price, 4 attributes in a `BTreeMap`). Redis benches start their own \
         throwaway `redis-server` on a free loopback port (`tiercache_tests::RedisServer`).\n"
    );

    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| CPU | {} |", cpu_model());
    let _ = writeln!(w, "| `nproc` | {} |", command_output("nproc", &[]));
    let _ = writeln!(w, "| rustc | {} |", command_output("rustc", &["-V"]));
    let _ = writeln!(
        w,
        "| redis-server | {} |",
        command_output("redis-server", &["--version"])
    );
    let _ = writeln!(w, "| OS | {} |", command_output("uname", &["-sr"]));
    let _ = writeln!(
        w,
        "| Load average at report time (1/5/15 min) | {} |",
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(
        w,
        "| Run | {} |",
        command_output("date", &["-u", "+%F %T UTC"])
    );
    let (samples, warm, measure) = if args.mode == "quick" {
        (10, "300 ms", "1 s")
    } else {
        (50, "1 s", "3 s")
    };
    let _ = writeln!(
        w,
        "| Mode | {} (`BENCH_QUICK={}`: {samples} samples, {warm} warm-up, {measure} measurement per benchmark) |",
        args.mode,
        if args.mode == "quick" { "1" } else { "unset" }
    );
    let _ = writeln!(w);
    if args.mode == "quick" {
        let _ = writeln!(
            w,
            "Quick mode trades precision for a bounded run time: expect a few percent of noise; \
             re-run with `scripts/bench-report.sh --full` before relying on ratios close to a \
             target.\n"
        );
    }

    let _ = writeln!(w, "## Ratios against the baselines\n");
    let _ = writeln!(
        w,
        "Ratio = library time / baseline time (lower is better; < 1 means faster than the \
         baseline), on criterion's median estimates, which a shared machine's stray interruptions \
         move less than the mean (the ratio of means is shown too). A target passes when the \
         ratio of medians is at most the target.\n"
    );
    let _ = writeln!(
        w,
        "| Bench | Comparison | Library (median) | Baseline (median) | Ratio of medians | Ratio of means | Target | Status |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
    let (mut passed, mut missed, mut absent) = (0, 0, 0);
    for c in COMPARISONS {
        let lib = results.get(c.library);
        let base = results.get(c.baseline);
        let mut mean_ratio = "—".to_owned();
        let (ratio, status) = match (lib, base) {
            (Some(l), Some(b)) => {
                let ratio = l.median / b.median;
                mean_ratio = format!("{:.2}x", l.mean / b.mean);
                let status = match c.target {
                    Some(t) if ratio <= t => {
                        passed += 1;
                        "PASS"
                    }
                    Some(_) => {
                        missed += 1;
                        "**MISS**"
                    }
                    None => "info",
                };
                (format!("{ratio:.2}x"), status)
            }
            _ => {
                absent += 1;
                ("—".to_owned(), "not measured")
            }
        };
        let show = |e: Option<&Estimate>, id: &str| match e {
            Some(e) => format!("{} `{id}`", fmt_ns(e.median)),
            None => format!("— `{id}`"),
        };
        let target = c
            .target
            .map_or_else(|| "—".to_owned(), |t| format!("≤ {t:.2}x"));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | **{ratio}** | {mean_ratio} | {target} | {status} |",
            c.bench,
            c.what,
            show(lib, c.library),
            show(base, c.baseline)
        );
    }
    let _ = writeln!(
        w,
        "\nTargets: {passed} passed, {missed} missed{}.\n",
        if absent > 0 {
            format!(", {absent} comparison(s) not measured in this run")
        } else {
            String::new()
        }
    );

    let _ = writeln!(w, "Reading the table:\n");
    for note in NOTES {
        let _ = writeln!(w, "- {note}");
    }
    let _ = writeln!(w);

    let paired: Vec<Value> = ["l2_hit", "macro_overhead"]
        .iter()
        .filter_map(|b| extra(&format!("paired_{b}")))
        .collect();
    if !paired.is_empty() {
        let _ = writeln!(w, "### Targets, paired measurement\n");
        let _ = writeln!(
            w,
            "Criterion measures one contender after the other, so load that changes during the \
             run (a shared machine) shifts their ratio. The benches with tight targets also time \
             their contenders in interleaved blocks (the order rotating every block) and take the \
             ratio within each block: this column is the median of those ratios, with quartiles. \
             It is the better guide when the two disagree.\n"
        );
        let _ = writeln!(
            w,
            "| Bench | Library | Baseline | Blocks × calls | Median ratio | Quartiles | Target | Status |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
        for p in &paired {
            let bench = p["bench"].as_str().unwrap_or("?");
            let baseline = p["baseline"].as_str().unwrap_or("?");
            for row in p["rows"].as_array().into_iter().flatten() {
                let library = row["library"].as_str().unwrap_or("?");
                let num = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
                let target = PAIRED_TARGETS
                    .iter()
                    .find(|(b, l, _)| *b == bench && *l == library)
                    .map(|t| t.2);
                let status = match target {
                    Some(t) if num("median") <= t => "PASS",
                    Some(_) => "**MISS**",
                    None => "info",
                };
                let _ = writeln!(
                    w,
                    "| {bench} | `{library}` | `{baseline}` | {} × {} | **{:.3}x** | {:.3}x – {:.3}x | {} | {status} |",
                    p["blocks"],
                    p["calls_per_block"],
                    num("median"),
                    num("p25"),
                    num("p75"),
                    target.map_or_else(|| "—".to_owned(), |t| format!("≤ {t:.2}x"))
                );
            }
        }
        let _ = writeln!(w);
    }

    if let Some(sf) = &single_flight {
        let _ = writeln!(w, "### Single-flight loader runs\n");
        let _ = writeln!(
            w,
            "{} concurrent callers per cold key, loader sleeping {} ms (counted outside the timing; \
             each key is asserted to run its loader exactly once):\n",
            sf["callers"], sf["loader_sleep_ms"]
        );
        let _ = writeln!(w, "| Contender | Cold keys | Loader runs | Runs per key |");
        let _ = writeln!(w, "|---|---|---|---|");
        for name in ["moka_try_get_with", "tiercache_l1_only", "tiercache_l1_l2"] {
            let t = &sf[name];
            let _ = writeln!(
                w,
                "| `{name}` | {} | {} | {} |",
                t["cold_keys"], t["loader_calls"], t["loader_calls_per_key"]
            );
        }
        let _ = writeln!(w);
    }

    for (title, figures) in &fleet_figures {
        if let Some(figures) = figures {
            let _ = writeln!(w, "### {title}\n");
            let _ = writeln!(
                w,
                "Figures the bench measured outside criterion (loopback, this run), by name:\n"
            );
            let _ = writeln!(w, "| Figure | Value |\n|---|---|");
            flat_rows(w, "", figures);
            let _ = writeln!(w);
        }
    }

    if let Some(Value::Object(ops)) = &l2_commands {
        let _ = writeln!(w, "### Redis commands per operation (l2_hit)\n");
        let _ = writeln!(
            w,
            "From `INFO commandstats` around 100 operations of each kind (outside the timing):\n"
        );
        let _ = writeln!(w, "| Operation | Commands per operation |\n|---|---|");
        for (op, per) in ops {
            let per = match per {
                Value::Object(m) => m
                    .iter()
                    .map(|(cmd, n)| format!("{} × `{cmd}`", n))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            let _ = writeln!(w, "| {op} | {per} |");
        }
        let _ = writeln!(w);
    }

    if hit_profiles.iter().any(Option::is_some) {
        let _ = writeln!(w, "### Instructions per hit (callgrind)\n");
        let _ = writeln!(
            w,
            "Wall time on a shared 2-core machine moves by tens of percent between runs; the \
             instructions a hit executes do not. `scripts/hit-profile.sh` runs each contender \
             under callgrind with 0 and with N reads over the same warm entries and divides the \
             difference by N. For L2 hits only this process is counted (the client side: \
             tiercache's work around the round trip), not Redis. Ratios are against the first \
             row of each table.\n"
        );
        for profile in hit_profiles.iter().flatten() {
            let rows: Vec<(&str, f64)> = profile["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["contender"].as_str().unwrap_or("?"),
                        r["instructions"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect();
            let Some(&(_, base)) = rows.first() else {
                continue;
            };
            let hits = profile["hits"].as_u64().unwrap_or(0);
            let _ = writeln!(
                w,
                "| Contender ({hits} reads) | Instructions per hit | Ratio |"
            );
            let _ = writeln!(w, "|---|---|---|");
            for (name, n) in &rows {
                let _ = writeln!(w, "| `{name}` | {n:.0} | {:.2}x |", n / base);
            }
            let _ = writeln!(w);
        }
    }

    if let Some(footprint) = &l1_footprint {
        let _ = writeln!(w, "### L1 memory against its budget\n");
        let _ = writeln!(
            w,
            "`l1-footprint` (benches/src/bin/l1_footprint.rs) fills an L1-only cache with more \
             values than its budget holds and counts, with `dhat` as the global allocator, the \
             live heap bytes that dropping the cache frees: what the L1 really held. tiercache \
             weighs an entry by an estimate of its decoded size read off the MessagePack payload \
             plus a fixed per-entry overhead (moka's entry and nodes, the key, the `Arc`); the \
             target is a held ÷ budget of at most 1.\n"
        );
        let _ = writeln!(
            w,
            "| Values | Budget | Keys written | Entries kept | Weighted | Heap held | Held ÷ budget | Held per entry |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
        for r in footprint["rows"].as_array().into_iter().flatten() {
            let num = |k: &str| r[k].as_u64().unwrap_or(0);
            let mib = |b: u64| format!("{:.2} MiB", b as f64 / f64::from(1 << 20));
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | **{:.2}** | {} B |",
                r["values"].as_str().unwrap_or("?"),
                mib(num("budget")),
                num("keys"),
                num("entries"),
                mib(num("weighted")),
                mib(num("held")),
                num("held") as f64 / num("budget").max(1) as f64,
                num("held") / num("entries").max(1)
            );
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "## All results\n");
    let _ = writeln!(w, "| Benchmark | Mean | 95% CI of the mean | Median |");
    let _ = writeln!(w, "|---|---|---|---|");
    for (id, e) in &results {
        let _ = writeln!(
            w,
            "| `{id}` | {} | {} – {} | {} |",
            fmt_ns(e.mean),
            fmt_ns(e.lower),
            fmt_ns(e.upper),
            fmt_ns(e.median)
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "## How to run\n");
    let _ = writeln!(
        w,
        "Needs `redis-server` on `PATH` (or `REDIS_SERVER_BIN`). Quick mode: `BENCH_QUICK=1`; \
         default is the fuller mode. Criterion's own reports land in `target/criterion/`.\n"
    );
    let _ = writeln!(w, "| Bench | Command | Measures |\n|---|---|---|");
    for (bench, what) in BENCHES {
        let _ = writeln!(
            w,
            "| `{bench}` | `cargo bench -p tiercache-benches --bench {bench}` | {what} |"
        );
    }
    let _ = writeln!(
        w,
        "\nWhole suite and this file: `scripts/bench-report.sh` (quick) or \
         `scripts/bench-report.sh --full`.\n"
    );
    let _ = writeln!(w, "## Commands that produced these figures\n");
    let _ = writeln!(w, "```sh");
    for command in &args.commands {
        let _ = writeln!(w, "{command}");
    }
    let _ = writeln!(
        w,
        "bench-report --target-dir {} --out {} --since {} --mode {}",
        args.target_dir.display(),
        args.out.display(),
        args.since,
        args.mode
    );
    let _ = writeln!(w, "```");

    if let Err(e) = std::fs::write(&args.out, md) {
        fail(&format!("cannot write {}: {e}", args.out.display()));
    }
    eprintln!(
        "bench-report: wrote {} ({} results; targets: {passed} passed, {missed} missed, {absent} not measured)",
        args.out.display(),
        results.len()
    );
}

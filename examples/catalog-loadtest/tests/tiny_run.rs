//! `catalog-loadtest` as a user runs it, with tiny settings: the binary, driving `catalog-server`
//! processes on loopback. Every scenario runs, nothing fails, the caches hit, and the report says
//! what the server and the generator cost.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const SCENARIOS: [&str; 8] = [
    "no cache",
    "L2 only",
    "L1 only",
    "two-tier",
    "L1 only, primed",
    "two-tier, primed",
    "two-tier, Redis killed at half time",
    catalog_loadtest::run::CEILING,
];

/// Runs the tool with `extra` arguments on a tiny catalog; the JSON report and the markdown one
/// (its stdout).
fn run_tool(dir: &Path, extra: &[&str]) -> (Value, String) {
    let json = dir.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_catalog-loadtest"))
        .args(["--server-bin", env!("CARGO_BIN_EXE_catalog-server")])
        .args(["--products", "400", "--categories", "30"])
        .args(["--concurrency", "8", "--duration", "1s"])
        .arg("--db")
        .arg(dir.join("loadtest.sqlite3"))
        .arg("--out")
        .arg(&json)
        .args(extra)
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("catalog-loadtest runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "catalog-loadtest failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("valid JSON");
    (report, stdout)
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name:?}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every scenario ran with requests and without errors, and both processes' CPU was measured.
fn assert_every_scenario_clean(report: &Value) {
    let names: Vec<&str> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, SCENARIOS);
    for name in SCENARIOS {
        let s = scenario(report, name);
        assert!(u(&s["total"]["requests"]) > 0, "{name}: no requests");
        assert_eq!(
            u(&s["total"]["errors"]),
            0,
            "{name}: errors {}",
            s["error_samples"]
        );
        let server_cpu = s["server_cpu_s"].as_f64().expect("server CPU");
        let generator_cpu = s["generator_cpu_s"].as_f64().expect("generator CPU");
        assert!(
            server_cpu > 0.0 && generator_cpu > 0.0,
            "{name}: CPU {server_cpu} / {generator_cpu}"
        );
        assert!(
            s["rss_after"].as_u64().is_some_and(|b| b > 0),
            "{name}: RSS"
        );
    }
}

#[test]
fn a_tiny_closed_loop_run_has_no_errors_and_the_cache_hits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let (report, markdown) = run_tool(dir.path(), &[]);

    assert_every_scenario_clean(&report);
    assert_eq!(report["rate"], Value::Null);
    let none = scenario(&report, "no cache");
    assert_eq!(
        u(&none["l1_hits"]) + u(&none["l2_hits"]),
        0,
        "no cache has hits"
    );
    let two_tier = scenario(&report, "two-tier");
    assert!(two_tier["hit_ratio"].as_f64().expect("ratio") > 0.0);
    assert!(u(&scenario(&report, "L2 only")["l2_hits"]) > 0);
    assert_eq!(u(&scenario(&report, "L1 only")["l2_hits"]), 0);
    // Primed, the ceiling serves most of its measured pass from memory, and has no cache.
    let ceiling = scenario(&report, catalog_loadtest::run::CEILING);
    assert!(
        ceiling["hit_ratio"].as_f64().expect("ratio") > 0.3,
        "{ceiling}"
    );
    assert_eq!(u(&ceiling["l1_hits"]) + u(&ceiling["l2_hits"]), 0);
    // Primed, a cache mode's measured pass finds what the unmeasured one cached: it hits more
    // than the same mode started cold (its counts are the measured pass's own).
    let ratio = |name: &str| {
        scenario(&report, name)["hit_ratio"]
            .as_f64()
            .expect("ratio")
    };
    assert!(ratio("L1 only, primed") > ratio("L1 only"), "{markdown}");
    assert!(ratio("two-tier, primed") > ratio("two-tier"), "{markdown}");
    assert!(
        u(&scenario(&report, "two-tier, primed")["l1_hits"]) > 0,
        "{markdown}"
    );
    let killed = scenario(&report, "two-tier, Redis killed at half time");
    assert!(u(&killed["after_kill"]["requests"]) > 0);
    assert_eq!(u(&killed["after_kill"]["errors"]), 0);

    let memory = &report["memory"];
    assert!(u(&memory["all_products_used_memory"]) > u(&memory["redis_empty_used_memory"]));
    let low = &memory["low_memory"];
    assert_eq!(u(&low["total"]["errors"]), 0, "{}", low["error_samples"]);
    assert!(u(&low["l1_weighted_bytes"]) <= u(&low["l1_capacity_bytes"]));

    assert!(markdown.contains("| throughput ÷ ceiling |"), "{markdown}");
    for heading in [
        "## Scenarios",
        "## Ratios vs no cache",
        "## Redis killed at half time",
        "## Two-tier vs L1 only",
    ] {
        assert!(markdown.contains(heading), "{heading} missing:\n{markdown}");
    }
    assert!(
        markdown.contains("| server CPU % | generator CPU % |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Closed loop: 8 connections"),
        "{markdown}"
    );
    // The HTTP phase: every revalidation a 304 with no body; the batch answered.
    let http = &report["http"];
    let (rounds, paths) = (u(&http["rounds"]), u(&http["paths"]));
    assert!(paths > 0, "{http}");
    assert_eq!(u(&http["not_modified"]), rounds * paths, "{http}");
    assert_eq!(u(&http["revalidated_bytes_per_round"]), 0, "{http}");
    assert!(u(&http["full_bytes_per_round"]) > 0, "{http}");
    assert!(
        http["batch_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{http}"
    );
    assert!(
        markdown.contains("HTTP caching and batch reads"),
        "{markdown}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// At a fixed rate the generator sends about that many requests a second, whatever the server
/// could do: throughput is the rate, not the server's limit.
#[test]
fn a_tiny_open_loop_run_keeps_its_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (report, markdown) = run_tool(dir.path(), &["--rate", "100", "--no-memory"]);

    assert_every_scenario_clean(&report);
    assert_eq!(report["rate"].as_f64(), Some(100.0));
    assert_eq!(report["memory"], Value::Null);
    for name in SCENARIOS {
        let requests = u(&scenario(&report, name)["total"]["requests"]);
        // 1 s at 100 req/s: 100 sends are due before the deadline (one more or less by rounding);
        // a server far slower than that would make the generator stop short at the deadline.
        assert!(
            (70..=101).contains(&requests),
            "{name}: {requests} requests"
        );
    }
    assert!(
        markdown.contains("Open loop: 100 requests per second"),
        "{markdown}"
    );
}

/// `--paths-out` writes the mix's reads for another generator, and runs nothing.
#[test]
fn paths_out_writes_the_reads_of_the_mix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = dir.path().join("paths.txt");
    let output = Command::new(env!("CARGO_BIN_EXE_catalog-loadtest"))
        .args(["--products", "400", "--categories", "30"])
        .arg("--db")
        .arg(dir.path().join("loadtest.sqlite3"))
        .arg("--paths-out")
        .arg(&paths)
        .output()
        .expect("catalog-loadtest runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "no report expected");
    let text = std::fs::read_to_string(&paths).expect("paths written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100_000);
    assert!(lines.iter().all(|l| l.starts_with('/')));
    assert!(!lines.iter().any(|l| l.ends_with("/stock")), "a write");
    for prefix in [
        "/products/",
        "/products?category=",
        "/search?q=",
        "/autocomplete?prefix=",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(prefix)), "no {prefix}");
    }
}

/// With a PostgreSQL server (`DATABASE_URL`, as scripts/test.sh sets it; required under CI), the
/// run adds "no cache" and "two-tier" on PostgreSQL: both run clean, and the cached one hits (a
/// 1 s run on a cold cache: some hits, as the SQLite two-tier check asks).
#[test]
fn with_postgres_the_pair_of_postgres_scenarios_runs_clean() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "DATABASE_URL is not set: this test needs a PostgreSQL server"
            );
            eprintln!("DATABASE_URL not set: skipping the PostgreSQL scenarios");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("dir");
    let (report, markdown) = run_tool(dir.path(), &["--no-memory", "--postgres", &url]);
    for name in ["no cache, PostgreSQL", "two-tier, PostgreSQL"] {
        let s = scenario(&report, name);
        assert!(u(&s["total"]["requests"]) > 0, "{name}: no requests");
        assert_eq!(u(&s["total"]["errors"]), 0, "{name}: errors");
        assert!(markdown.contains(name), "{name} not in the markdown");
    }
    let cached = scenario(&report, "two-tier, PostgreSQL");
    assert!(
        cached["hit_ratio"].as_f64().expect("hit ratio") > 0.0,
        "two-tier on PostgreSQL hits: {cached}"
    );
}

/// `--faults`: every Redis fault scenario runs under load, and none fails a request or shows a
/// stale read after a write.
#[test]
fn a_tiny_faults_run_fails_nothing_and_reads_no_stale_write() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let json = dir.path().join("faults.json");
    let output = Command::new(env!("CARGO_BIN_EXE_catalog-loadtest"))
        .args(["--server-bin", env!("CARGO_BIN_EXE_catalog-server")])
        .args(["--products", "400", "--categories", "30"])
        .args(["--concurrency", "4", "--duration", "1500ms", "--faults"])
        .arg("--db")
        .arg(dir.path().join("loadtest.sqlite3"))
        .arg("--out")
        .arg(&json)
        .env_remove("REDIS_URL")
        .output()
        .expect("catalog-loadtest runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "catalog-loadtest --faults failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON"))
        .expect("valid JSON");
    let rows = rows.as_array().expect("one row per fault");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    let expected: Vec<&str> = catalog_loadtest::faults::Fault::ALL
        .iter()
        .map(|f| f.name())
        .collect();
    assert_eq!(names, expected);
    for r in rows {
        assert!(u(&r["requests"]) > 0, "{r}");
        assert!(u(&r["checked_writes"]) > 0, "{r}");
        assert_eq!(u(&r["failures"]), 0, "{r}");
        assert_eq!(u(&r["stale_reads"]), 0, "{r}");
        assert!(
            stdout.contains(r["name"].as_str().expect("name")),
            "{stdout}"
        );
    }
}

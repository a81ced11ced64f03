//! `catalog loadtest` with tiny settings: every scenario runs, nothing fails, the caches hit.

use std::time::Duration;

use catalog::Config;
use catalog::loadtest::{self, LoadtestArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_loadtest_has_no_errors_and_the_cache_hits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_database(dir.path().join("unused.sqlite3"));
    config.categories = 40;
    let mut args = LoadtestArgs::new(Duration::from_secs(1), 8);
    args.products = 500;
    args.db = Some(dir.path().join("loadtest.sqlite3"));
    if let Some(bin) = std::env::var_os(tiercache_tests::REDIS_SERVER_BIN_ENV) {
        args.redis_server_bin = bin.into();
    }
    let started = std::time::Instant::now();
    let report = loadtest::run(&config, &args).await.expect("loadtest runs");

    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "no cache",
            "L2 only",
            "L1 only",
            "two-tier",
            "two-tier, Redis killed at half time"
        ]
    );
    for s in &report.scenarios {
        assert!(s.total.requests > 0, "{}: no requests", s.name);
        assert_eq!(
            s.total.errors, 0,
            "{}: errors {:?}",
            s.name, s.error_samples
        );
    }
    let none = report.scenario("no cache").expect("no cache");
    assert_eq!(none.l1_hits + none.l2_hits, 0, "no cache has no hits");
    let two_tier = report.scenario("two-tier").expect("two-tier");
    assert!(
        two_tier.hit_ratio > 0.0,
        "two-tier hit ratio {}",
        two_tier.hit_ratio
    );
    assert!(report.scenario("L2 only").expect("L2 only").l2_hits > 0);
    let killed = report
        .scenario("two-tier, Redis killed at half time")
        .expect("fault scenario");
    let after = killed.after_kill.as_ref().expect("after the kill");
    assert!(after.requests > 0 && after.errors == 0);

    let memory = report.memory.as_ref().expect("memory phase");
    assert!(memory.all_products_used_memory > memory.redis_empty_used_memory);
    let low = memory.low_memory.as_ref().expect("low-memory run");
    assert_eq!(low.total.errors, 0, "{:?}", low.error_samples);
    assert!(low.l1_weighted_bytes <= low.l1_capacity_bytes);

    let markdown = report.markdown();
    assert!(markdown.contains("## Ratios vs no cache"), "{markdown}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

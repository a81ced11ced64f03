//! The README's "A cached repository, end to end" shows what
//! `cargo run -p cache-core --example repository` prints. This runs the example's flow (its source
//! is a module here) and compares its output with the README, line for line; then runs it again
//! with a harness Redis as L2, where a second replica reads from L2.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

#[allow(dead_code)] // its `main`
#[path = "../cache-core/examples/repository.rs"]
mod repository;

use tiercache_tests::RedisServer;

/// The first ```text block after the section heading.
fn readme_transcript() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## A cached repository, end to end")
        .nth(1)
        .expect("README has the section");
    let start = section.find("```text\n").expect("a ```text block") + "```text\n".len();
    let len = section[start..].find("```").expect("closed block");
    section[start..start + len].to_owned()
}

async fn run(redis_url: Option<String>) -> String {
    let mut out = Vec::new();
    repository::run(redis_url, &mut out)
        .await
        .expect("the example runs");
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_shows_what_the_example_prints() {
    let printed = run(None).await;
    assert_eq!(
        printed,
        readme_transcript(),
        "update the README's transcript with the output of \
         `cargo run -p cache-core --example repository`"
    );
    for line in [
        "get_product(1) = Some(\"red shoe\"): served from L1 (in process)",
        "search(\"red\") = 2 items: served from the database",
        "search(\"red\") = 2 items: served from L1 (in process)",
        "get_product(2) = None: served from the database",
        "search(\"red\") = 1 items: served from the database",
    ] {
        assert!(printed.lines().any(|l| l == line), "missing: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_second_replica_reads_l2() {
    let server = RedisServer::start();
    let printed = run(Some(server.url())).await;
    let without_l2 = readme_transcript();
    // The same walk-through, plus the replica's read from L2.
    for line in without_l2
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("database queries"))
    {
        assert!(
            printed.lines().any(|l| l == line),
            "missing: {line}\n{printed}"
        );
    }
    assert!(
        printed
            .lines()
            .any(|l| l == "replica get_product(1) = Some(\"red shoe\"): served from L2 (Redis)"),
        "{printed}"
    );
}

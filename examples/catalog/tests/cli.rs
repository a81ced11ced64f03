//! The command line as a user runs it: the default command through the real binary, and the
//! operations commands (`catalog clear|warmup|stats`) in-process through `catalog::cli::run`
//! (the binary's `main` is only that call).

use std::io::BufRead;
use std::path::Path;

use catalog::cli::{self, Cli};
use clap::Parser;

/// Runs `catalog --database <dir>/catalog.sqlite3 <args>` with `redis_url` as `REDIS_URL`: its
/// result and what it printed.
async fn catalog(
    dir: &Path,
    redis_url: Option<String>,
    args: &[&str],
) -> (anyhow::Result<()>, String) {
    let db = dir.join("catalog.sqlite3");
    let mut argv = vec![
        "catalog",
        "--quiet",
        "--gen-products",
        "300",
        "--gen-categories",
        "12",
        "--database",
        db.to_str().expect("path"),
    ];
    argv.extend(args);
    let mut cli = Cli::try_parse_from(argv).expect("parses");
    cli.config.redis_url = redis_url;
    let mut out = Vec::new();
    let result = cli::run(cli, &mut out).await;
    (result, String::from_utf8(out).expect("utf-8"))
}

const SCOPES: [&str; 4] = ["--all", "--products", "--categories", "--colors"];

/// `clear` acts on the cache and never creates (or generates) a database; without Redis it
/// says there is nothing shared to clear and fails.
#[tokio::test]
async fn clear_needs_no_database_and_says_when_there_is_no_shared_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("catalog.sqlite3");
    for scope in SCOPES {
        let (result, out) = catalog(dir.path(), None, &["clear", scope]).await;
        let err = format!("{:#}", result.expect_err("clear without Redis must fail"));
        assert!(err.contains("no shared cache to clear"), "{err} / {out}");
    }
    assert!(!db.exists(), "clear created a database");

    let mut redis = tiercache_tests::RedisServer::start();
    for scope in SCOPES {
        let (result, out) = catalog(dir.path(), Some(redis.url()), &["clear", scope]).await;
        result.expect("clear with Redis");
        assert!(out.contains("cleared"), "{out}");
    }
    assert!(!db.exists(), "clear created a database");
    // One product's entries need its SKU: an existing database, never a generated one.
    let (result, _) = catalog(
        dir.path(),
        Some(redis.url()),
        &["clear", "--product-id", "7"],
    )
    .await;
    let err = format!("{:#}", result.expect_err("no database"));
    assert!(err.contains("does not exist"), "{err}");
    assert!(!db.exists(), "clear created a database");

    // Redis configured but down: said so, not a silent no-op.
    redis.stop();
    let (result, _) = catalog(dir.path(), Some(redis.url()), &["clear", "--all"]).await;
    let err = format!("{:#}", result.expect_err("Redis is down"));
    assert!(err.contains("Redis is unreachable"), "{err}");
}

/// `warmup` and `stats` read an existing catalog; a missing database is an error, not a
/// freshly generated catalog.
#[tokio::test]
async fn warmup_and_stats_refuse_a_missing_database() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("catalog.sqlite3");
    for command in ["warmup", "stats"] {
        let (result, out) = catalog(dir.path(), None, &[command]).await;
        let err = format!("{:#}", result.expect_err("missing database"));
        assert!(
            err.contains("does not exist") && err.contains("catalog.sqlite3"),
            "{command}: {err} / {out}"
        );
        assert!(!db.exists(), "{command} created a database");
    }
}

/// With an existing database, `warmup` fills the shared Redis and reports what it loaded, and
/// `stats` prints the statistics and health.
#[tokio::test]
async fn warmup_and_stats_work_on_an_existing_database() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = catalog::Config::for_database(dir.path().join("catalog.sqlite3"));
    config.products = 300;
    config.categories = 12;
    drop(
        catalog::build_app(&config)
            .await
            .expect("catalog generated"),
    );
    let redis = tiercache_tests::RedisServer::start();
    let (result, out) = catalog(dir.path(), Some(redis.url()), &["warmup"]).await;
    result.expect("warmup");
    assert!(out.contains("warmed") && out.contains("colors: 1"), "{out}");
    let (result, out) = catalog(dir.path(), Some(redis.url()), &["stats"]).await;
    result.expect("stats");
    assert!(out.contains("\"status\": \"ok\""), "{out}");
}

/// The `catalog` binary with a clean environment (no `REDIS_URL`, no `CATALOG_*` of the caller).
fn catalog_binary(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_catalog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CATALOG_") || k == "REDIS_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("CATALOG_QUIET", "1")
        .env("CATALOG_PRODUCTS", "300")
        .env("CATALOG_CATEGORIES", "12");
    cmd
}

/// The README's `cargo run -p catalog` (no subcommand) with `CATALOG_WARMUP=1` warms the cache.
#[test]
fn the_default_command_honours_catalog_warmup() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = catalog_binary(dir.path())
        .env("CATALOG_WARMUP", "1")
        .env("CATALOG_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("catalog starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut log = Vec::new();
    let mut warmed = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                warmed = line.contains("background warmup: warmed");
                log.push(line);
                if warmed {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warmed, "no background warmup:\n{}", log.join("\n"));
}

/// `--redis-ca`, `--redis-client-cert` and `--redis-client-key` (or `REDIS_CA`,
/// `REDIS_CLIENT_CERT`, `REDIS_CLIENT_KEY`) point the cache at a Redis with TLS and mutual TLS;
/// without the client certificate the start fails with a TLS error.
#[tokio::test]
async fn the_tls_flags_reach_a_redis_with_mutual_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = tiercache_tests::RedisServer::start_tls(true);
    let c = redis.certificates();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path.to_str().expect("path").to_owned()
    };
    let (ca, cert, key) = (
        write("ca.pem", &c.ca_pem),
        write("client.pem", &c.client_cert_pem),
        write("client.key", &c.client_key_pem),
    );
    let url = redis.tls_url();
    let argv = |extra: &[&str]| {
        let mut argv = vec!["catalog", "--quiet", "--redis-url", &url, "--redis-ca", &ca];
        argv.extend(extra);
        Cli::try_parse_from(argv.into_iter().map(str::to_owned).collect::<Vec<_>>())
            .expect("parses")
    };
    let cli = argv(&["--redis-client-cert", &cert, "--redis-client-key", &key]);
    let cache = catalog::build_cache(&cli.config).await.expect("builds");
    assert_eq!(cache.health().await.l2.status, cache_core::L2Status::Up);

    let err = catalog::build_cache(&argv(&[]).config)
        .await
        .expect_err("no client certificate");
    let err = format!("{err:#}");
    assert!(err.contains("TLS handshake"), "{err}");
    // ... unless --allow-degraded: it starts, with the handshake as its problem (not ready).
    let (cache, problem) = catalog::build_cache_checked(&argv(&["--allow-degraded"]).config)
        .await
        .expect("starts degraded");
    assert!(cache.has_l2());
    let problem = problem.expect("the problem it starts with");
    assert!(problem.contains("TLS handshake"), "{problem}");
    assert!(
        Cli::try_parse_from(["catalog", "--redis-client-cert", &cert]).is_err(),
        "a certificate without its key is refused"
    );
}

//! The command line as a user runs it: the default command through the real binary, and the
//! operations commands (`catalog clear|warmup|stats`) in-process through `catalog::cli::run`
//! (the binary's `main` is only that call).

mod support;

use std::io::BufRead;
use std::path::Path;

use catalog::cli::{self, Cli};
use clap::Parser;

/// Runs `catalog <command> --database <dir>/catalog.sqlite3 [--redis-url <redis_url>]
/// <args...>` (`args[0]` is the command; its flags follow it): its result and what it printed.
async fn catalog(
    dir: &Path,
    redis_url: Option<String>,
    args: &[&str],
) -> (anyhow::Result<()>, String) {
    let db = dir.join("catalog.sqlite3");
    let (command, rest) = args.split_first().expect("a command");
    let mut argv = vec![
        "catalog".to_owned(),
        (*command).to_owned(),
        "--database".to_owned(),
        db.to_str().expect("path").to_owned(),
    ];
    if let Some(url) = redis_url {
        argv.extend(["--redis-url".to_owned(), url]);
    }
    argv.extend(rest.iter().map(|a| (*a).to_owned()));
    let cli = Cli::try_parse_from(argv).expect("parses");
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

/// The README's `cargo run -p catalog` (no subcommand) with `CATALOG_WARMUP=1` warms the cache.
#[test]
fn the_default_command_honours_catalog_warmup() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = support::process::binary(dir.path())
        .env("CATALOG_WARMUP", "1")
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
    // The flags as `serve` (here: the default command) takes them.
    let argv = |extra: &[&str]| {
        let mut argv = vec!["catalog", "--quiet", "--redis-url", &url, "--redis-ca", &ca];
        argv.extend(extra);
        Cli::try_parse_from(argv.into_iter().map(str::to_owned).collect::<Vec<_>>())
            .expect("parses")
            .serve
            .config()
    };
    let config = argv(&["--redis-client-cert", &cert, "--redis-client-key", &key]);
    let cache = catalog::build_cache(&config).await.expect("builds");
    assert_eq!(cache.health().await.l2.status, cache_core::L2Status::Up);

    let err = catalog::build_cache(&argv(&[]))
        .await
        .expect_err("no client certificate");
    let err = format!("{err:#}");
    assert!(err.contains("TLS handshake"), "{err}");
    // ... unless --allow-degraded: it starts, with the handshake as its problem (not ready).
    let (cache, problem) = catalog::build_cache_checked(&argv(&["--allow-degraded"]), None)
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

/// A generated catalog of 300 products in `dir` (what `serve` would create).
async fn generated(dir: &Path) {
    let mut config = catalog::Config::for_database(dir.join("catalog.sqlite3"));
    config.products = 300;
    config.categories = 12;
    drop(
        catalog::build_app(&config)
            .await
            .expect("catalog generated"),
    );
}

/// `warmup` says how many entries it loaded and how many it found cached: a second warmup
/// loads nothing.
#[tokio::test]
async fn warmup_says_what_it_loaded_and_what_was_already_cached() {
    let dir = tempfile::tempdir().expect("dir");
    generated(dir.path()).await;
    let redis = tiercache_tests::RedisServer::start();
    let (result, first) = catalog(dir.path(), Some(redis.url()), &["warmup"]).await;
    result.expect("warmup");
    assert!(!first.contains(": 0 loads from the database"), "{first}");
    let (result, again) = catalog(dir.path(), Some(redis.url()), &["warmup"]).await;
    result.expect("warmup");
    assert!(again.contains(": 0 loads from the database"), "{again}");
}

/// `stats` without `--server` reports the shared cache (Redis) and the database, not the zero
/// counters of a process that served nothing; without Redis it refuses and says why.
#[tokio::test]
async fn stats_without_a_server_reports_redis_and_the_database_or_refuses() {
    let dir = tempfile::tempdir().expect("dir");
    generated(dir.path()).await;
    let (result, _) = catalog(dir.path(), None, &["stats"]).await;
    let err = format!("{:#}", result.expect_err("no Redis: refused"));
    assert!(
        err.contains("no REDIS_URL") && err.contains("--server"),
        "{err}"
    );

    let redis = tiercache_tests::RedisServer::start();
    catalog(dir.path(), Some(redis.url()), &["warmup"])
        .await
        .0
        .expect("warmup");
    let (result, out) = catalog(dir.path(), Some(redis.url()), &["stats"]).await;
    result.expect("stats");
    assert!(out.contains("shared cache (Redis at"), "{out}");
    assert!(out.contains("database: 300 products"), "{out}");
    let entries: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("entries of the namespace: "))
        .expect("entries line")
        .parse()
        .expect("a number");
    assert!(entries > 300, "the warmed entries are counted: {out}");
}

/// `clear --pattern GLOB` removes the matching entries from Redis.
#[tokio::test]
async fn clear_pattern_removes_matching_keys() {
    let dir = tempfile::tempdir().expect("dir");
    generated(dir.path()).await;
    let redis = tiercache_tests::RedisServer::start();
    catalog(dir.path(), Some(redis.url()), &["warmup"])
        .await
        .0
        .expect("warmup");
    let count = |glob: &'static str| {
        let client = redis.client();
        async move {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connection");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(glob)
                .query_async(&mut conn)
                .await
                .expect("KEYS");
            keys.len()
        }
    };
    assert!(count("catalog.v1:k:prod:[0-9]*").await > 0);
    let before_cat = count("catalog.v1:k:cat:*").await;
    let (result, out) = catalog(
        dir.path(),
        Some(redis.url()),
        &["clear", "--pattern", "prod:[0-9]*"],
    )
    .await;
    result.expect("clear --pattern");
    assert!(
        out.contains("cleared every key matching `prod:[0-9]*`"),
        "{out}"
    );
    assert_eq!(count("catalog.v1:k:prod:[0-9]*").await, 0);
    assert_eq!(count("catalog.v1:k:cat:*").await, before_cat, "others kept");
}

/// A bad `REDIS_URL` says what is wrong with it, and never shows its password.
#[tokio::test]
async fn a_bad_redis_url_says_what_is_wrong() {
    let dir = tempfile::tempdir().expect("dir");
    for (url, says) in [
        ("localhost:6379", "scheme `localhost`"),
        ("http://secret@localhost", "scheme `http`"),
        ("redis:///0", "names no host"),
        ("redis://localhost/cache", "not a database number"),
        ("not a url", "does not parse"),
    ] {
        let (result, _) = catalog(dir.path(), Some(url.to_owned()), &["clear", "--all"]).await;
        let err = format!("{:#}", result.expect_err(url));
        assert!(err.contains(says), "{url}: {err}");
        assert!(err.contains("expected redis://"), "{url}: {err}");
    }
    let err = catalog::config::redis_url_problem("redis://:hunter2@/0").expect("no host");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(catalog::config::redis_url_problem("redis://127.0.0.1:6379/2").is_none());
    assert!(catalog::config::redis_url_problem("rediss://u:p@cache.internal").is_none());
}

/// `stats --server` names the address it cannot reach.
#[tokio::test]
async fn a_connection_error_names_the_address() {
    let dir = tempfile::tempdir().expect("dir");
    // A port nothing listens on: bound, then released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let (result, _) = catalog(dir.path(), None, &["stats", "--server", &addr]).await;
    let err = format!("{:#}", result.expect_err("nothing listens"));
    assert!(err.contains(&addr), "{err}");
}

/// Every command's help documents the logging environment; logs are coloured only on a
/// terminal and without `NO_COLOR`.
#[test]
fn help_documents_rust_log_and_no_color_and_colours_follow_them() {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut helps = vec![command.render_long_help().to_string()];
    for sub in ["serve", "warmup", "clear", "stats"] {
        let sub = command.find_subcommand_mut(sub).expect("subcommand");
        helps.push(sub.render_long_help().to_string());
    }
    for help in &helps {
        assert!(
            help.contains("RUST_LOG") && help.contains("NO_COLOR"),
            "{help}"
        );
    }
    assert!(
        helps[2].contains("popular products"),
        "warmup says what it does: {}",
        helps[2]
    );
    assert!(cli::log_colours(true, None));
    assert!(
        !cli::log_colours(false, None),
        "stderr a file: no colour codes"
    );
    assert!(!cli::log_colours(true, Some(std::ffi::OsStr::new("1"))));
    assert!(cli::log_colours(true, Some(std::ffi::OsStr::new(""))));
}

/// `/health` says which tiers serve: with `--l1-mb 0` never "L1".
#[tokio::test]
async fn health_does_not_claim_an_l1_that_is_disabled() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = tiercache_tests::RedisServer::start();
    let mut config = catalog::Config::for_database(dir.path().join("catalog.sqlite3"));
    config.products = 300;
    config.categories = 12;
    config.l1_mb = 0;
    config.redis_url = Some(redis.url());
    let app = catalog::build_app(&config).await.expect("app");
    let health = catalog::http::routes::health_report(&app.repo).await;
    assert_eq!(
        health["mode"], "serving from L2 (Redis): L1 disabled (--l1-mb 0)",
        "{health}"
    );
    config.redis_url = None;
    config.l1_mb = 1;
    let app = catalog::build_app(&config).await.expect("app");
    let health = catalog::http::routes::health_report(&app.repo).await;
    assert_eq!(
        health["mode"], "serving from L1 and the database: no REDIS_URL configured",
        "{health}"
    );
}

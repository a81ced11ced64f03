//! The run's redis-server: started through the test harness (`tiercache_tests::RedisServer`: a free
//! loopback port, never 6379, no persistence, killed on drop), emptied between scenarios, read
//! with `INFO` and `DBSIZE`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use anyhow::Context as _;
use tiercache_tests::RedisServer;

/// Starts a redis-server (`bin`, with `extra` arguments) and waits until it answers. The harness
/// blocks and panics on failure: it runs on a blocking thread, and its panic (with the server's
/// log) becomes the error.
pub async fn start(bin: OsString, extra: &[&str]) -> anyhow::Result<RedisServer> {
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        RedisServer::start_bin_with_args(bin, &extra)
    })
    .await
    .map_err(|e| match e.try_into_panic() {
        Ok(panic) => anyhow::anyhow!(
            "{}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("redis-server failed to start")
        ),
        Err(e) => anyhow::anyhow!("redis-server start task: {e}"),
    })
}

async fn connection(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
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
pub async fn info(url: &str, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut conn = connection(url).await?;
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

/// One numeric `INFO` field.
pub async fn info_u64(url: &str, section: &str, key: &str) -> Option<u64> {
    info(url, section).await.ok()?.get(key)?.parse().ok()
}

/// `DBSIZE`.
pub async fn dbsize(url: &str) -> Option<u64> {
    let mut conn = connection(url).await.ok()?;
    redis::cmd("DBSIZE").query_async(&mut conn).await.ok()
}

/// `FLUSHALL`: every scenario starts with an empty L2.
pub async fn flushall(url: &str) -> anyhow::Result<()> {
    let mut conn = connection(url).await?;
    let _: String = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    Ok(())
}

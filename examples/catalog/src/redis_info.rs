//! What Redis says about the shared cache: its memory, evictions and keyspace hits (`INFO`), the
//! round-trip time of a `PING`, and how many entries the namespace holds (`SCAN`).
//!
//! [`RedisInfo`] is `catalog stats`'s full reading (its own connection, a `SCAN`: an operator's
//! command). [`RedisReadings`] is what `/metrics` and `/cache/stats` show: memory, evictions and
//! PING through the cache's own connection ([`cache_core::Cache::health`]), read at most once per
//! [`READING_MAX_AGE`] whatever the scrape rate; never on a request's path to the cache.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cache_core::Cache;
use serde::Serialize;

/// How long reading the information may take in all.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Keys a `SCAN` call asks for.
const SCAN_COUNT: usize = 1_000;

/// A reading of Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RedisInfo {
    /// `used_memory`, bytes.
    pub used_memory_bytes: u64,
    /// `maxmemory` (0: no limit).
    pub max_memory_bytes: u64,
    /// Keys evicted for `maxmemory` since Redis started.
    pub evicted_keys: u64,
    /// Keys expired since Redis started.
    pub expired_keys: u64,
    /// Lookups that found / did not find a key, since Redis started (all namespaces).
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Keys in the database (all namespaces).
    pub keys: u64,
    /// Cache entries of the namespace (`ns:k:*`), when counted.
    pub namespace_entries: Option<u64>,
    /// Round trip of a `PING`, seconds.
    pub ping_seconds: f64,
}

impl RedisInfo {
    /// Reads Redis at `url`; with a `namespace`, also counts its entries (a `SCAN`: operators'
    /// commands only, never per request).
    pub async fn read(url: &str, namespace: Option<&str>) -> anyhow::Result<RedisInfo> {
        let redacted = crate::config::redact_url(url);
        tokio::time::timeout(TIMEOUT, Self::read_now(url, namespace))
            .await
            .map_err(|_| anyhow::anyhow!("Redis at {redacted} did not answer within {TIMEOUT:?}"))?
            .with_context(|| format!("reading the statistics of Redis at {redacted}"))
    }

    async fn read_now(url: &str, namespace: Option<&str>) -> anyhow::Result<RedisInfo> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let started = Instant::now();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        let ping_seconds = started.elapsed().as_secs_f64();
        let text: String = redis::cmd("INFO").query_async(&mut conn).await?;
        let info = parse_info(&text);
        let get = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
        let namespace_entries = match namespace {
            None => None,
            Some(ns) => {
                let pattern = format!("{ns}:k:*");
                let mut cursor = 0u64;
                let mut count = 0u64;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn)
                        .await?;
                    count += batch.len() as u64;
                    if next == 0 {
                        break Some(count);
                    }
                    cursor = next;
                }
            }
        };
        Ok(RedisInfo {
            used_memory_bytes: get("used_memory"),
            max_memory_bytes: get("maxmemory"),
            evicted_keys: get("evicted_keys"),
            expired_keys: get("expired_keys"),
            keyspace_hits: get("keyspace_hits"),
            keyspace_misses: get("keyspace_misses"),
            keys,
            namespace_entries,
            ping_seconds,
        })
    }

    /// As lines of text.
    pub fn text(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let lookups = self.keyspace_hits + self.keyspace_misses;
        let ratio = if lookups == 0 {
            0.0
        } else {
            self.keyspace_hits as f64 / lookups as f64 * 100.0
        };
        let mut out = String::new();
        if let Some(n) = self.namespace_entries {
            out.push_str(&format!("entries of the namespace: {n}\n"));
        }
        out.push_str(&format!(
            "keys (all namespaces): {}\n\
             memory: {:.1} MiB used{}\n\
             keyspace hits {} / misses {} ({ratio:.1} % hits, all namespaces, since Redis started)\n\
             evicted keys: {}, expired keys: {}\n\
             PING round trip: {:.2} ms",
            self.keys,
            mib(self.used_memory_bytes),
            if self.max_memory_bytes > 0 {
                format!(" of {:.1} MiB (maxmemory)", mib(self.max_memory_bytes))
            } else {
                String::new()
            },
            self.keyspace_hits,
            self.keyspace_misses,
            self.evicted_keys,
            self.expired_keys,
            self.ping_seconds * 1000.0
        ));
        out
    }
}

/// How old a reading `/metrics` and `/cache/stats` show may be: Redis is asked at most this often.
pub const READING_MAX_AGE: Duration = Duration::from_secs(5);

/// Redis's memory, evictions and latency, as the scrape endpoints show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RedisReading {
    /// Whether Redis answered the reading (`false`: the other fields are those of the last
    /// reading that succeeded, or zero).
    pub up: bool,
    /// `used_memory`, bytes.
    pub used_memory_bytes: u64,
    /// `maxmemory`, bytes (0: no limit).
    pub max_memory_bytes: u64,
    /// `evicted_keys`: keys evicted for `maxmemory` since Redis started.
    pub evicted_keys: u64,
    /// Round trip of a `PING`, seconds.
    pub ping_seconds: f64,
}

/// The latest [`RedisReading`] of a cache, renewed when older than [`READING_MAX_AGE`]. One
/// reading at a time: concurrent scrapes wait for it and share it.
#[derive(Debug, Default)]
pub struct RedisReadings {
    latest: tokio::sync::Mutex<Option<(Instant, RedisReading)>>,
}

impl RedisReadings {
    /// The reading of `cache`'s Redis, at most [`READING_MAX_AGE`] old; `None` without Redis.
    /// Never fails: bounded by the cache's Redis timeouts.
    pub async fn read(&self, cache: &Cache) -> Option<RedisReading> {
        if !cache.has_l2() {
            return None;
        }
        let mut latest = self.latest.lock().await;
        if let Some((at, reading)) = *latest
            && at.elapsed() < READING_MAX_AGE
        {
            return Some(reading);
        }
        let l2 = cache.health().await.l2;
        let last = latest.map(|(_, r)| r).unwrap_or_default();
        let reading = match l2.ping {
            Some(ping) => RedisReading {
                up: true,
                used_memory_bytes: l2.used_memory.unwrap_or(0),
                max_memory_bytes: l2.maxmemory.unwrap_or(0),
                evicted_keys: l2.evicted_keys.unwrap_or(0),
                ping_seconds: ping.as_secs_f64(),
            },
            None => RedisReading { up: false, ..last },
        };
        *latest = Some((Instant::now(), reading));
        Some(reading)
    }
}

/// `INFO`'s `key:value` lines.
fn parse_info(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_parse() {
        let info = parse_info(
            "# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\n\r\n# Stats\r\nevicted_keys:3\r\n",
        );
        assert_eq!(info.get("used_memory"), Some(&"1024"));
        assert_eq!(info.get("evicted_keys"), Some(&"3"));
        assert_eq!(info.len(), 3);
    }
}

//! Reclaiming the memory of cleared entries. A clear ([`RedisStore::mark`] with no tag) makes
//! every entry written before it stale at once, but leaves the entries in Redis until their TTL
//! ends. [`RedisStore::reclaim_cleared`] deletes them: `SCAN` (never `KEYS`) over the
//! namespace's entries in small batches, each batch one script that deletes the entries whose
//! `written_at` (read with `GETRANGE` from the envelope's header, see [`crate::codec`]) is not
//! after the clear mark, summing their `MEMORY USAGE` first; entries written since the clear are
//! kept. Rate-limited, so that it never competes with traffic. On a cluster each primary is
//! scanned in turn, and a batch's keys are grouped by hash slot, one script per slot (a script
//! may touch the keys of one slot only).
//!
//! Owns the scan and the script. Never touches L1 or the engine.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::Script;

use super::RedisStore;
use redis::cluster_routing::Slot;

use super::deployment::ScanNode;
use crate::error::RedisFailure;

/// Keys scanned per batch (one `SCAN`, one script).
const BATCH: usize = 200;

/// Deletes the entries among `KEYS` written at or before `ARGV[1]` (µs): the envelope starts
/// with "tc", a version byte, a flags byte, then `written_at` as a big-endian u64. Returns
/// `{deleted, bytes}`.
/// Sent by hash (`EVALSHA`, loaded on `NOSCRIPT`: see [`super::scripts`]).
static RECLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(RECLAIM_SOURCE));

const RECLAIM_SOURCE: &str = "local mark = tonumber(ARGV[1]) local n, bytes = 0, 0 \
     for _, k in ipairs(KEYS) do \
       local h = redis.call('GETRANGE', k, 0, 11) \
       if #h == 12 and string.sub(h, 1, 2) == 'tc' then \
         local w = 0 for i = 5, 12 do w = w * 256 + string.byte(h, i) end \
         if w <= mark then \
           bytes = bytes + (redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0') or 0) \
           redis.call('UNLINK', k) n = n + 1 \
         end \
       end \
     end \
     return {n, bytes}";

/// What [`RedisStore::reclaim_cleared`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reclaimed {
    pub(crate) scanned: u64,
    pub(crate) deleted: u64,
    pub(crate) bytes: u64,
}

impl RedisStore {
    /// Deletes the entries written before the namespace's last clear, scanning at most
    /// `keys_per_second` keys a second.
    pub(crate) async fn reclaim_cleared(
        self: &Arc<Self>,
        keys_per_second: u32,
    ) -> Result<Reclaimed, RedisFailure> {
        let mark = self.read_marks(&[]).await?.clear;
        let glob = self.entry_key("*");
        let mut done = Reclaimed::default();
        let nodes = self
            .run(
                "reclaim scan",
                |mut conn| async move { conn.scan_nodes().await },
            )
            .await?;
        for node in nodes {
            self.reclaim_on(&node, &glob, mark.as_micros(), keys_per_second, &mut done)
                .await?;
        }
        Ok(done)
    }

    /// The scan of one node (the server, or one primary of a cluster).
    async fn reclaim_on(
        self: &Arc<Self>,
        node: &ScanNode,
        glob: &str,
        mark: u64,
        keys_per_second: u32,
        done: &mut Reclaimed,
    ) -> Result<(), RedisFailure> {
        let mut cursor: u64 = 0;
        let per_batch = Duration::from_secs_f64(BATCH as f64 / f64::from(keys_per_second.max(1)));
        loop {
            let started = Instant::now();
            let (next, keys): (u64, Vec<String>) = self
                .run("reclaim scan", |mut conn| async move {
                    conn.scan_page(node, cursor, glob, BATCH).await
                })
                .await?;
            done.scanned += keys.len() as u64;
            for keys in self.by_slot(keys) {
                let (deleted, bytes): (u64, u64) = self
                    .run("reclaim", |mut conn| async move {
                        let mut reclaim = RECLAIM.prepare_invoke();
                        reclaim.key(&keys).arg(mark);
                        reclaim.invoke_async(&mut conn).await
                    })
                    .await?;
                done.deleted += deleted;
                done.bytes += bytes;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
            tokio::time::sleep(per_batch.saturating_sub(started.elapsed())).await;
        }
    }

    /// `keys` in groups a script may touch together: one group on a single server, one per hash
    /// slot on a cluster.
    fn by_slot(&self, keys: Vec<String>) -> Vec<Vec<String>> {
        if keys.is_empty() {
            return Vec::new();
        }
        if !self.deployment.is_cluster() {
            return vec![keys];
        }
        let mut groups: HashMap<Slot, Vec<String>> = HashMap::new();
        for key in keys {
            groups.entry(Slot::for_key(&key)).or_default().push(key);
        }
        groups.into_values().collect()
    }
}

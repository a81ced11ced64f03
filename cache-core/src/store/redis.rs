//! L2: Redis through one multiplexed connection, every call bounded by a timeout and guarded by a
//! circuit breaker. Invalidations that could not reach Redis, and deletions of the keys of
//! write-throughs ([`WriteMode::Overwrite`]) that could not, are queued and replayed ([`replay`]),
//! before any other L2 call, once Redis answers again, so that a write made while Redis was down
//! does not leave an old value readable when it comes back.
//!
//! Key layout under the namespace `ns` (what `redis-cli --scan --pattern 'ns:*'` shows; the
//! README's "Key layout in Redis" is the operators' version of this): entries `ns:k:<key>` (the
//! codec's envelope, expiring after the pattern's `ttl + stale`), tag marks `ns:t:<tag>`, the
//! namespace's clear mark `ns:c` (both kept [`RedisSettings::mark_retention`], the max entry
//! lifetime), and key tombstones `ns:d:<key>` (kept [`TOMBSTONE_TTL`]); marks and tombstones hold
//! the time of the last invalidation (µs since the epoch); fleet leases `ns:l:<key>` (the owner's
//! token, expiring: [`lease`]); the backplane's stream `ns:bp`.
//!
//! A tombstone closes a race between instances: instance B starts loading a key, instance A
//! invalidates it (its database write committed), then B's load finishes with the old value. B's
//! write-back is a script that writes the entry only if the key has no tombstone as recent as the
//! time B's load started, so the old value never reaches Redis after A's invalidation. Tombstones
//! live [`TOMBSTONE_TTL`]: a load that runs longer than that is not covered.
//!
//! Why not redis-rs's `ConnectionManager` (its feature is not enabled): it reconnects by itself,
//! in the background, on its own schedule of retries and backoff, and a call made while it
//! reconnects waits for it or fails after its retries. Here the circuit breaker
//! ([`super::circuit`]) decides when Redis is tried again: while Redis is known to be down a call
//! is skipped at once (one atomic load: no connect attempt, no wait), so requests are served from
//! L1 and the loaders without delay, and one background probe (a fresh connection, PING, the
//! replay of queued invalidations) closes the circuit. A manager reconnecting on its own would
//! duplicate that and make calls wait on its reconnection instead of failing fast. And every call
//! here is bounded by one timeout covering connecting, the replay and the command, which the
//! manager's separate connection and response timeouts do not express. What stays hand-written
//! is small: one connection slot, dropped on an I/O error and re-opened by the next call or the
//! probe ([`connection`]).
//!
//! On a Redis Cluster (see [`deployment`]) every key a script or a multi-key command touches
//! must hash to one slot. The entry, tombstone and lease keys of one cache key therefore carry a
//! hash tag, `ns:k:{<key>}`, `ns:d:{<key>}`, `ns:l:{<key>}` (`{` and `}` are never in a rendered
//! key's percent-encoded values, and the builder refuses them in a namespace on a cluster), so
//! that, script by script:
//! - [`scripts::WRITE`] reads the tombstone and writes the entry of one key: one slot;
//! - the invalidation pipeline (tombstone `SET`, then `UNLINK`) is sent per slot, in order;
//! - [`scripts::MARK`], the lease's renew and release scripts touch one key each;
//! - the reclaim script (`reclaim.rs`) is sent once per slot with that slot's keys, and takes
//!   the clear mark as an argument read before it, which is safe since marks only grow.
//!
//! No script reads a tag mark or the clear mark beside an entry. A read fetches the entries and
//! the marks with one `MGET`, which on a cluster redis-rs splits by slot: the replies come from
//! several primaries at slightly different moments, not one snapshot. The guarantee ("a read
//! issued after an invalidation returned never serves what it invalidated") still holds because
//! it never needed a snapshot: a mark is written to its primary before the invalidation returns
//! and only grows, so a read issued later sees it (or a later one) whenever its `MGET` part runs;
//! and an entry carries its own `written_at` stamp, compared with the mark on read, so an entry
//! written by a load that began before the mark is stale whichever of the two replies came
//! first. Entries written after the mark are fresh, as on a single server.
//!
//! What a cluster or a failover does not keep: a write acknowledged by a primary that dies (or,
//! through Sentinel, by an old master before the cache moved) before its replica copied it is
//! lost (asynchronous replication), and with it possibly a tombstone, a mark or an overwrite; a
//! pattern invalidation `SCAN`s the primaries one after the other, so a key that a concurrent
//! resharding moves onto a primary already scanned is missed (it expires with its TTL).
//!
//! Split by concern: this file holds the key layout and the operations (read, write, unlink,
//! mark); [`scripts`] the write-back and mark scripts, sent by hash (`EVALSHA`, loaded again on
//! `NOSCRIPT`); [`connection`] the connection, the guard around each call and the probe;
//! [`replay`] the queue of invalidations waiting for Redis; [`reply`] the read's `MGET` reply. Knows entries (bytes under a key),
//! marks and tombstones, never key patterns or statistics per pattern: `store/` never imports
//! `key`, `engine` or the facade.

mod connection;
pub(crate) mod deployment;
mod lease;
mod popularity;
mod reclaim;
mod replay;
mod reply;
mod scripts;
pub(crate) mod sentinel;

pub(crate) use lease::Acquired;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::AsyncCommands;

pub(crate) use self::connection::RedisSettings;
pub(in crate::store) use self::connection::sample_redis_clock;
use self::deployment::{Deployment, L2Connection, SlotPipeline};
pub(crate) use self::reclaim::Reclaimed;
use self::replay::{Pending, PendingQueue};
pub(crate) use self::reply::{Entries, Marks};
use self::reply::{mget_values, split_read};
use super::circuit::{Circuit, Permit};
use crate::clock::{Clock, Timestamp};
use crate::error::RedisFailure;
use crate::metrics::bump;
use crate::store::backplane::Message;

const SCAN_BATCH: usize = 1_000;

/// How long a key invalidation's tombstone lives: the longest load it protects against.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(120);

/// What an L2 write replaces, which decides what a write that does not reach Redis leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// A write-back of loaded values: it replaces nothing newer, so a failed write leaves
    /// nothing to undo and does not fill the replay queue.
    Fill,
    /// A write-through of new values (`Cache::set`, `Cache::set_many`): they replace whatever
    /// Redis holds for their keys, so a write that fails, times out or is skipped because the
    /// circuit is open queues the deletion of its keys for replay. Otherwise the old value would
    /// stay in Redis and be read again once Redis is back.
    Overwrite,
}

/// One entry to write: its key (without the namespace), its bytes and how long Redis keeps it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryWrite<'a> {
    pub(crate) key: &'a str,
    pub(crate) bytes: &'a [u8],
    pub(crate) time_to_live: Duration,
    /// The token of the key's fleet lease, if the writer holds it: the same script call then
    /// releases it ([`scripts::WRITE`]).
    pub(crate) lease: Option<u64>,
}

/// A Redis key written as three parts (a namespace prefix, the key, and the suffix that closes
/// a cluster's hash tag, else empty), with no string built.
struct Prefixed<'a>(&'a str, &'a str, &'a str);

impl redis::ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        use std::io::Write as _;
        let parts = [self.0.as_bytes(), self.1.as_bytes(), self.2.as_bytes()];
        // Most names fit on the stack: joined there, written in one piece (cheaper than three
        // writes into the command's buffer).
        let mut joined = [0u8; 128];
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        if len <= joined.len() {
            let mut at = 0;
            for part in parts {
                joined[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            out.write_arg(&joined[..len]);
            return;
        }
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        for part in parts {
            let _ = arg.write_all(part);
        }
    }
}

pub(crate) struct RedisStore {
    pub(in crate::store) deployment: Deployment,
    /// The connection, and the deployment's generation it was opened under.
    conn: RwLock<Option<(L2Connection, u64)>>,
    connect_lock: tokio::sync::Mutex<()>,
    circuit: Circuit,
    pub(in crate::store) settings: RedisSettings,
    /// Redis's clock as estimated here: the stamps of replayed tombstones and marks.
    clock: Arc<Clock>,
    entry_prefix: String,
    /// What ends an entry, tombstone or lease key: `}` on a cluster (closing the hash tag that
    /// each prefix opens, so that the three keys of one entry share a slot), else nothing.
    key_close: &'static str,
    tombstone_prefix: String,
    tag_prefix: String,
    lease_prefix: String,
    clear_key: String,
    /// The backplane's stream (`store/backplane.rs`).
    pub(in crate::store) stream_key: String,
    pending: Mutex<PendingQueue>,
    pending_overflow: AtomicBool,
    /// Backplane messages that could not be sent (`replay.rs`).
    unsent: Mutex<Vec<Message>>,
    unsent_overflow: AtomicBool,
    has_pending: AtomicBool,
    flush_lock: tokio::sync::Mutex<()>,
    unattributed_errors: AtomicU64,
    /// Latency of the calls that reached Redis (recorded with the `metrics` feature only).
    latency: crate::metrics::LatencyHistogram,
    /// The fleet leases this process holds: entry key → token (`lease.rs`).
    held_leases: Mutex<std::collections::HashMap<String, u64>>,
}

impl RedisStore {
    pub(crate) fn new(deployment: Deployment, settings: RedisSettings, clock: Arc<Clock>) -> Self {
        let ns = &settings.namespace;
        let (open, key_close) = if deployment.is_cluster() {
            ("{", "}")
        } else {
            ("", "")
        };
        RedisStore {
            deployment,
            conn: RwLock::new(None),
            connect_lock: tokio::sync::Mutex::new(()),
            circuit: Circuit::new(settings.failure_threshold, settings.cool_down),
            entry_prefix: format!("{ns}:k:{open}"),
            key_close,
            tombstone_prefix: format!("{ns}:d:{open}"),
            tag_prefix: format!("{ns}:t:"),
            lease_prefix: format!("{ns}:l:{open}"),
            clear_key: format!("{ns}:c"),
            stream_key: format!("{ns}:bp"),
            clock,
            settings,
            pending: Mutex::new(PendingQueue::default()),
            pending_overflow: AtomicBool::new(false),
            unsent: Mutex::new(Vec::new()),
            unsent_overflow: AtomicBool::new(false),
            has_pending: AtomicBool::new(false),
            flush_lock: tokio::sync::Mutex::new(()),
            unattributed_errors: AtomicU64::new(0),
            latency: Default::default(),
            held_leases: Mutex::default(),
        }
    }

    pub(crate) fn entry_key(&self, key: &str) -> String {
        let mut s = String::with_capacity(self.entry_prefix.len() + key.len() + 1);
        s.push_str(&self.entry_prefix);
        s.push_str(key);
        s.push_str(self.key_close);
        s
    }

    /// The tombstone key of a full entry key (`ns:k:<key>` → `ns:d:<key>`; on a cluster
    /// `ns:k:{<key>}` → `ns:d:{<key>}`).
    fn tombstone_of(&self, entry_key: &str) -> String {
        let key = entry_key
            .strip_prefix(&self.entry_prefix)
            .unwrap_or(entry_key);
        let mut s = String::with_capacity(self.tombstone_prefix.len() + key.len());
        s.push_str(&self.tombstone_prefix);
        s.push_str(key);
        s
    }

    /// Adds to `pipe`, for each entry key, its tombstone at `time` then the entry's deletion: a
    /// write-back that reaches Redis after these sees the tombstone, one before is deleted.
    fn delete_with_tombstones(&self, pipe: &mut SlotPipeline, keys: &[String], time: Timestamp) {
        let ttl_ms = u64::try_from(TOMBSTONE_TTL.as_millis()).unwrap_or(u64::MAX);
        for key in keys {
            let pipe = pipe.pipe_for(key);
            pipe.cmd("SET")
                .arg(self.tombstone_of(key))
                .arg(time.as_micros())
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            pipe.cmd("UNLINK").arg(key).ignore();
        }
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}{tag}", self.tag_prefix)
    }

    /// Reads entries and, in the same round trip, the clear mark and the given tags' marks.
    pub(crate) async fn read(
        self: &Arc<Self>,
        keys: &[&str],
        tags: &[&str],
    ) -> Result<(Entries, Marks), RedisFailure> {
        // One MGET: the entries, then the clear mark, then the tags' marks; each name written
        // straight into the command (prefix, then key), not built as a string of its own first.
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(Prefixed(&self.entry_prefix, key, self.key_close));
        }
        mget.arg(&self.clear_key);
        for tag in tags {
            mget.arg(Prefixed(&self.tag_prefix, tag, ""));
        }
        let (entries, marks) = (keys.len(), tags.len() + 1);
        self.run("read", |mut conn| async move {
            use redis::aio::ConnectionLike as _;
            let all = mget_values(conn.req_packed_command(&mget).await?)?;
            split_read(all, entries, marks).map(|(all, marks)| (Entries::new(all), marks))
        })
        .await
    }

    /// Reads marks only: the clear mark and the given tags.
    pub(crate) async fn read_marks(self: &Arc<Self>, tags: &[&str]) -> Result<Marks, RedisFailure> {
        self.read(&[], tags).await.map(|(_, m)| m)
    }

    /// Writes entries of values whose load (or write) started at `written_at`, in one pipeline;
    /// an entry whose key was invalidated since then (its tombstone, possibly from another
    /// instance) is not written. `mode` says what a write that does not reach Redis leaves behind.
    /// The leases of entries that carry their token are released by the same calls (once `Ok`,
    /// released; after an error, perhaps not).
    pub(crate) async fn write(
        self: &Arc<Self>,
        entries: &[EntryWrite<'_>],
        written_at: Timestamp,
        mode: WriteMode,
    ) -> Result<(), RedisFailure> {
        let full: Vec<String> = entries.iter().map(|e| self.entry_key(e.key)).collect();
        let mut pipe = SlotPipeline::new(self.deployment.is_cluster());
        for (key, entry) in full.iter().zip(entries) {
            let ttl_ms = u64::try_from(entry.time_to_live.as_millis()).unwrap_or(u64::MAX);
            let mut call = scripts::WRITE.key(key);
            call.key(self.tombstone_of(key))
                .arg(entry.bytes)
                .arg(ttl_ms.max(1))
                .arg(written_at.as_micros());
            if let Some(token) = entry.lease {
                // The lease key shares the entry's hash slot (see the module docs).
                call.key(Prefixed(&self.lease_prefix, entry.key, self.key_close))
                    .arg(token);
            }
            pipe.pipe_for(key).invoke_script(&call).ignore();
        }
        let result = self
            .run("write", |conn| async move {
                pipe.query(&conn, &[&scripts::WRITE]).await
            })
            .await;
        if result.is_err() && mode == WriteMode::Overwrite {
            tracing::debug!(
                keys = full.len(),
                "write-through missed Redis: deletion of the old values queued"
            );
            self.queue(Pending::Unlink(full));
        }
        result
    }

    /// Deletes entries, leaving tombstones stamped `time` (the invalidation's); if Redis cannot be
    /// reached the deletion is queued for replay.
    pub(crate) async fn unlink(self: &Arc<Self>, keys: &[&str], time: Timestamp) {
        let full: Vec<String> = keys.iter().map(|k| self.entry_key(k)).collect();
        let mut pipe = SlotPipeline::new(self.deployment.is_cluster());
        self.delete_with_tombstones(&mut pipe, &full, time);
        if self
            .run("unlink", |conn| async move { pipe.query(&conn, &[]).await })
            .await
            .is_err()
        {
            bump(&self.unattributed_errors);
            self.queue(Pending::Unlink(full));
        }
    }

    /// Deletes entries best-effort, without queueing (a corrupt value we could not decode).
    pub(crate) async fn unlink_best_effort(self: &Arc<Self>, key: &str) {
        let full = self.entry_key(key);
        let _ = self
            .run("unlink", |mut conn| async move {
                conn.unlink::<_, ()>(&full).await
            })
            .await;
    }

    /// SCAN + UNLINK of the entries whose key (without namespace) matches `glob`, in batches.
    pub(crate) async fn unlink_matching(self: &Arc<Self>, glob: &str) {
        let full = self.entry_key(glob);
        let started = Instant::now();
        let this = Arc::clone(self);
        let scan = full.clone();
        // A long scan may exceed one op timeout, so it gets a budget of its own.
        let budget = self.settings.scan_budget();
        let result = match self.circuit.permit() {
            Permit::Call => tokio::time::timeout(budget, async move {
                let mut conn = this.connection().await?;
                this.unlink_matching_with(&mut conn, &scan).await
            })
            .await
            .map_err(|_| RedisFailure::Timeout(budget))
            .and_then(|r| r.map_err(RedisFailure::from)),
            Permit::Probe => {
                self.spawn_probe();
                Err(RedisFailure::CircuitOpen)
            }
            Permit::Skip => Err(RedisFailure::CircuitOpen),
        };
        match result {
            Ok(()) => tracing::debug!(glob, took = ?started.elapsed(), "pattern invalidated in L2"),
            Err(e) => {
                tracing::warn!(glob, error = %e, "pattern invalidation queued: Redis unavailable");
                bump(&self.unattributed_errors);
                self.queue(Pending::UnlinkMatching(full));
            }
        }
    }

    /// SCAN + UNLINK on every node that holds keys (each primary of a cluster).
    async fn unlink_matching_with(
        &self,
        conn: &mut L2Connection,
        full_glob: &str,
    ) -> redis::RedisResult<()> {
        for node in conn.scan_nodes().await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) = conn.scan_page(&node, cursor, full_glob, SCAN_BATCH).await?;
                if !keys.is_empty() {
                    let _: () = conn.unlink(&keys).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    async fn mark_with(
        &self,
        conn: &mut L2Connection,
        key: &str,
        time: Timestamp,
    ) -> redis::RedisResult<()> {
        scripts::MARK
            .key(key)
            .arg(time.as_micros())
            .arg(self.mark_retention_ms())
            .invoke_async::<i64>(conn)
            .await
            .map(drop)
    }

    fn mark_retention_ms(&self) -> u64 {
        u64::try_from(self.settings.mark_retention.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a tag invalidation (or, with `None`, a clear of the namespace) at `time`.
    pub(crate) async fn mark(self: &Arc<Self>, tag: Option<&str>, time: Timestamp) {
        let key = tag.map_or_else(|| self.clear_key.clone(), |t| self.tag_key(t));
        let this = Arc::clone(self);
        let sent = key.clone();
        if self
            .run("mark", |mut conn| async move {
                this.mark_with(&mut conn, &sent, time).await
            })
            .await
            .is_err()
        {
            bump(&self.unattributed_errors);
            self.queue(Pending::Mark(key, time));
        }
    }

    /// Broadcasts a backplane message (`XADD` to the stream); if Redis cannot be reached it is
    /// kept and sent once Redis answers, right after the queued invalidations are replayed, so
    /// that other instances still learn of it (see `replay.rs`).
    pub(crate) async fn publish(self: &Arc<Self>, message: Message) {
        let xadd = message.xadd(&self.stream_key);
        if self
            .run("publish", |mut conn| async move {
                xadd.query_async::<redis::Value>(&mut conn).await.map(drop)
            })
            .await
            .is_err()
        {
            bump(&self.unattributed_errors);
            self.queue_message(message);
        }
    }

    /// Failed L2 calls that no key pattern is charged with (invalidations, marks, probes).
    /// Latency of the calls that reached Redis (with the `metrics` feature; else empty).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn latency(&self) -> &crate::metrics::LatencyHistogram {
        &self.latency
    }

    pub(crate) fn unattributed_errors(&self) -> u64 {
        self.unattributed_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn pending_invalidations(&self) -> usize {
        self.pending.lock().len() + usize::from(self.pending_overflow.load(Ordering::Acquire))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store whose Redis is a loopback port nothing listens on (every call is refused).
    pub(crate) fn unreachable_store() -> Arc<RedisStore> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        Arc::new(RedisStore::new(
            Deployment::Single(client),
            RedisSettings::for_tests("unit"),
            Arc::new(Clock::new(0)),
        ))
    }

    #[tokio::test]
    async fn only_an_overwrite_that_misses_redis_queues_the_deletion_of_its_keys() {
        let store = unreachable_store();
        let entries = [EntryWrite {
            key: "k",
            bytes: b"v",
            time_to_live: Duration::from_secs(1),
            lease: None,
        }];
        let fill = store
            .write(&entries, store.clock.now(), WriteMode::Fill)
            .await;
        assert!(fill.is_err());
        assert_eq!(
            store.pending_invalidations(),
            0,
            "a failed fill leaves nothing to undo"
        );
        let overwrite = store
            .write(&entries, store.clock.now(), WriteMode::Overwrite)
            .await;
        assert!(overwrite.is_err());
        assert_eq!(
            store.pending_invalidations(),
            1,
            "the old value's deletion is queued"
        );
    }

    #[test]
    fn a_short_mget_reply_is_an_error_not_a_panic() {
        let reply = vec![Some(b"v".to_vec())];
        assert!(
            split_read(reply.clone(), 2, 1).is_err(),
            "fewer values than entries"
        );
        assert!(split_read(reply.clone(), 1, 2).is_err(), "marks missing");
        assert!(split_read(Vec::<Option<Vec<u8>>>::new(), 0, 1).is_err());
        assert!(
            split_read(vec![None, None, None], 1, 1).is_err(),
            "too many"
        );
        let (entries, marks) =
            split_read(vec![None, Some(b"12".to_vec()), Some(b"34".to_vec())], 1, 2).unwrap();
        assert_eq!(entries, vec![None]);
        let at = Timestamp::from_micros;
        assert_eq!((marks.clear, marks.tags), (at(12), vec![at(34)]));
    }
}

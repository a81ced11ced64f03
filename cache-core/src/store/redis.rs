//! L2: Redis through one multiplexed connection, every call bounded by a timeout and guarded by a
//! circuit breaker. Invalidations that could not reach Redis, and deletions of the keys of
//! write-throughs ([`WriteMode::Overwrite`]) that could not, are queued and replayed ([`replay`]),
//! before any other L2 call, once Redis answers again, so that a write made while Redis was down
//! does not leave an old value readable when it comes back.
//!
//! Key layout under the namespace `ns`: entries `ns:k:<key>`, tag marks `ns:t:<tag>`, the
//! namespace's clear mark `ns:c`, and key tombstones `ns:d:<key>`; marks and tombstones hold the
//! time of the last invalidation (µs since the epoch).
//!
//! A tombstone closes a race between instances: instance B starts loading a key, instance A
//! invalidates it (its database write committed), then B's load finishes with the old value. B's
//! write-back is a script that writes the entry only if the key has no tombstone as recent as the
//! time B's load started, so the old value never reaches Redis after A's invalidation. Tombstones
//! live [`TOMBSTONE_TTL`]: a load that runs longer than that is not covered.
//!
//! Why not redis-rs's `ConnectionManager` (its feature is not enabled): it reconnects by itself,
//! in the background, and a call made meanwhile waits for the reconnection or fails with its own
//! retry policy. Here a call must instead (1) fail fast, without waiting, while Redis is known to
//! be down (the circuit breaker, [`super::circuit`]), so that requests are served from L1 and the
//! loaders at once; (2) find the replay queue flushed on the very connection it uses *before* it
//! is sent, so that no read overtakes an invalidation made while Redis was down, which needs a
//! hook at the moment a connection is (re)established, and `ConnectionManager` offers none; and
//! (3) be bounded by one timeout covering connect, replay and the command. The hand-written
//! connection slot below (one multiplexed connection, dropped on an I/O error, re-opened by the
//! next call or the circuit's probe) is what these need, and is small.
//!
//! Owns the Redis connection, the key layout, the scripts and the circuit. Knows entries (bytes
//! under a key), marks and tombstones, never key patterns or statistics per pattern: it never
//! imports `key`, `engine` or the facade.

mod replay;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use tracing::Instrument;

use self::replay::{Pending, PendingQueue};
use super::circuit::{Circuit, CircuitState, Permit};
use crate::clock::Timestamp;
use crate::error::RedisFailure;
use crate::metrics::bump;

const SCAN_BATCH: usize = 1_000;

/// How long a key invalidation's tombstone lives: the longest load it protects against.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(120);

/// Writes an entry (KEYS[1]) unless its tombstone (KEYS[2]) is at least as recent as the time the
/// value's load started (ARGV[3]); ARGV[1] the bytes, ARGV[2] the time to live in ms.
const WRITE_SCRIPT: &str = "local t = tonumber(redis.call('GET', KEYS[2]) or '0') or 0 \
     if t >= tonumber(ARGV[3]) then return 0 end \
     redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

/// Keeps the later of two marks: clocks of different instances may disagree a little.
const MARK_SCRIPT: &str = "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 \
     if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
     return 1";

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
}

/// A Redis key written as two parts (a namespace prefix, then the key), with no string built.
struct Prefixed<'a>(&'a str, &'a str);

impl redis::ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.as_bytes());
        let _ = arg.write_all(self.1.as_bytes());
    }
}

/// Splits the reply of the combined MGET into the entries and the marks. A reply of another
/// length than asked for (a proxy or a broken server) is an L2 error, never a panic.
fn split_read(
    mut all: Vec<Option<Vec<u8>>>,
    entries: usize,
    marks: usize,
) -> redis::RedisResult<(Vec<Option<Vec<u8>>>, Marks)> {
    if all.len() != entries + marks {
        return Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "MGET reply has another number of values than keys asked for",
            format!("{} values for {} keys", all.len(), entries + marks),
        )));
    }
    let mut marks = all.split_off(entries).into_iter().map(|m| {
        m.and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .map_or(Timestamp::EPOCH, Timestamp::from_micros)
    });
    let clear = marks.next().unwrap_or(Timestamp::EPOCH);
    Ok((
        all,
        Marks {
            clear,
            tags: marks.collect(),
        },
    ))
}

/// Settings of the L2 tier.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub(crate) namespace: String,
    pub(crate) op_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) failure_threshold: u32,
    pub(crate) cool_down: Duration,
    pub(crate) mark_retention: Duration,
}

impl RedisSettings {
    /// Time allowed to a background probe: connect, PING and replay. The builder rejects
    /// settings for which these sums overflow; saturating here keeps that a config error only.
    pub(crate) fn probe_budget(&self) -> Duration {
        self.connect_timeout
            .checked_add(self.op_timeout)
            .unwrap_or(Duration::MAX)
    }

    /// Time allowed to one pattern invalidation (SCAN + UNLINK in batches).
    pub(crate) fn scan_budget(&self) -> Duration {
        self.op_timeout.checked_mul(100).unwrap_or(Duration::MAX)
    }

    /// Time allowed to a health diagnosis: connect, PING and INFO.
    pub(crate) fn diagnose_budget(&self) -> Duration {
        self.op_timeout
            .checked_mul(2)
            .and_then(|t| t.checked_add(self.connect_timeout))
            .unwrap_or(Duration::MAX)
    }
}

/// Marks read with entries: the namespace clear time and each requested tag's time
/// ([`Timestamp::EPOCH`]: never).
#[derive(Debug, Default, Clone)]
pub(crate) struct Marks {
    pub(crate) clear: Timestamp,
    pub(crate) tags: Vec<Timestamp>,
}

pub(crate) struct RedisStore {
    client: redis::Client,
    conn: RwLock<Option<MultiplexedConnection>>,
    connect_lock: tokio::sync::Mutex<()>,
    circuit: Circuit,
    settings: RedisSettings,
    entry_prefix: String,
    tombstone_prefix: String,
    tag_prefix: String,
    clear_key: String,
    pending: Mutex<PendingQueue>,
    pending_overflow: AtomicBool,
    has_pending: AtomicBool,
    flush_lock: tokio::sync::Mutex<()>,
    unattributed_errors: AtomicU64,
}

impl RedisStore {
    pub(crate) fn new(client: redis::Client, settings: RedisSettings) -> Self {
        let ns = &settings.namespace;
        RedisStore {
            client,
            conn: RwLock::new(None),
            connect_lock: tokio::sync::Mutex::new(()),
            circuit: Circuit::new(settings.failure_threshold, settings.cool_down),
            entry_prefix: format!("{ns}:k:"),
            tombstone_prefix: format!("{ns}:d:"),
            tag_prefix: format!("{ns}:t:"),
            clear_key: format!("{ns}:c"),
            settings,
            pending: Mutex::new(PendingQueue::default()),
            pending_overflow: AtomicBool::new(false),
            has_pending: AtomicBool::new(false),
            flush_lock: tokio::sync::Mutex::new(()),
            unattributed_errors: AtomicU64::new(0),
        }
    }

    pub(crate) fn entry_key(&self, key: &str) -> String {
        let mut s = String::with_capacity(self.entry_prefix.len() + key.len());
        s.push_str(&self.entry_prefix);
        s.push_str(key);
        s
    }

    /// The tombstone key of a full entry key (`ns:k:<key>` → `ns:d:<key>`).
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
    fn delete_with_tombstones(&self, pipe: &mut redis::Pipeline, keys: &[String], time: Timestamp) {
        let ttl_ms = u64::try_from(TOMBSTONE_TTL.as_millis()).unwrap_or(u64::MAX);
        for key in keys {
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

    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = self.conn.read().as_ref() {
            return Ok(c.clone());
        }
        let _one_at_a_time = self.connect_lock.lock().await;
        if let Some(c) = self.conn.read().as_ref() {
            return Ok(c.clone());
        }
        // Responses are bounded by the timeout around each call (`run`), not a second timer here.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *self.conn.write() = Some(conn.clone());
        Ok(conn)
    }

    fn drop_connection(&self) {
        *self.conn.write() = None;
    }

    /// Tries to connect once (at build time); failure only means starting degraded.
    pub(crate) async fn connect(&self) -> Result<(), RedisFailure> {
        match tokio::time::timeout(self.settings.connect_timeout, self.connection()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.circuit.on_failure();
                Err(e.into())
            }
            Err(_) => {
                self.circuit.on_failure();
                Err(RedisFailure::Timeout(self.settings.connect_timeout))
            }
        }
    }

    /// Runs one L2 operation under the circuit, the timeout and a tracing span.
    async fn run<T, F, Fut>(self: &Arc<Self>, op: &'static str, f: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match self.circuit.permit() {
            Permit::Call => {}
            Permit::Probe => {
                self.spawn_probe();
                return Err(RedisFailure::CircuitOpen);
            }
            Permit::Skip => return Err(RedisFailure::CircuitOpen),
        }
        let timeout = self.settings.op_timeout;
        let call = async {
            let mut conn = self.connection().await?;
            if self.has_pending.load(Ordering::Acquire) {
                self.flush_pending(&mut conn).await?;
            }
            f(conn).await
        };
        let span = tracing::debug_span!("l2", op);
        match tokio::time::timeout(timeout, call).instrument(span).await {
            Ok(Ok(v)) => {
                self.circuit.on_success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                {
                    self.drop_connection();
                }
                self.failed(op, &e);
                Err(e.into())
            }
            Err(_) => {
                self.failed(op, &"timeout");
                Err(RedisFailure::Timeout(timeout))
            }
        }
    }

    fn failed(&self, op: &str, error: &dyn std::fmt::Display) {
        if self.circuit.on_failure() {
            tracing::warn!(op, %error, cool_down = ?self.settings.cool_down, "Redis failing: circuit opened, serving without L2");
        } else {
            tracing::debug!(op, %error, "Redis call failed");
        }
    }

    /// Probes Redis in the background with a fresh connection; closes the circuit on success.
    fn spawn_probe(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.drop_connection();
            let probe = async {
                let mut conn = this.connection().await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                this.flush_pending(&mut conn).await
            };
            match tokio::time::timeout(this.settings.probe_budget(), probe).await {
                Ok(Ok(())) => {
                    tracing::info!("Redis answers again: circuit closed");
                    this.circuit.on_success();
                }
                _ => {
                    this.drop_connection();
                    this.circuit.on_failure();
                }
            }
        });
    }

    /// Reads entries and, in the same round trip, the clear mark and the given tags' marks.
    pub(crate) async fn read(
        self: &Arc<Self>,
        keys: &[&str],
        tags: &[&str],
    ) -> Result<(Vec<Option<Vec<u8>>>, Marks), RedisFailure> {
        // One MGET: the entries, then the clear mark, then the tags' marks; each name written
        // straight into the command (prefix, then key), not built as a string of its own first.
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(Prefixed(&self.entry_prefix, key));
        }
        mget.arg(&self.clear_key);
        for tag in tags {
            mget.arg(Prefixed(&self.tag_prefix, tag));
        }
        let (entries, marks) = (keys.len(), tags.len() + 1);
        self.run("read", |mut conn| async move {
            let all: Vec<Option<Vec<u8>>> = mget.query_async(&mut conn).await?;
            split_read(all, entries, marks)
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
    pub(crate) async fn write(
        self: &Arc<Self>,
        entries: &[EntryWrite<'_>],
        written_at: Timestamp,
        mode: WriteMode,
    ) -> Result<(), RedisFailure> {
        let full: Vec<String> = entries.iter().map(|e| self.entry_key(e.key)).collect();
        let mut pipe = redis::pipe();
        for (key, entry) in full.iter().zip(entries) {
            let ttl_ms = u64::try_from(entry.time_to_live.as_millis()).unwrap_or(u64::MAX);
            pipe.cmd("EVAL")
                .arg(WRITE_SCRIPT)
                .arg(2)
                .arg(key)
                .arg(self.tombstone_of(key))
                .arg(entry.bytes)
                .arg(ttl_ms.max(1))
                .arg(written_at.as_micros())
                .ignore();
        }
        let result = self
            .run("write", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
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
        let mut pipe = redis::pipe();
        self.delete_with_tombstones(&mut pipe, &full, time);
        if self
            .run("unlink", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
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

    async fn unlink_matching_with(
        &self,
        conn: &mut MultiplexedConnection,
        full_glob: &str,
    ) -> redis::RedisResult<()> {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(full_glob)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(conn)
                .await?;
            if !keys.is_empty() {
                let _: () = conn.unlink(&keys).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    async fn mark_with(
        &self,
        conn: &mut MultiplexedConnection,
        key: &str,
        time: Timestamp,
    ) -> redis::RedisResult<()> {
        redis::Script::new(MARK_SCRIPT)
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

    /// PING latency and the INFO fields a health report shows. Bypasses the circuit (it is a
    /// diagnosis) but not the timeout.
    pub(crate) async fn diagnose(
        &self,
    ) -> Result<(Duration, HashMap<String, String>), RedisFailure> {
        let timeout = self.settings.diagnose_budget();
        let probe = async {
            let mut conn = self.connection().await?;
            let started = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            let ping = started.elapsed();
            let info: String = redis::cmd("INFO").query_async(&mut conn).await?;
            let fields = info
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .collect();
            Ok::<_, redis::RedisError>((ping, fields))
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(r) => r.map_err(RedisFailure::from),
            Err(_) => Err(RedisFailure::Timeout(timeout)),
        }
    }

    /// Whether a read would be sent to Redis now (the circuit is closed).
    pub(crate) fn serving(&self) -> bool {
        !self.circuit.is_open()
    }

    /// Failed L2 calls that no key pattern is charged with (invalidations, marks, probes).
    pub(crate) fn unattributed_errors(&self) -> u64 {
        self.unattributed_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn circuit_state(&self) -> CircuitState {
        self.circuit.state()
    }

    pub(crate) fn pending_invalidations(&self) -> usize {
        self.pending.lock().len() + usize::from(self.pending_overflow.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_mget_reply_is_an_error_not_a_panic() {
        let reply = vec![Some(b"v".to_vec())];
        assert!(
            split_read(reply.clone(), 2, 1).is_err(),
            "fewer values than entries"
        );
        assert!(split_read(reply.clone(), 1, 2).is_err(), "marks missing");
        assert!(split_read(Vec::new(), 0, 1).is_err());
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

    #[test]
    fn budgets_saturate_instead_of_overflowing() {
        let settings = RedisSettings {
            namespace: "ns".into(),
            op_timeout: Duration::MAX,
            connect_timeout: Duration::MAX,
            failure_threshold: 1,
            cool_down: Duration::from_secs(1),
            mark_retention: Duration::MAX,
        };
        assert_eq!(settings.probe_budget(), Duration::MAX);
        assert_eq!(settings.scan_budget(), Duration::MAX);
        assert_eq!(settings.diagnose_budget(), Duration::MAX);
    }
}

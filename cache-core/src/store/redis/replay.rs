//! The replay queue of L2: invalidations (and deletions of the keys of write-throughs) that could
//! not reach Redis, queued in order and replayed before any other L2 call once Redis answers
//! again, in pipelined chunks that keep their progress across attempts. More than
//! [`MAX_PENDING`] queued operations collapse into one clear of the namespace.
//!
//! Owns the queue and its replay; reaches Redis only through the connection its caller holds.
//! Never touches L1, keys or the engine.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use super::deployment::{L2Connection, SlotPipeline};
use super::{RedisStore, scripts};
use crate::clock::Timestamp;
use crate::store::backplane::{Event, Message};

/// More queued invalidations than this collapse into one clear of the namespace.
const MAX_PENDING: usize = 10_000;
/// More unsent backplane messages than this collapse into one [`Event::Resync`].
const MAX_UNSENT: usize = 1_000;
/// Replay sends queued invalidations in pipelines of at most this many commands (an `Unlink`
/// counts one per key), and removes each chunk from the queue as soon as it succeeded, so a
/// large backlog makes progress even when one call's timeout cuts the replay short.
const REPLAY_CHUNK: usize = 500;

/// An invalidation that has not reached Redis yet.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    /// Delete these entry keys (full names), leaving tombstones.
    Unlink(Vec<String>),
    /// SCAN + UNLINK the entries matching this glob (full name).
    UnlinkMatching(String),
    /// Set this mark key to this time, unless it holds a later one.
    Mark(String, Timestamp),
}

impl Pending {
    /// Commands this operation costs in a replay pipeline.
    fn weight(&self) -> usize {
        match self {
            Pending::Unlink(keys) => keys.len().max(1),
            Pending::UnlinkMatching(_) | Pending::Mark(..) => 1,
        }
    }
}

/// The replay queue: operations in order, each with a sequence number, so that a replay removes
/// exactly the operations it sent even if the queue changed meanwhile.
#[derive(Debug, Default)]
pub(super) struct PendingQueue {
    ops: VecDeque<(u64, Pending)>,
    next_seq: u64,
}

impl PendingQueue {
    pub(super) fn len(&self) -> usize {
        self.ops.len()
    }
}

/// An operation sent in a pipeline (an `UnlinkMatching` is a SCAN loop, never pipelined).
#[derive(Debug)]
enum Piped {
    Unlink(Vec<String>),
    Mark(String, Timestamp),
}

/// One step of a replay: what is sent, and the sequence number of its last operation.
#[derive(Debug)]
enum Chunk {
    /// One pattern invalidation: a SCAN loop of its own.
    Scan { last_seq: u64, glob: String },
    /// Up to [`REPLAY_CHUNK`] commands of the other kinds, in order, in one pipeline.
    Pipeline { last_seq: u64, ops: Vec<Piped> },
}

impl Chunk {
    fn last_seq(&self) -> u64 {
        match self {
            Chunk::Scan { last_seq, .. } | Chunk::Pipeline { last_seq, .. } => *last_seq,
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Scan { .. } => 1,
            Chunk::Pipeline { ops, .. } => ops.len(),
        }
    }
}

impl RedisStore {
    /// Queues an operation for replay (or, past [`MAX_PENDING`], marks the queue overflowed).
    pub(super) fn queue(&self, op: Pending) {
        let mut pending = self.pending.lock();
        if pending.ops.len() >= MAX_PENDING {
            self.pending_overflow.store(true, Ordering::Release);
            pending.ops.clear();
        } else {
            let seq = pending.next_seq;
            pending.next_seq += 1;
            pending.ops.push_back((seq, op));
        }
        self.has_pending.store(true, Ordering::Release);
    }

    /// Keeps a backplane message that could not be sent, to send after the queued invalidations
    /// (past [`MAX_UNSENT`], one [`Event::Resync`] replaces them all).
    pub(super) fn queue_message(&self, message: Message) {
        let mut unsent = self.unsent.lock();
        if self.unsent_overflow.load(Ordering::Acquire) {
            // The resync to be sent covers this one too.
        } else if unsent.len() >= MAX_UNSENT {
            self.unsent_overflow.store(true, Ordering::Release);
            unsent.clear();
        } else {
            unsent.push(message);
        }
        self.has_pending.store(true, Ordering::Release);
    }

    /// Sends the messages kept by [`RedisStore::queue_message`], in order, in one pipeline.
    async fn flush_messages(&self, conn: &mut L2Connection) -> redis::RedisResult<()> {
        let messages = self.unsent.lock().clone();
        let overflow = self.unsent_overflow.load(Ordering::Acquire);
        if messages.is_empty() && !overflow {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if overflow {
            // From "instance 0": every instance applies it.
            let resync = Message {
                instance: 0,
                stamp: self.clock.now(),
                event: Event::Resync,
            };
            pipe.add_command(resync.xadd(&self.stream_key)).ignore();
        }
        for message in &messages {
            pipe.add_command(message.xadd(&self.stream_key)).ignore();
        }
        pipe.query_async::<()>(conn).await?;
        if overflow {
            self.unsent_overflow.store(false, Ordering::Release);
        }
        let mut unsent = self.unsent.lock();
        let sent = messages.len().min(unsent.len());
        unsent.drain(..sent);
        Ok(())
    }

    /// The next replay chunk from the front of the queue, if any.
    fn next_chunk(&self) -> Option<Chunk> {
        let pending = self.pending.lock();
        let mut ops = Vec::new();
        let (mut weight, mut last_seq) = (0, 0);
        for (seq, op) in &pending.ops {
            let piped = match op {
                Pending::UnlinkMatching(glob) if ops.is_empty() => {
                    return Some(Chunk::Scan {
                        last_seq: *seq,
                        glob: glob.clone(),
                    });
                }
                Pending::UnlinkMatching(_) => break,
                Pending::Unlink(keys) => Piped::Unlink(keys.clone()),
                Pending::Mark(key, time) => Piped::Mark(key.clone(), *time),
            };
            if !ops.is_empty() && weight + op.weight() > REPLAY_CHUNK {
                break;
            }
            weight += op.weight();
            last_seq = *seq;
            ops.push(piped);
        }
        (!ops.is_empty()).then_some(Chunk::Pipeline { last_seq, ops })
    }

    /// Sends one chunk.
    async fn send(&self, conn: &mut L2Connection, chunk: &Chunk) -> redis::RedisResult<()> {
        let ops = match chunk {
            Chunk::Scan { glob, .. } => return self.unlink_matching_with(conn, glob).await,
            Chunk::Pipeline { ops, .. } => ops,
        };
        let mut pipe = SlotPipeline::new(self.deployment.is_cluster());
        for op in ops {
            match op {
                Piped::Unlink(keys) => {
                    // Stamped with the replay's time: later than the invalidation, so at worst a
                    // load that began in between is not written back.
                    self.delete_with_tombstones(&mut pipe, keys, self.clock.now());
                }
                Piped::Mark(key, time) => {
                    pipe.pipe_for(key)
                        .invoke_script(
                            scripts::MARK
                                .key(key)
                                .arg(time.as_micros())
                                .arg(self.mark_retention_ms()),
                        )
                        .ignore();
                }
            }
        }
        pipe.query(conn, &[&scripts::MARK]).await
    }

    /// Replays queued invalidations in order, one replay at a time; every other L2 call waits
    /// for it, so no read overtakes an invalidation. The queue is sent in pipelined chunks and
    /// each chunk leaves the queue once it succeeded: if the replay is interrupted (error or
    /// timeout), the next attempt resumes where this one stopped. Replaying an operation twice
    /// is harmless (deletions and later-wins marks are idempotent).
    pub(super) async fn flush_pending(&self, conn: &mut L2Connection) -> redis::RedisResult<()> {
        let _one_replay = self.flush_lock.lock().await;
        if !self.has_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut replayed = 0usize;
        let mut overflowed = false;
        loop {
            if self.pending_overflow.load(Ordering::Acquire) {
                // Queued operations were dropped: one clear of the namespace covers them.
                let now = self.clock.now();
                self.mark_with(conn, &self.clear_key, now).await?;
                // And tell the other instances, whose queued messages were dropped too (from
                // "instance 0": every instance applies it, this one included).
                let clear = Message {
                    instance: 0,
                    stamp: now,
                    event: Event::Clear,
                };
                clear
                    .xadd(&self.stream_key)
                    .query_async::<redis::Value>(conn)
                    .await?;
                self.pending_overflow.store(false, Ordering::Release);
                overflowed = true;
            }
            let Some(chunk) = self.next_chunk() else {
                break;
            };
            self.send(conn, &chunk).await?;
            // Keep the progress: what was sent and succeeded leaves the queue now. (An overflow
            // meanwhile cleared the queue; then there is nothing of this chunk left to remove.)
            let mut pending = self.pending.lock();
            while pending
                .ops
                .front()
                .is_some_and(|(seq, _)| *seq <= chunk.last_seq())
            {
                pending.ops.pop_front();
            }
            replayed += chunk.len();
        }
        // Then the messages that could not be sent, once Redis holds what they announce.
        self.flush_messages(conn).await?;
        {
            let pending = self.pending.lock();
            let unsent = self.unsent.lock();
            if pending.ops.is_empty()
                && !self.pending_overflow.load(Ordering::Acquire)
                && unsent.is_empty()
                && !self.unsent_overflow.load(Ordering::Acquire)
            {
                self.has_pending.store(false, Ordering::Release);
            }
        }
        tracing::info!(
            replayed,
            overflow = overflowed,
            "replayed invalidations queued while Redis was unavailable"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::tests::unreachable_store;

    fn mark(n: u64) -> Pending {
        Pending::Mark(format!("m{n}"), Timestamp::from_micros(n))
    }

    #[test]
    fn a_pattern_invalidation_is_a_chunk_of_its_own() {
        let store = unreachable_store();
        store.queue(Pending::UnlinkMatching("ns:k:p*".into()));
        store.queue(mark(1));
        assert!(matches!(
            store.next_chunk(),
            Some(Chunk::Scan { last_seq: 0, ref glob }) if glob == "ns:k:p*"
        ));
    }

    #[test]
    fn a_pipeline_stops_before_a_pattern_invalidation_and_at_its_budget() {
        let store = unreachable_store();
        store.queue(mark(1));
        store.queue(Pending::Unlink(vec!["a".into(), "b".into()]));
        store.queue(Pending::UnlinkMatching("ns:k:p*".into()));
        let chunk = store.next_chunk();
        assert!(matches!(chunk, Some(Chunk::Pipeline { last_seq: 1, ref ops }) if ops.len() == 2));

        let store = unreachable_store();
        store.queue(Pending::Unlink(
            (0..REPLAY_CHUNK - 1).map(|i| i.to_string()).collect(),
        ));
        store.queue(mark(1));
        store.queue(mark(2));
        let chunk = store.next_chunk();
        assert!(
            matches!(chunk, Some(Chunk::Pipeline { last_seq: 1, ref ops }) if ops.len() == 2),
            "{REPLAY_CHUNK} commands at most"
        );
        assert!(unreachable_store().next_chunk().is_none(), "an empty queue");
    }
}

//! Invalidation, and the bookkeeping that makes it win races with loads.
//!
//! Two mechanisms keep old values out:
//! - **The log and the gate** (in process). Every load or L2 read takes a ticket (the current
//!   sequence number) before it reads anything, and writes its result back while holding the gate
//!   shared, only if no invalidation affecting its key was logged after its ticket. An
//!   invalidation logs itself while holding the gate exclusively, so a write-back is either fully
//!   before it (and then removed by it) or sees it (and is dropped).
//! - **Marks** (across instances, O(1)). A tag invalidation or a `clear()` records its time in a
//!   mark (locally at once, and in Redis); an entry whose stamp (the time its load started) is not
//!   after every mark that applies to it is stale, wherever it is found. Other instances learn
//!   marks from the backplane (`backplane.rs`), with every L2 read ([`TagClock::apply`]), and
//!   once when they join or resync. Stamps and marks are all read from the engine's
//!   [`Clock`](crate::clock::Clock), Redis's clock: no comparison depends on two machines' wall
//!   clocks agreeing.
//!
//! Owns the log, the gate, the marks and the invalidation path. Never writes values.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::Engine;
use crate::clock::{Clock, Timestamp};
use crate::invalidation::Invalidation;
use crate::key::glob::glob_match;
use crate::store::backplane::Event;
use crate::store::redis::{Marks, Reclaimed};

/// How many recent invalidations the log keeps; a load older than that is not written back.
const LOG_CAPACITY: usize = 4096;

/// A position in the invalidation log, taken before reading, checked before writing back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    seq: u64,
    /// When the ticket was taken: the stamp (`written_at`) of what the load produces.
    pub(crate) at: Timestamp,
}

pub(crate) struct InvalidationLog {
    clock: Arc<Clock>,
    seq: AtomicU64,
    recent: Mutex<VecDeque<(u64, Invalidation)>>,
    gate: tokio::sync::RwLock<()>,
}

impl InvalidationLog {
    pub(crate) fn new(clock: Arc<Clock>) -> Self {
        InvalidationLog {
            clock,
            seq: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            seq: self.seq.load(Ordering::Acquire),
            at: self.clock.now(),
        }
    }

    /// Holds write-backs out while an invalidation is logged.
    pub(crate) async fn exclusive(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// The shared guard if it is free right now (an optional write-back may skip instead of wait).
    pub(crate) fn try_shared(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        self.gate.try_read().ok()
    }

    /// Held by a write-back across its check and its writes.
    pub(crate) async fn shared(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Logs an invalidation; call with the exclusive guard held.
    pub(crate) fn record(&self, what: Invalidation) {
        let mut recent = self.recent.lock();
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        if recent.len() == LOG_CAPACITY {
            recent.pop_front();
        }
        recent.push_back((seq, what));
    }

    /// Whether an invalidation logged after `ticket` affects the key; call with the shared guard.
    pub(crate) fn invalidated_since(&self, ticket: Ticket, key: &str, tags: &[Arc<str>]) -> bool {
        if self.seq.load(Ordering::Acquire) == ticket.seq {
            return false;
        }
        let recent = self.recent.lock();
        match recent.front() {
            Some(&(oldest, _)) if oldest > ticket.seq + 1 => true, // forgotten: assume the worst
            _ => recent
                .iter()
                .rev()
                .take_while(|(s, _)| *s > ticket.seq)
                .any(|(_, w)| w.affects(key, tags)),
        }
    }
}

/// The latest known mark of each tag and of the namespace clear.
///
/// Read on every L1 hit of a tagged entry, so reads are lock-free (an `ArcSwap` snapshot: no
/// shared read counter bouncing between cores); a write copies the map, and happens only when a
/// mark advances. A tag seen without a mark (never invalidated: what an L2 read finds for almost
/// every tag, such as one tag per product) is not a mark: it is only remembered, under a lock, as
/// a tag to read again at a resync. Recording it in the map would copy the whole map once for
/// every new tag: quadratic in the number of tags (a warmup of 20,000 products spent a tenth of
/// its CPU there).
pub(crate) struct TagClock {
    /// The clear mark, in µs since the epoch (a [`Timestamp`] in an atomic).
    clear: AtomicU64,
    /// Tags with a mark.
    tags: ArcSwap<HashMap<Arc<str>, Timestamp>>,
    /// Tags seen without a mark (and not in `tags`).
    unmarked: Mutex<HashSet<Arc<str>>>,
    writer: Mutex<()>,
}

impl TagClock {
    pub(crate) fn new() -> Self {
        TagClock {
            clear: AtomicU64::new(0),
            tags: ArcSwap::from_pointee(HashMap::new()),
            unmarked: Mutex::new(HashSet::new()),
            writer: Mutex::new(()),
        }
    }

    pub(crate) fn observe_clear(&self, at: Timestamp) {
        self.clear.fetch_max(at.as_micros(), Ordering::AcqRel);
    }

    pub(crate) fn observe_tag(&self, tag: &str, at: Timestamp) {
        let advances =
            |map: &HashMap<Arc<str>, Timestamp>| map.get(tag).is_none_or(|&known| at > known);
        if !advances(&self.tags.load()) {
            return;
        }
        if at == Timestamp::EPOCH {
            // No mark: nothing for `is_current` to compare; known for the next resync.
            let mut unmarked = self.unmarked.lock();
            if !unmarked.contains(tag) {
                unmarked.insert(Arc::from(tag));
            }
            return;
        }
        let _one_writer = self.writer.lock();
        let current = self.tags.load_full();
        if !advances(&current) {
            return;
        }
        let mut next = (*current).clone();
        next.insert(Arc::from(tag), at);
        self.tags.store(Arc::new(next));
        self.unmarked.lock().remove(tag);
    }

    /// Applies marks read from Redis (the clear mark, and the marks of `tags`, in order): the one
    /// place where marks other instances set reach this one.
    pub(crate) fn apply(&self, marks: &Marks, tags: &[&str]) {
        self.observe_clear(marks.clear);
        for (tag, &at) in tags.iter().zip(&marks.tags) {
            self.observe_tag(tag, at);
        }
    }

    /// Tags known here (with a mark or seen without one), for the read of their marks at a
    /// resync.
    pub(crate) fn known_tags(&self) -> Vec<Arc<str>> {
        let mut known: Vec<Arc<str>> = self.tags.load().keys().cloned().collect();
        known.extend(self.unmarked.lock().iter().cloned());
        known
    }

    /// Whether an entry stamped `written_at` with these tags is newer than every mark. Inlined
    /// into the L1 hit path, where an entry without tags costs one load and two comparisons.
    #[inline(always)]
    pub(crate) fn is_current<'a>(
        &self,
        written_at: Timestamp,
        tags: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        if written_at.as_micros() <= self.clear.load(Ordering::Acquire) {
            return false;
        }
        let mut tags = tags.into_iter().peekable();
        if tags.peek().is_none() {
            return true;
        }
        self.tags_current(written_at, tags)
    }

    /// The tag marks' part of [`is_current`](TagClock::is_current).
    fn tags_current<'a>(
        &self,
        written_at: Timestamp,
        mut tags: impl Iterator<Item = &'a str>,
    ) -> bool {
        let known = self.tags.load();
        tags.all(|t| known.get(t).is_none_or(|&mark| written_at > mark))
    }
}

impl Engine {
    /// The one path of every invalidation. When it returns, no load that started before it can
    /// write its value into either tier.
    pub(crate) async fn invalidate(&self, what: Invalidation) {
        let now = self.clock.now();
        self.invalidate_locally(&what, now).await;
        tracing::debug!(?what, "invalidated");
        if let Some(l2) = &self.l2 {
            match &what {
                Invalidation::Key(k) => l2.unlink(&[k], now).await,
                Invalidation::Tag(t) => l2.mark(Some(t), now).await,
                Invalidation::Pattern(g) => l2.unlink_matching(g).await,
                Invalidation::All => l2.mark(None, now).await,
            }
            // A read that took its ticket after the first pass may have fetched the old value
            // from Redis before the UNLINK landed, and may be about to copy it into L1: a second
            // pass removes such a copy and makes such a write-back drop it. (Tags and clears need
            // none: their marks already make every value stamped before them stale.)
            if matches!(what, Invalidation::Key(_) | Invalidation::Pattern(_)) {
                self.invalidate_locally(&what, now).await;
            }
            // Then the other instances (after Redis: when they read it next, the old value is
            // gone).
            let event = match what {
                Invalidation::Key(k) => Event::Keys(vec![k]),
                Invalidation::Tag(t) => Event::Tag(t),
                Invalidation::Pattern(g) => Event::Pattern(g),
                Invalidation::All => Event::Clear,
            };
            self.publish(now, event).await;
        }
    }

    /// Logs an invalidation, applies it to L1 and detaches the loads in flight that it affects,
    /// all under the exclusive gate (so no write-back interleaves).
    pub(super) async fn invalidate_locally(&self, what: &Invalidation, now: Timestamp) {
        let _exclusive = self.log.exclusive().await;
        self.log.record(what.clone());
        match what {
            Invalidation::Key(k) => {
                self.l1.remove(k);
                self.flights.detach(|key| key == k);
            }
            Invalidation::Tag(t) => {
                self.marks.observe_tag(t, now);
                self.flights.detach_tagged(t);
            }
            Invalidation::Pattern(g) => {
                let matches = |k: &str| glob_match(g.as_bytes(), k.as_bytes());
                self.l1.remove_matching(matches);
                self.flights.detach(matches);
            }
            Invalidation::All => {
                self.marks.observe_clear(now);
                self.l1.clear();
                self.flights.detach(|_| true);
            }
        }
    }

    /// Deletes from Redis the entries written before the last clear (see
    /// `store/redis/reclaim.rs`); `None` without an L2.
    pub(crate) async fn reclaim_cleared(
        &self,
        keys_per_second: u32,
    ) -> Option<Result<Reclaimed, crate::error::RedisFailure>> {
        match &self.l2 {
            Some(l2) => Some(l2.reclaim_cleared(keys_per_second).await),
            None => None,
        }
    }

    /// Reads from Redis the clear mark and the marks of every tag known here, once: when the
    /// instance starts and after a backplane resync (never polled: the backplane carries them).
    pub(super) async fn refresh_marks(&self) {
        let Some(l2) = &self.l2 else {
            return;
        };
        let tags = self.marks.known_tags();
        let names: Vec<&str> = tags.iter().map(|t| &**t).collect();
        if let Ok(marks) = l2.read_marks(&names).await {
            self.marks.apply(&marks, &names);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_reports_only_invalidations_after_the_ticket() {
        let log = InvalidationLog::new(Arc::new(Clock::new(0)));
        log.record(Invalidation::Key("a".into()));
        let t = log.ticket();
        assert!(!log.invalidated_since(t, "a", &[]));
        log.record(Invalidation::Tag("x".into()));
        assert!(!log.invalidated_since(t, "a", &[]));
        assert!(log.invalidated_since(t, "a", &["x".into()]));
        log.record(Invalidation::Pattern("b*".into()));
        assert!(log.invalidated_since(t, "bee", &[]));
        log.record(Invalidation::All);
        assert!(log.invalidated_since(t, "zzz", &[]));
    }

    #[test]
    fn a_forgotten_ticket_is_treated_as_invalidated() {
        let log = InvalidationLog::new(Arc::new(Clock::new(0)));
        let t = log.ticket();
        for i in 0..LOG_CAPACITY + 1 {
            log.record(Invalidation::Key(format!("other{i}")));
        }
        assert!(log.invalidated_since(t, "mine", &[]));
    }

    #[test]
    fn tag_clock_orders_stamps_and_marks() {
        let c = TagClock::new();
        let at = Timestamp::from_micros;
        assert!(c.is_current(at(10), ["t"]));
        c.observe_tag("t", at(10));
        assert!(!c.is_current(at(10), ["t"]));
        assert!(c.is_current(at(11), ["t"]));
        c.observe_tag("t", at(5)); // an older mark never rewinds
        assert!(!c.is_current(at(10), ["t"]));
        c.observe_clear(at(20));
        assert!(!c.is_current(at(15), []));
        assert!(c.is_current(at(21), ["t"]));
    }

    #[test]
    fn tags_seen_without_a_mark_are_known_for_a_resync_but_are_no_marks() {
        let c = TagClock::new();
        let at = Timestamp::from_micros;
        for i in 0..1_000 {
            c.observe_tag(&format!("product:{i}"), Timestamp::EPOCH);
        }
        assert!(
            c.tags.load().is_empty(),
            "no copy of the mark map per new tag"
        );
        assert_eq!(c.known_tags().len(), 1_000);
        assert!(c.is_current(at(1), ["product:7"]));
        // A mark arriving later moves the tag to the marks; it is known once.
        c.observe_tag("product:7", at(10));
        assert!(!c.is_current(at(10), ["product:7"]));
        assert!(c.is_current(at(11), ["product:7"]));
        assert_eq!(c.known_tags().len(), 1_000);
        // No mark seen after a mark leaves the mark in place.
        c.observe_tag("product:7", Timestamp::EPOCH);
        assert!(!c.is_current(at(10), ["product:7"]));
        assert_eq!(c.known_tags().len(), 1_000);
    }
}

//! Invalidation: what can be invalidated, and the bookkeeping that makes invalidation win races.
//!
//! Every invalidation goes through [`Cache::invalidate_with`](crate::Cache::invalidate_with) with an
//! [`Invalidation`], so that a later broadcast to other instances has one place to hook in.
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
//!   marks with every L2 read and from a periodic refresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::clock::Timestamp;

/// Something to invalidate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Invalidation {
    /// One key (rendered, without the namespace).
    Key(String),
    /// Every entry carrying the tag.
    Tag(String),
    /// Every key matching a Redis glob (`prod:*`), found by SCAN: for operators, not hot paths.
    Pattern(String),
    /// The whole namespace.
    All,
}

impl Invalidation {
    fn affects(&self, key: &str, tags: &[Arc<str>]) -> bool {
        match self {
            Invalidation::Key(k) => k == key,
            Invalidation::Tag(t) => tags.iter().any(|x| **x == **t),
            Invalidation::Pattern(glob) => glob_match(glob.as_bytes(), key.as_bytes()),
            Invalidation::All => true,
        }
    }
}

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
    seq: AtomicU64,
    recent: Mutex<VecDeque<(u64, Invalidation)>>,
    gate: tokio::sync::RwLock<()>,
}

impl InvalidationLog {
    pub(crate) fn new() -> Self {
        InvalidationLog {
            seq: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            seq: self.seq.load(Ordering::Acquire),
            at: Timestamp::now(),
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
/// mark advances.
pub(crate) struct TagClock {
    /// The clear mark, in µs since the epoch (a [`Timestamp`] in an atomic).
    clear: AtomicU64,
    tags: ArcSwap<HashMap<Arc<str>, Timestamp>>,
    writer: Mutex<()>,
}

impl TagClock {
    pub(crate) fn new() -> Self {
        TagClock {
            clear: AtomicU64::new(0),
            tags: ArcSwap::from_pointee(HashMap::new()),
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
        let _one_writer = self.writer.lock();
        let current = self.tags.load_full();
        if !advances(&current) {
            return;
        }
        let mut next = (*current).clone();
        next.insert(Arc::from(tag), at);
        self.tags.store(Arc::new(next));
    }

    /// Tags known here, for the periodic refresh.
    pub(crate) fn known_tags(&self) -> Vec<Arc<str>> {
        self.tags.load().keys().cloned().collect()
    }

    /// Whether an entry stamped `written_at` with these tags is newer than every mark.
    #[inline]
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
        let known = self.tags.load();
        tags.all(|t| known.get(t).is_none_or(|&mark| written_at > mark))
    }
}

/// Redis glob matching (`*`, `?`, `[abc]`, `[^a-z]`, `\x`), used to apply pattern invalidations
/// to L1 and to in-flight loads exactly as `SCAN MATCH` applies them to L2.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = Some(p);
                    star_t = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, text[t])
                        && matched
                    {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                    p += 2;
                    t += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_t += 1;
                t = star_t;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == b'['`; returns (matched, index after `]`).
fn class_match(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (
                pattern[i].min(pattern[i + 2]),
                pattern[i].max(pattern[i + 2]),
            );
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= pattern[i] == c;
            i += 1;
        }
    }
    (i < pattern.len()).then_some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_redis() {
        let m = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes());
        assert!(m("prod:*", "prod:1"));
        assert!(m("prod:*", "prod:"));
        assert!(!m("prod:*", "prods:cat:1"));
        assert!(m("prods:cat:7:*", "prods:cat:7:page:1"));
        assert!(!m("prods:cat:7:*", "prods:cat:77:page:1"));
        assert!(m("a?c", "abc"));
        assert!(m("a[bc]d", "acd"));
        assert!(!m("a[^bc]d", "acd"));
        assert!(m("a[a-z]d", "aqd"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*:children", "cat:1:children"));
        // escaped values never match a glob meant for another key
        assert!(!m("prod:1*", "prod:%2A"));
    }

    #[test]
    fn log_reports_only_invalidations_after_the_ticket() {
        let log = InvalidationLog::new();
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
        let log = InvalidationLog::new();
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
}

//! L1: a moka cache of decoded values, bounded in bytes (each entry weighs its encoded size).
//!
//! Expiry is tiercache's, not moka's: every entry carries its stamp (fresh until, stale until),
//! which each read checks anyway. Configuring moka's per-entry expiry as well made every hit read
//! moka's clock (about a sixth of a hit's instructions), so moka only bounds the bytes; an expired
//! entry is removed when a read finds it, or by [`MemoryStore::remove_expired`], which the cache
//! runs periodically.
//!
//! Owns entries and bytes. Knows nothing of key patterns (an entry carries its pattern's id, an
//! opaque number handed back on eviction), of invalidation or of statistics: it never imports
//! `key`, `engine` or the facade.

use std::any::Any;
use std::sync::Arc;

use compact_str::CompactString;
use moka::notification::RemovalCause;

use crate::clock::Timestamp;
use crate::codec::Stamp;

/// Bytes charged per entry beyond its key and its value's decoded size: what moka keeps per entry
/// (its entry, the key's allocation, deque and hash-table nodes), the value's `Arc` header and
/// this entry. Measured with `l1-footprint` (benches/): an L1 of one-byte values holds about
/// 360 bytes per entry.
const ENTRY_OVERHEAD: u32 = 360;

/// A decoded value in L1. `value` is `None` for a cached absence.
///
/// Kept inline in moka's entry, which clones it on every read: a hit then touches no allocation
/// of tiercache's own and increments one reference count, the value's (as a raw moka `get` of an
/// `Arc` does). So the entry names its pattern by id rather than holding a reference to it, and
/// holds tags only when it has some, in an allocation of its own (never a count shared with
/// other entries, which concurrent hits on different keys would contend on).
#[derive(Clone)]
pub(crate) struct L1Entry {
    pub(crate) value: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) stamp: Stamp,
    /// From when a read should trigger a refresh-ahead ([`Timestamp::NEVER`]: never).
    pub(crate) refresh_at: Timestamp,
    tags: Option<Arc<[Arc<str>]>>,
    /// The id of the entry's key pattern: opaque here, handed to the eviction listener.
    pattern_id: u32,
    weight: u32,
}

impl L1Entry {
    /// An entry of pattern `pattern_id`, weighing `decoded_size` (plus the per-entry overhead).
    pub(crate) fn new(
        value: Option<Arc<dyn Any + Send + Sync>>,
        stamp: Stamp,
        tags: &[Arc<str>],
        pattern_id: u32,
        decoded_size: usize,
    ) -> Self {
        let weight = u32::try_from(decoded_size)
            .unwrap_or(u32::MAX)
            .saturating_add(ENTRY_OVERHEAD);
        L1Entry {
            value,
            stamp,
            refresh_at: Timestamp::NEVER,
            tags: (!tags.is_empty()).then(|| Arc::from(tags)),
            pattern_id,
            weight,
        }
    }

    /// The entry, due for a refresh-ahead from `at`.
    pub(crate) fn refreshing_at(mut self, at: Timestamp) -> Self {
        self.refresh_at = at;
        self
    }

    /// The entry's tags.
    #[inline]
    pub(crate) fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().flat_map(|t| t.iter().map(|t| &**t))
    }
}

/// The L1 tier. With a capacity of 0 it is disabled: nothing is stored, every read misses.
pub(crate) struct MemoryStore {
    /// Keys are inline strings: moka keeps each key in an allocation of its own, and a key of up
    /// to 24 bytes then needs no second one, so a lookup's key comparison reads one line less.
    cache: moka::sync::Cache<CompactString, L1Entry, foldhash::quality::RandomState>,
    capacity: u64,
    enabled: bool,
}

impl MemoryStore {
    /// A store of `capacity_bytes`; `on_eviction` receives the pattern id of each entry evicted
    /// for room.
    pub(crate) fn new(
        capacity_bytes: u64,
        on_eviction: impl Fn(u32) + Send + Sync + 'static,
    ) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &CompactString, entry: &L1Entry| {
                entry
                    .weight
                    .saturating_add(u32::try_from(key.len()).unwrap_or(u32::MAX))
            })
            .eviction_listener(move |_key, entry: L1Entry, cause| {
                if cause == RemovalCause::Size {
                    on_eviction(entry.pattern_id);
                }
            })
            // Keys are short strings: foldhash (randomly seeded, "quality" variant) hashes them
            // several times faster than the default SipHash.
            .build_with_hasher(foldhash::quality::RandomState::default());
        MemoryStore {
            cache,
            capacity: capacity_bytes,
            enabled: capacity_bytes > 0,
        }
    }

    /// Whether the store holds anything (a capacity above 0). Without it, reads skip what only
    /// an L1 copy needs.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<L1Entry> {
        if !self.enabled {
            return None;
        }
        self.cache.get(key)
    }

    pub(crate) fn insert(&self, key: &str, entry: L1Entry) {
        if self.enabled {
            self.cache.insert(CompactString::from(key), entry);
        }
    }

    /// Removes the entry under `key` if it was written before `at`.
    pub(crate) fn remove_if_older(&self, key: &str, at: Timestamp) {
        if self
            .cache
            .get(key)
            .is_some_and(|current| current.stamp.written_at < at)
        {
            self.cache.invalidate(key);
        }
    }

    pub(crate) fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Removes every entry whose key satisfies `matches` (an operator's pattern invalidation).
    pub(crate) fn remove_matching(&self, matches: impl Fn(&str) -> bool) {
        self.remove_where(|key, _| matches(key));
    }

    /// Removes the entries past their stale window at `now`.
    pub(crate) fn remove_expired(&self, now: Timestamp) {
        self.remove_where(|_, entry| entry.stamp.stale_until <= now);
    }

    /// Removes every entry that `doomed` selects: a walk over the whole cache.
    fn remove_where(&self, doomed: impl Fn(&str, &L1Entry) -> bool) {
        let keys: Vec<Arc<CompactString>> = self
            .cache
            .iter()
            .filter(|(k, e)| doomed(k, e))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.cache.invalidate(key.as_str());
        }
    }

    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// (entries, weighted bytes, capacity bytes), after pending maintenance.
    pub(crate) fn usage(&self) -> (u64, u64, u64) {
        self.cache.run_pending_tasks();
        (
            self.cache.entry_count(),
            self.cache.weighted_size(),
            self.capacity,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(written_at: u64, value: &'static str) -> L1Entry {
        entry_until(written_at, u64::MAX / 2, value)
    }

    fn entry_until(written_at: u64, until: u64, value: &'static str) -> L1Entry {
        let stamp = Stamp {
            written_at: Timestamp::from_micros(written_at),
            fresh_until: Timestamp::from_micros(until),
            stale_until: Timestamp::from_micros(until),
        };
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        L1Entry::new(Some(value), stamp, &[], 0, 8)
    }

    fn value_of(store: &MemoryStore, key: &str) -> &'static str {
        let found = store.get(key).expect("cached");
        let value = found.value.clone().expect("a value");
        *value.downcast::<&'static str>().expect("a &str")
    }

    #[test]
    fn the_sweep_removes_expired_entries_only() {
        let store = MemoryStore::new(1 << 20, |_| {});
        store.insert("prod:1", entry_until(1, 100, "expired"));
        store.insert("prod:2", entry_until(1, 300, "alive"));
        store.remove_expired(Timestamp::from_micros(200));
        assert!(store.get("prod:1").is_none());
        assert_eq!(value_of(&store, "prod:2"), "alive");
        assert_eq!(store.usage().0, 1);
    }

    #[test]
    fn remove_if_older_keeps_entries_written_since() {
        let store = MemoryStore::new(1 << 20, |_| {});
        store.insert("prod:1", entry(5, "first"));
        store.remove_if_older("prod:1", Timestamp::from_micros(5));
        assert_eq!(value_of(&store, "prod:1"), "first", "not older than 5");
        store.remove_if_older("prod:1", Timestamp::from_micros(6));
        assert!(store.get("prod:1").is_none());
    }
}

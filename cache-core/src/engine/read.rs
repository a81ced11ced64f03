//! Reads: the L1 probe every single-key read starts with (the hit path), L2 reads (one round
//! trip, marks included), and the copies of fresh L2 values into L1.
//!
//! The L1 hit path is synchronous and allocation-free: a moka look-up by the rendered text (one
//! reference count, the value's), the marks check, the expiry check against the coarse clock, a
//! counter. Keep it so: no `Arc` clone, no allocation, no `dyn` call, no `.await` added here.
//!
//! Never writes to L2 and never runs a loader; the only L1 writes are copies of L2 values.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Engine;
use super::invalidate::Ticket;
use crate::clock::Timestamp;
use crate::codec::{self, Stamp};
use crate::error::RedisFailure;
use crate::key::{Key, Pattern, Tags};
use crate::metrics::bump;
use crate::store::memory::L1Entry;
use crate::store::redis::Entries;
use crate::ttl::TtlPolicy;

/// What a lookup found in one tier.
pub(super) enum Found<T> {
    Fresh(T),
    Stale(T),
    Missing,
}

/// What a single-key read answers. `Option<Arc<V>>`: a cached absence (`None`) is an answer, for
/// loaders that may find nothing. `Arc<V>` (`get_or_load`, whose loader always yields a value):
/// a cached absence, which another caller of the same key stored, is no answer, and the loader
/// runs.
pub(crate) trait Answer<V>: Clone + Send + Sync + 'static {
    /// The answer a cached value (or absence) gives, if it gives one.
    fn from_cached(value: Option<Arc<V>>) -> Option<Self>;

    /// What this answer caches (`None`: an absence).
    fn to_cached(&self) -> Option<Arc<V>>;
}

impl<V: Send + Sync + 'static> Answer<V> for Option<Arc<V>> {
    #[inline]
    fn from_cached(value: Option<Arc<V>>) -> Option<Self> {
        Some(value)
    }

    fn to_cached(&self) -> Option<Arc<V>> {
        self.clone()
    }
}

impl<V: Send + Sync + 'static> Answer<V> for Arc<V> {
    #[inline]
    fn from_cached(value: Option<Arc<V>>) -> Option<Self> {
        value
    }

    fn to_cached(&self) -> Option<Arc<V>> {
        Some(Arc::clone(self))
    }
}

/// What the L1 probe found.
pub(crate) enum Probe<A> {
    /// A fresh answer, counted as an L1 hit.
    Hit(A),
    /// None fresh; perhaps a stale one, usable if the load fails (fail-safe).
    Miss { stale: Option<A> },
}

/// A value read from L2, ready for L1 (without an L1, its `tags` are the key's and its
/// `decoded_size` is 0: nothing reads them).
pub(super) struct FromL2<V> {
    pub(super) value: Option<Arc<V>>,
    pub(super) stamp: Stamp,
    pub(super) tags: Tags,
    /// [`codec::decoded_size_estimate`] of the payload: what the value weighs in L1.
    pub(super) decoded_size: usize,
}

/// What a read of many keys found, per key in key order.
pub(super) struct Lookup<V> {
    /// `Some(value)` where fresh in either tier (`Some(None)`: a cached absence).
    pub(super) fresh: Vec<Option<Option<Arc<V>>>>,
    /// Stale values, usable for fail-safe (`Some(None)`: a stale absence).
    pub(super) stale: Vec<Option<Option<Arc<V>>>>,
    /// The indices of the keys found fresh in neither tier.
    pub(super) missing: Vec<usize>,
}

impl Engine {
    /// The fast path of every single-key read: a fresh L1 hit, counted, or what a miss found in L1
    /// (a stale value for fail-safe), which the caller hands to the load path, boxed so that its
    /// large future is not part of every hit's. Inlined into each caller: a hit is then one call
    /// of ours around moka's look-up.
    #[inline(always)]
    pub(crate) fn l1_probe<V, A>(&self, key: &str, pattern: &Pattern) -> Probe<A>
    where
        V: Send + Sync + 'static,
        A: Answer<V>,
    {
        match self.l1_lookup_due::<V>(key, self.clock.coarse_now()).0 {
            Found::Fresh(v) => match A::from_cached(v) {
                Some(hit) => {
                    bump(&pattern.stats().l1_hits);
                    Probe::Hit(hit)
                }
                None => Probe::Miss { stale: None },
            },
            Found::Stale(v) => Probe::Miss {
                stale: A::from_cached(v),
            },
            Found::Missing => Probe::Miss { stale: None },
        }
    }

    /// [`l1_probe`](Engine::l1_probe), and whether a hit is due for a refresh-ahead. On the same
    /// (Redis-corrected) clock as every other probe: the stamps it compares with are on it.
    #[inline]
    pub(crate) fn l1_probe_due<V, A>(&self, key: &str, pattern: &Pattern) -> (Probe<A>, bool)
    where
        V: Send + Sync + 'static,
        A: Answer<V>,
    {
        match self.l1_lookup_due::<V>(key, self.clock.coarse_now()) {
            (Found::Fresh(v), due) => match A::from_cached(v) {
                Some(hit) => {
                    bump(&pattern.stats().l1_hits);
                    (Probe::Hit(hit), due)
                }
                None => (Probe::Miss { stale: None }, false),
            },
            (Found::Stale(v), _) => (
                Probe::Miss {
                    stale: A::from_cached(v),
                },
                false,
            ),
            (Found::Missing, _) => (Probe::Miss { stale: None }, false),
        }
    }

    /// What L1 holds under `key` at `now`. An entry older than a mark that applies to it, or past
    /// its stale window, reads as missing and is removed; one of another type reads as missing.
    #[inline]
    pub(super) fn l1_lookup<V: Send + Sync + 'static>(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Found<Option<Arc<V>>> {
        self.l1_lookup_due::<V>(key, now).0
    }

    /// [`l1_lookup`](Engine::l1_lookup), and whether a fresh entry is due for a refresh-ahead
    /// (its precomputed deadline against the same `now`: one comparison, dropped by the compiler
    /// where the caller ignores it). Inlined into each probe: the hit path is one function.
    #[inline(always)]
    pub(super) fn l1_lookup_due<V: Send + Sync + 'static>(
        &self,
        key: &str,
        now: Timestamp,
    ) -> (Found<Option<Arc<V>>>, bool) {
        let Some(entry) = self.l1.get(key) else {
            return (Found::Missing, false);
        };
        if !self.marks.is_current(entry.stamp.written_at, entry.tags()) {
            self.l1.remove(key);
            return (Found::Missing, false);
        }
        let value = match entry.value {
            None => None,
            Some(any) => match any.downcast::<V>() {
                Ok(v) => Some(v),
                Err(_) => return (Found::Missing, false),
            },
        };
        if now < entry.stamp.fresh_until {
            (Found::Fresh(value), now >= entry.refresh_at)
        } else if now < entry.stamp.stale_until {
            (Found::Stale(value), false)
        } else {
            self.l1.remove(key);
            (Found::Missing, false)
        }
    }

    /// A fresh value from L1, else from L2 (copied into L1); else a counted miss.
    pub(crate) async fn get<V>(&self, key: &Key) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        if let Probe::Hit(hit) = self.l1_probe::<V, Option<Arc<V>>>(key.as_str(), key.pattern()) {
            return hit;
        }
        let ticket = self.log.ticket();
        match self.l2_read_one::<V, Option<Arc<V>>>(key, ticket).await {
            Found::Fresh(value) => value,
            _ => {
                bump(&key.pattern().stats().misses);
                None
            }
        }
    }

    /// One key from L2 (one round trip, marks included), fresh as of `ticket`. A fresh value that
    /// is an answer is copied into L1 (unless invalidated since `ticket`) and counted as an L2 hit.
    pub(super) async fn l2_read_one<V, A>(&self, key: &Key, ticket: Ticket) -> Found<A>
    where
        V: DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
    {
        match self.l2_lookup_one::<V>(key, ticket.at).await {
            Found::Fresh(entry) => match A::from_cached(entry.value.clone()) {
                Some(answer) => {
                    bump(&key.pattern().stats().l2_hits);
                    self.count_fleet_read(key);
                    self.fill_l1([(key, entry)], ticket);
                    Found::Fresh(answer)
                }
                None => Found::Missing,
            },
            Found::Stale(entry) => A::from_cached(entry.value).map_or(Found::Missing, Found::Stale),
            Found::Missing => Found::Missing,
        }
    }

    /// Reads many keys: L1 first, then one L2 round trip for the rest. Results are in key order;
    /// keys found in neither tier are counted as misses.
    pub(crate) async fn get_many<V>(&self, keys: &[Key]) -> Vec<Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let found = self.lookup_many::<V>(keys).await;
        for &i in &found.missing {
            bump(&keys[i].pattern().stats().misses);
        }
        found.fresh.into_iter().map(Option::flatten).collect()
    }

    /// Both tiers for many keys; fresh L2 values are copied into L1.
    pub(super) async fn lookup_many<V>(&self, keys: &[Key]) -> Lookup<V>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let now = self.clock.now();
        let ticket = self.log.ticket();
        let mut found = Lookup {
            fresh: Vec::with_capacity(keys.len()),
            stale: Vec::with_capacity(keys.len()),
            missing: Vec::new(),
        };
        let mut l2_keys = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let stale = match self.l1_lookup::<V>(key.as_str(), now) {
                Found::Fresh(v) => {
                    bump(&key.pattern().stats().l1_hits);
                    found.fresh.push(Some(v));
                    found.stale.push(None);
                    continue;
                }
                Found::Stale(v) => Some(v),
                Found::Missing => None,
            };
            found.fresh.push(None);
            found.stale.push(stale);
            l2_keys.push(i);
        }
        if l2_keys.is_empty() {
            return found;
        }
        let refs: Vec<&Key> = l2_keys.iter().map(|&i| &keys[i]).collect();
        let from_l2 = self.l2_lookup::<V>(&refs, now).await;
        let mut fill = Vec::with_capacity(l2_keys.len());
        for (&i, from_l2) in l2_keys.iter().zip(from_l2) {
            match from_l2 {
                Found::Fresh(entry) => {
                    bump(&keys[i].pattern().stats().l2_hits);
                    self.count_fleet_read(&keys[i]);
                    found.fresh[i] = Some(entry.value.clone());
                    fill.push((&keys[i], entry));
                }
                Found::Stale(entry) => {
                    found.stale[i].get_or_insert(entry.value);
                    found.missing.push(i);
                }
                Found::Missing => found.missing.push(i),
            }
        }
        self.fill_l1(fill, ticket);
        found
    }

    /// Looks keys up in L2 (one round trip, marks included). Returns, per key, what was found.
    pub(super) async fn l2_lookup<V>(&self, keys: &[&Key], now: Timestamp) -> Vec<Found<FromL2<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let texts: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        let mut tags: Vec<&str> = keys
            .iter()
            .flat_map(|k| k.shared_tags().iter().map(|t| &**t))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        let Some(values) = self.l2_fetch(&texts, &tags, keys).await else {
            return keys.iter().map(|_| Found::Missing).collect();
        };
        let mut found = Vec::with_capacity(keys.len());
        for (key, bytes) in keys.iter().zip(values) {
            found.push(match bytes {
                Some(bytes) => self.decode_or_unlink(key, &bytes, now).await,
                None => Found::Missing,
            });
        }
        found
    }

    /// [`l2_lookup`](Engine::l2_lookup) of one key.
    pub(super) async fn l2_lookup_one<V>(&self, key: &Key, now: Timestamp) -> Found<FromL2<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let mut tags: Vec<&str> = key.shared_tags().iter().map(|t| &**t).collect();
        if tags.len() > 1 {
            tags.sort_unstable();
            tags.dedup();
        }
        let values = self
            .l2_fetch(&[key.as_str()], &tags, std::slice::from_ref(&key))
            .await;
        match values.and_then(|mut v| v.next().flatten()) {
            Some(bytes) => self.decode_or_unlink(key, &bytes, now).await,
            None => Found::Missing,
        }
    }

    /// The L2 read of `texts` (the keys' texts) with the marks of `tags`, which it applies; the
    /// entries' bytes, or `None` if Redis did not answer (an error counted for each of `keys`).
    async fn l2_fetch(&self, texts: &[&str], tags: &[&str], keys: &[&Key]) -> Option<Entries> {
        let l2 = self.l2.as_ref()?;
        match l2.read(texts, tags).await {
            Ok((values, marks)) => {
                self.marks.apply(&marks, tags);
                Some(values)
            }
            Err(e) => {
                if !matches!(e, RedisFailure::CircuitOpen) {
                    for key in keys {
                        bump(&key.pattern().stats().l2_errors);
                    }
                }
                None
            }
        }
    }

    /// [`decode_l2`](Engine::decode_l2), deleting from Redis a value that does not decode.
    async fn decode_or_unlink<V>(&self, key: &Key, bytes: &[u8], now: Timestamp) -> Found<FromL2<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.decode_l2(key, bytes, now) {
            Some(found) => found,
            None => {
                if let Some(l2) = &self.l2 {
                    // Boxed: rare, and kept out of every read's future.
                    Box::pin(l2.unlink_best_effort(key.as_str())).await;
                }
                Found::Missing
            }
        }
    }

    /// Decodes an L2 value. A value that does not decode, or whose stamp is implausible (written
    /// in the future: see [`codec::Stamp::check_plausible`]), is counted and is `None` (the
    /// caller deletes it; it is absent).
    fn decode_l2<V>(&self, key: &Key, bytes: &[u8], now: Timestamp) -> Option<Found<FromL2<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        // What only an L1 copy needs (its weight, its own tags) is not computed without an L1.
        let l1 = self.l1.enabled();
        let decoded = codec::decode(bytes).and_then(|env| {
            env.stamp.check_plausible(now, self.max_lifetime)?;
            let value = env.payload.map(codec::decode_value::<V>).transpose()?;
            let size = match env.payload {
                Some(payload) if l1 => codec::decoded_size_estimate(payload),
                _ => 0,
            };
            Ok((env.stamp, env.tags, value, size))
        });
        let (stamp, tags, value, decoded_size) = match decoded {
            Ok(d) => d,
            Err(error) => {
                bump(&key.pattern().stats().decode_errors);
                tracing::warn!(key = %key, %error, "undecodable value in Redis: deleted, reloading");
                return None;
            }
        };
        if !self
            .marks
            .is_current(stamp.written_at, tags.iter().copied())
        {
            return Some(Found::Missing);
        }
        let tags = if !l1
            || tags
                .iter()
                .copied()
                .eq(key.shared_tags().iter().map(|t| &**t))
        {
            key.shared_tags().clone()
        } else {
            tags.iter().map(|t| Arc::<str>::from(*t)).collect()
        };
        let entry = FromL2 {
            value: value.map(Arc::new),
            stamp,
            tags,
            decoded_size,
        };
        Some(if now < stamp.fresh_until {
            Found::Fresh(entry)
        } else if now < stamp.stale_until {
            Found::Stale(entry)
        } else {
            Found::Missing
        })
    }

    /// Copies fresh L2 values into L1, unless invalidated since `ticket`. Synchronous: if an
    /// invalidation holds the gate right now, the copy is skipped (the value was still served; the
    /// next read finds it in L2 again) rather than making the reader wait.
    pub(super) fn fill_l1<'k, V: Send + Sync + 'static>(
        &self,
        items: impl IntoIterator<Item = (&'k Key, FromL2<V>)>,
        ticket: Ticket,
    ) {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() || !self.l1.enabled() {
            return;
        }
        let now = self.clock.now();
        let Some(_shared) = self.log.try_shared() else {
            return;
        };
        for (key, found) in items {
            if self
                .log
                .invalidated_since(ticket, key.as_str(), &found.tags)
            {
                continue;
            }
            let l1_fresh = key
                .pattern()
                .policy()
                .lifetimes(found.value.is_none())
                .map_or(Duration::ZERO, |l| l.l1_fresh);
            let refresh_at = refresh_deadline(key.pattern().policy(), found.stamp);
            let stamp = Stamp {
                fresh_until: found.stamp.fresh_until.min(now.saturating_add(l1_fresh)),
                ..found.stamp
            };
            let value = found.value.map(|v| v as Arc<dyn Any + Send + Sync>);
            let entry = L1Entry::new(
                value,
                stamp,
                &found.tags,
                key.pattern().id(),
                found.decoded_size,
            )
            .refreshing_at(refresh_at);
            // A plain insert: an entry written since `ticket` (a `set`) is refused by the log
            // check above, or dropped by the `set`'s settle pass (`Engine::settle_set`).
            self.l1.insert(key.as_str(), entry);
        }
    }
}

/// When an entry stamped `stamp` is due for a refresh-ahead under `policy`: its `fraction` of the
/// way from its write to the end of its freshness in L2 ([`Timestamp::NEVER`] without one).
pub(super) fn refresh_deadline(policy: &TtlPolicy, stamp: Stamp) -> Timestamp {
    match policy.refresh_ahead_fraction() {
        None => Timestamp::NEVER,
        Some(fraction) => {
            let life = stamp
                .fresh_until
                .saturating_duration_since(stamp.written_at);
            stamp.written_at.saturating_add(life.mul_f64(fraction))
        }
    }
}

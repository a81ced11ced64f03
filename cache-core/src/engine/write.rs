//! Writes to both tiers: write-backs of loaded values ([`WriteMode::Fill`]) and write-throughs of
//! new values, `set` ([`WriteMode::Overwrite`]). Every write holds the invalidation gate shared
//! across its check and its writes, and drops what was invalidated since its ticket, so that an
//! invalidation always wins.
//!
//! Owns encoding, stamping and the write path. Never reads L2 and never runs a loader.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Engine;
use super::invalidate::Ticket;
use super::lease::LeaseGuard;
use super::read::refresh_deadline;
use crate::clock::Timestamp;
use crate::codec::{self, Stamp};
use crate::error::RedisFailure;
use crate::invalidation::Invalidation;
use crate::key::Key;
use crate::metrics::bump;
use crate::store::backplane::Event;
use crate::store::memory::L1Entry;
use crate::store::redis::{EntryWrite, WriteMode};

/// A value to write to both tiers (`None`: a cached absence).
pub(super) struct WriteBack<'k, V> {
    pub(super) key: &'k Key,
    pub(super) value: Option<Arc<V>>,
}

/// A value encoded for L2, with what its L1 entry needs.
struct Encoded<'k, V> {
    item: WriteBack<'k, V>,
    /// The L2 entry's stamp.
    stamp: Stamp,
    l1_fresh: Duration,
    bytes: Vec<u8>,
    decoded_size: usize,
}

impl Engine {
    /// Writes values through to both tiers (`set`, `set_many`, `#[cache_put]`), cached as they
    /// are, not copied. A load of one of these keys still in flight will not overwrite them.
    pub(crate) async fn set_many_shared<V>(&self, entries: Vec<(Key, Arc<V>)>)
    where
        V: Serialize + Send + Sync + 'static,
    {
        {
            let _exclusive = self.log.exclusive().await;
            for (key, _) in &entries {
                self.log.record(Invalidation::Key(key.as_str().to_owned()));
                self.flights.detach(|k| k == key.as_str());
            }
        }
        let ticket = self.log.ticket();
        let (keys, values): (Vec<Key>, Vec<Arc<V>>) = entries.into_iter().unzip();
        let batch = keys
            .iter()
            .zip(values)
            .map(|(key, v)| WriteBack {
                key,
                value: Some(v),
            })
            .collect();
        self.write_back(batch, ticket, WriteMode::Overwrite).await;
        self.settle_set(&keys, ticket).await;
        // The other instances drop their copies (after Redis holds the new values).
        if self.has_l2() {
            let keys = keys.iter().map(|k| k.as_str().to_owned()).collect();
            self.publish(ticket.at, Event::Keys(keys)).await;
        }
    }

    /// The end of a `set` of `keys` (written at `ticket`). A read may have fetched the old value
    /// from Redis before this write landed there, with a ticket taken after the set's first log
    /// record: its copy into L1 (`fill_l1`) passes the log check. Settled here, under the
    /// exclusive gate so that no copy runs meanwhile: any entry of these keys older than this
    /// write is dropped, and the keys are logged again, so that a copy still to come from such a
    /// read is refused.
    async fn settle_set(&self, keys: &[Key], ticket: Ticket) {
        let _exclusive = self.log.exclusive().await;
        for key in keys {
            self.l1.remove_if_older(key.as_str(), ticket.at);
            self.log.record(Invalidation::Key(key.as_str().to_owned()));
        }
    }

    /// Encodes and writes values to L1 and (one pipeline) L2, dropping those invalidated since
    /// `ticket` or already older than a known mark.
    pub(super) async fn write_back<V>(
        &self,
        items: Vec<WriteBack<'_, V>>,
        ticket: Ticket,
        mode: WriteMode,
    ) where
        V: Serialize + Send + Sync + 'static,
    {
        self.write_back_leased(items, ticket, mode, &mut None).await;
    }

    /// [`write_back`](Engine::write_back) by the holder of `lease`, the fleet lease of one of the
    /// items' keys: if that item's L2 write is sent and succeeds, it released the lease in the
    /// same script call and `lease` is emptied; otherwise the caller still has to release it.
    pub(super) async fn write_back_leased<V>(
        &self,
        items: Vec<WriteBack<'_, V>>,
        ticket: Ticket,
        mode: WriteMode,
        lease: &mut Option<LeaseGuard>,
    ) where
        V: Serialize + Send + Sync + 'static,
    {
        let now = self.clock.now();
        let mut oversize: Vec<&Key> = Vec::new();
        let encoded: Vec<Encoded<'_, V>> = items
            .into_iter()
            .filter_map(
                |item| match encode(item, ticket, now, self.max_value_size) {
                    Ok(encoded) => encoded,
                    Err(Oversize(key)) => {
                        oversize.push(key);
                        None
                    }
                },
            )
            .collect();
        if mode == WriteMode::Overwrite && !oversize.is_empty() {
            // A `set` of a value too large to cache must still drop the older value it replaces.
            for key in &oversize {
                self.l1.remove(key.as_str());
                if let Some(l2) = &self.l2 {
                    l2.unlink_best_effort(key.as_str()).await;
                }
            }
        }
        let _shared = self.log.shared().await;
        let mut l2_batch: Vec<EntryWrite<'_>> = Vec::with_capacity(encoded.len());
        let mut releases = false;
        for e in &encoded {
            let key = e.item.key;
            if self
                .log
                .invalidated_since(ticket, key.as_str(), key.shared_tags())
                || !self
                    .marks
                    .is_current(ticket.at, key.shared_tags().iter().map(|t| &**t))
            {
                tracing::debug!(key = %key, "loaded value dropped: invalidated while loading");
                continue;
            }
            self.l1.insert(key.as_str(), l1_entry(e, now));
            let token = lease
                .as_ref()
                .filter(|l| !releases && l.key() == key.as_str())
                .map(LeaseGuard::token);
            releases |= token.is_some();
            l2_batch.push(EntryWrite {
                key: key.as_str(),
                bytes: &e.bytes,
                time_to_live: e.stamp.stale_until.saturating_duration_since(now),
                lease: token,
            });
        }
        let Some(l2) = self.l2.as_ref().filter(|_| !l2_batch.is_empty()) else {
            return;
        };
        match l2.write(&l2_batch, ticket.at, mode).await {
            Ok(()) => {
                if let Some(released) = lease.take_if(|_| releases) {
                    released.released_by_write();
                }
            }
            Err(RedisFailure::CircuitOpen) => {}
            Err(_) => {
                for e in &encoded {
                    bump(&e.item.key.pattern().stats().l2_errors);
                }
            }
        }
    }
}

/// The L1 entry of a value written back at `now`: its L2 stamp, fresh in L1 no longer than the
/// pattern's L1 freshness.
fn l1_entry<V: Send + Sync + 'static>(e: &Encoded<'_, V>, now: Timestamp) -> L1Entry {
    let key = e.item.key;
    let l1_stamp = Stamp {
        fresh_until: now.saturating_add(e.l1_fresh).min(e.stamp.fresh_until),
        ..e.stamp
    };
    let value = e
        .item
        .value
        .clone()
        .map(|v| v as Arc<dyn Any + Send + Sync>);
    L1Entry::new(
        value,
        l1_stamp,
        key.shared_tags(),
        key.pattern().id(),
        e.decoded_size,
    )
    .refreshing_at(refresh_deadline(key.pattern().policy(), e.stamp))
}

/// A value whose encoded form exceeds its pattern's maximum size: served, not cached.
struct Oversize<'k>(&'k Key);

/// Stamps and encodes one value loaded (or written) as of `ticket`; `Ok(None)` when its pattern
/// does not cache it (an absence without a negative TTL) or it does not serialize, `Err` when it
/// encodes to more than the pattern's maximum size (`default_max_size` unless its policy sets one;
/// counted here).
fn encode<V: Serialize>(
    item: WriteBack<'_, V>,
    ticket: Ticket,
    now: Timestamp,
    default_max_size: usize,
) -> Result<Option<Encoded<'_, V>>, Oversize<'_>> {
    let policy = item.key.pattern().policy();
    let Some(life) = policy.lifetimes(item.value.is_none()) else {
        return Ok(None);
    };
    let fresh_until = now.saturating_add(life.l2_fresh);
    let stamp = Stamp {
        written_at: ticket.at,
        fresh_until,
        stale_until: fresh_until.saturating_add(life.stale),
    };
    match codec::encode(item.value.as_deref(), stamp, item.key.shared_tags()) {
        Ok((bytes, _)) if bytes.len() > policy.max_value_size().unwrap_or(default_max_size) => {
            bump(&item.key.pattern().stats().oversize);
            tracing::debug!(key = %item.key, bytes = bytes.len(), "value not cached: larger than the pattern's max size");
            Err(Oversize(item.key))
        }
        Ok((bytes, payload_start)) => {
            let decoded_size = codec::decoded_size_estimate(&bytes[payload_start..]);
            Ok(Some(Encoded {
                item,
                stamp,
                l1_fresh: life.l1_fresh,
                bytes,
                decoded_size,
            }))
        }
        Err(error) => {
            tracing::warn!(key = %item.key, %error, "value not cached: it does not serialize");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::l1_cache;
    use crate::engine::read::FromL2;

    /// A read that fetched the old value from L2 with a ticket taken while a `set` of the key was
    /// under way copies it into L1 either before the set settles (the settle pass drops it) or
    /// after (the log refuses it): never does the older value stay in L1.
    #[tokio::test]
    async fn a_copy_of_an_older_l2_value_never_outlives_a_set() {
        let (cache, p) = l1_cache().await;
        let engine = cache.engine();
        let key = p.key(&[&1]).unwrap();
        let far = Timestamp::from_micros(u64::MAX / 2);
        let old = |ticket: Ticket| FromL2 {
            value: Some(Arc::new(String::from("old"))),
            stamp: Stamp {
                written_at: Timestamp::from_micros(ticket.at.as_micros() - 1),
                fresh_until: far,
                stale_until: far,
            },
            tags: key.shared_tags().clone(),
            decoded_size: 3,
        };
        // The set, step by step as `set_many_shared` runs it; the reads' tickets are taken after
        // its first record.
        {
            let _exclusive = engine.log.exclusive().await;
            engine
                .log
                .record(Invalidation::Key(key.as_str().to_owned()));
        }
        let (early, late) = (engine.log.ticket(), engine.log.ticket());
        let set_ticket = engine.log.ticket();
        let new = WriteBack {
            key: &key,
            value: Some(Arc::new(String::from("new"))),
        };
        engine
            .write_back(vec![new], set_ticket, WriteMode::Overwrite)
            .await;
        engine.fill_l1(vec![(&key, old(early))], early);
        assert!(
            engine.l1.get(key.as_str()).is_some(),
            "the early copy lands"
        );
        engine
            .settle_set(std::slice::from_ref(&key), set_ticket)
            .await;
        assert!(
            engine.l1.get(key.as_str()).is_none(),
            "the settle pass drops the early copy"
        );
        engine.fill_l1(vec![(&key, old(late))], late);
        assert!(
            engine.l1.get(key.as_str()).is_none(),
            "the log refuses the late copy"
        );
    }
}

//! Fleet popularity: the instances of a namespace count, in Redis, the keys they read most, so
//! that a new instance can warm its L1 from them without touching the database
//! ([`Engine::warm_from_fleet`]).
//!
//! Counting is sampled, one read in [`FleetSampler`]'s `every`, and only on the reads that go
//! to Redis anyway (L2 hits and loads): the L1 hit path never sees it. A sampled read costs one
//! pipelined `ZINCRBY` on a spawned task (the reader does not wait for it), counted `every`
//! times so that scores estimate reads. One sorted set per key pattern (`ns:p:<template>`),
//! kept by the store (`store/redis/popularity.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use serde::de::DeserializeOwned;

use super::Engine;
use super::read::Found;
use crate::error::RedisFailure;
use crate::key::{Key, Pattern};

/// Keys read from Redis per round trip while warming.
const WARM_BATCH: usize = 500;

/// Samples one read in `every` (never with `every == 0`).
#[derive(Debug)]
pub(crate) struct FleetSampler {
    every: u32,
    reads: AtomicU32,
}

impl FleetSampler {
    pub(crate) fn new(every: u32) -> Self {
        FleetSampler {
            every,
            reads: AtomicU32::new(0),
        }
    }

    #[inline]
    fn sample(&self) -> bool {
        self.every != 0 && self.reads.fetch_add(1, Relaxed).is_multiple_of(self.every)
    }
}

impl Engine {
    /// Counts a read of `key` that went to Redis (an L2 hit or a load), one in `every`.
    #[inline]
    pub(super) fn count_fleet_read(&self, key: &Key) {
        if !self.fleet.sample() {
            return;
        }
        let Some(l2) = &self.l2 else {
            return;
        };
        let (l2, set, key, by) = (
            Arc::clone(l2),
            key.pattern().template().to_owned(),
            key.as_str().to_owned(),
            self.fleet.every,
        );
        tokio::spawn(async move { l2.count_reads(&set, &key, by).await });
    }

    /// Copies into L1 the fresh L2 values of the `limit` keys of `pattern` that the fleet reads
    /// most (entries already in L1 are left alone); returns how many fresh values it found. Reads
    /// Redis only (one `ZREVRANGE`, then one `MGET` per [`WARM_BATCH`] keys), never a loader, and
    /// counts no hits. `V` is the pattern's value type, as for any read.
    pub(crate) async fn warm_from_fleet<V>(
        &self,
        pattern: &Pattern,
        limit: usize,
    ) -> Result<usize, RedisFailure>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let Some(l2) = &self.l2 else {
            return Ok(0);
        };
        let texts = l2.most_read(pattern.template(), limit).await?;
        let tags = pattern
            .static_tags()
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()));
        let mut warmed = 0;
        for chunk in texts.chunks(WARM_BATCH) {
            let keys: Vec<Key> = chunk
                .iter()
                .filter(|text| self.l1.get(text).is_none())
                .map(|text| pattern.key_from_parts(text, tags.clone()))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let refs: Vec<&Key> = keys.iter().collect();
            let ticket = self.log.ticket();
            let found = self.l2_lookup::<V>(&refs, ticket.at).await;
            let fill: Vec<_> = refs
                .into_iter()
                .zip(found)
                .filter_map(|(key, found)| match found {
                    Found::Fresh(entry) => Some((key, entry)),
                    _ => None,
                })
                .collect();
            warmed += fill.len();
            self.fill_l1(fill, ticket);
        }
        Ok(warmed)
    }
}

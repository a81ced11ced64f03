//! Refresh-ahead: a read of an entry in the last fraction of its TTL (its pattern's
//! [`TtlPolicy::refresh_ahead`](crate::TtlPolicy::refresh_ahead)) is answered at once, and one
//! background reload runs in the fleet, so a key read often never expires under traffic.
//!
//! The check on the L1 hit path is one comparison: each L1 entry carries its refresh deadline,
//! computed when it is written ([`super::read`]), compared with the clock the hit reads anyway.
//! A hit past it claims the key in this process (one refresh per key at a time), and the claim's
//! task, spawned, takes the fleet lease ([`super::lease`]) and reloads. An instance that finds the
//! lease taken, or finds in L2 a value written after its own copy, does not reload: it waits for
//! the other instance's value in L2 (bounded by the lease wait) and copies it into L1, which also
//! gives its L1 entry the new deadline.
//!
//! Owns the claims and the background reload. Needs a loader that can run on its own task
//! (`Send + 'static`): [`Cache::get_or_refresh`](crate::Cache::get_or_refresh).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Engine;
use super::invalidate::Ticket;
use super::lease::LeaseGuard;
use super::load::Loaded;
use super::read::{Answer, Found};
use super::write::WriteBack;
use crate::clock::Timestamp;
use crate::key::Key;
use crate::metrics::bump;
use crate::spans::{self, Outcome};
use crate::store::redis::{Acquired, WriteMode};

/// The keys this process is refreshing.
#[derive(Default)]
pub(crate) struct Refreshing {
    keys: Arc<Mutex<HashSet<String, foldhash::quality::RandomState>>>,
}

/// A claim on refreshing one key in this process; released when dropped.
pub(crate) struct RefreshClaim {
    keys: Arc<Mutex<HashSet<String, foldhash::quality::RandomState>>>,
    key: String,
}

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        self.keys.lock().remove(&self.key);
    }
}

impl Engine {
    /// Claims the refresh of `key` in this process, unless it is being refreshed already.
    pub(crate) fn claim_refresh(&self, key: &str) -> Option<RefreshClaim> {
        let mut keys = self.refreshing.keys.lock();
        if keys.contains(key) {
            return None;
        }
        keys.insert(key.to_owned());
        Some(RefreshClaim {
            keys: Arc::clone(&self.refreshing.keys),
            key: key.to_owned(),
        })
    }

    /// The background reload of a refresh-ahead of `key`, under `claim`. The loader's answer is
    /// written back as a load's is (unless it says not to cache it).
    pub(crate) async fn refresh_ahead<V, A, E, F, Fut>(
        self: Arc<Self>,
        claim: RefreshClaim,
        key: Key,
        loader: F,
    ) where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<A>, E>>,
    {
        let ticket = self.log.ticket();
        let ours = self
            .l1
            .get(key.as_str())
            .map_or(Timestamp::EPOCH, |e| e.stamp.written_at);
        let mut lease: Option<LeaseGuard> = None;
        if let Some(l2) = self.l2.as_ref().filter(|l2| l2.serving()) {
            // Another instance may have refreshed already.
            if self.adopt_newer::<V>(&key, ticket, ours).await {
                return;
            }
            if self.lease.enabled && key.pattern().policy().leased() {
                let token = rand::random::<u64>();
                // The entry is in Redis (it is being refreshed): a plain `SET NX`.
                match l2
                    .acquire_lease(key.as_str(), token, self.lease.ttl, false)
                    .await
                {
                    Ok(Acquired::Taken) => {
                        lease = Some(LeaseGuard::start(l2, key.as_str(), token, self.lease.ttl))
                    }
                    Ok(Acquired::Held | Acquired::EntryExists) => {
                        self.wait_for_newer::<V>(&key, ticket, ours).await;
                        return;
                    }
                    Err(_) => return,
                }
                // Its holder may have written and released between the read and the lease.
                if self.adopt_newer::<V>(&key, ticket, ours).await {
                    if let Some(lease) = lease {
                        lease.release().await;
                    }
                    return;
                }
            }
        }
        let stats = key.pattern().stats();
        bump(&stats.refresh_aheads);
        let started = Instant::now();
        let span = spans::refresh_ahead(&key);
        let result = loader().instrument(span.clone()).await;
        spans::record(&span, Outcome::of(&result));
        stats.record_load(started.elapsed(), result.is_ok());
        match result {
            Ok(loaded) => {
                if loaded.cache {
                    let write = WriteBack {
                        key: &key,
                        value: loaded.value.to_cached(),
                    };
                    self.write_back_leased(vec![write], ticket, WriteMode::Fill, &mut lease)
                        .await;
                }
            }
            Err(_) => {
                tracing::debug!(key = %key, "refresh-ahead failed: the entry expires as usual");
            }
        }
        if let Some(lease) = lease {
            lease.release().await;
        }
        drop(claim);
    }

    /// Copies `key`'s L2 value into L1 if it was written after `ours`; `true` if it was.
    async fn adopt_newer<V>(&self, key: &Key, ticket: Ticket, ours: Timestamp) -> bool
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.l2_lookup_one::<V>(key, Timestamp::now()).await {
            Found::Fresh(entry) if entry.stamp.written_at > ours => {
                self.fill_l1([(key, entry)], ticket);
                true
            }
            _ => false,
        }
    }

    /// Waits (polling L2, bounded by the lease wait) for another instance's refreshed value.
    async fn wait_for_newer<V>(&self, key: &Key, ticket: Ticket, ours: Timestamp)
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let started = Instant::now();
        let mut backoff = super::lease::FIRST_BACKOFF;
        while started.elapsed() < self.lease.wait {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(super::lease::MAX_BACKOFF);
            if self.adopt_newer::<V>(key, ticket, ours).await {
                return;
            }
        }
    }
}

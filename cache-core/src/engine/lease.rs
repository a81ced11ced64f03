//! Fleet leases: on an L2 miss, one instance of the fleet runs the loader. The first caller takes
//! a short lease in Redis (`SET ns:l:<key> <token> NX PX <ttl>`, in a script that refuses when the
//! entry is in Redis already: then it is read, as another instance loaded it since this caller's
//! read missed), renews it while its loader runs
//! (a compare-and-pexpire script every third of the lease's time) and releases it with the
//! write-back (the write script deletes the lease after writing the entry, in the same call, only
//! while it holds this caller's token), or, when nothing is written back (the loader failed,
//! `unless` vetoed caching, an invalidation dropped the value, the write failed), with a
//! compare-and-delete script of its own. Callers of other instances that find the lease
//! taken wait for the value: they poll L2 with a short backoff (5 ms doubling to 50 ms), and at
//! each poll that still finds no value try to take the lease themselves, so that when a holder
//! releases without a value (its loader failed, or `unless` vetoed caching) or dies (its lease
//! expires, at most one lease time after its last renewal) one waiter takes over. After the wait
//! timeout a waiter loads by itself. A waiter never fails because of the lease: a Redis error, an
//! open circuit or a timeout while taking the lease or waiting means "load yourself".
//!
//! Within one process single flight ([`super::single_flight`]) already makes one caller per key
//! the leader; only leaders take leases, so a fleet of N instances makes at most N lease attempts
//! per cold key, however many callers each has. A leader that finds the lease held by an older
//! leader of its own process (detached from its callers by an invalidation) takes the lease over
//! instead of waiting (`store/redis/lease.rs`): measured under the catalog's load with 2 % writes,
//! such waits were about 3 % of requests, each 5 ms or more.
//!
//! Owns the lease's timing, its owner tokens, the renewal task and the waiting. The Redis commands
//! are the store's (`store/redis/lease.rs`); the load around it is [`super::load`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::Engine;
use super::invalidate::Ticket;
use super::read::{Answer, Found};
use crate::error::RedisFailure;
use crate::key::Key;
use crate::metrics::bump;
use crate::store::redis::{Acquired, RedisStore};

/// How fleet leases are taken and waited for (the builder's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseSettings {
    /// Leases are taken at all (and the pattern's policy allows them).
    pub(crate) enabled: bool,
    /// How long a lease lasts without renewal: how long a crashed holder wedges its key at most.
    pub(crate) ttl: Duration,
    /// How long a waiter waits for another instance's value before loading by itself.
    pub(crate) wait: Duration,
}

/// The first poll's delay; each next one doubles, up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(5);
pub(super) const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// What taking the lease of a key came to.
pub(super) enum Leased<A> {
    /// Another instance loaded the value while this caller waited.
    Served(A),
    /// This caller holds the lease: it loads, writes back, then releases.
    Held(LeaseGuard),
    /// No lease (disabled, Redis not serving, an error, or the wait timed out): load alone.
    Alone,
}

/// A lease held by this instance. Renewed in the background until [`LeaseGuard::release`];
/// dropped unreleased (a cancelled load), the renewal stops and the lease expires by itself.
pub(super) struct LeaseGuard {
    l2: Arc<RedisStore>,
    key: Arc<str>,
    token: u64,
    renewal: JoinHandle<()>,
}

impl LeaseGuard {
    /// A lease just taken with `token`, renewed from now on.
    pub(super) fn start(l2: &Arc<RedisStore>, key: &str, token: u64, ttl: Duration) -> Self {
        LeaseGuard {
            renewal: spawn_renewal(l2, key, token, ttl),
            l2: Arc::clone(l2),
            key: Arc::from(key),
            token,
        }
    }

    /// The key the lease is for.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The owner token the lease was taken with.
    pub(super) fn token(&self) -> u64 {
        self.token
    }

    /// Stops the renewal of a lease that a write-back released in its own script call.
    pub(super) fn released_by_write(self) {
        self.renewal.abort();
    }

    /// Stops the renewal and deletes the lease if it is still this guard's.
    pub(super) async fn release(self) {
        self.renewal.abort();
        if let Err(e) = self.l2.release_lease(&self.key, self.token).await {
            tracing::debug!(key = %self.key, error = %e, "lease release failed: it expires by itself");
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewal.abort();
        self.l2.forget_lease(&self.key, self.token);
    }
}

impl Engine {
    /// After an L2 miss of `key`: takes the fleet lease, or waits for the value another instance
    /// loads under it. `ticket` is the load's (L2 values found while waiting are filled into L1
    /// under it).
    pub(super) async fn lease_or_wait<V, A>(&self, key: &Key, ticket: Ticket) -> Leased<A>
    where
        V: DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
    {
        let settings = self.lease;
        let Some(l2) = self.l2.as_ref().filter(|l2| l2.serving()) else {
            return Leased::Alone;
        };
        if !settings.enabled || !key.pattern().policy().leased() {
            return Leased::Alone;
        }
        let stats = key.pattern().stats();
        let token = rand::random::<u64>();
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut waited = false;
        // Until an entry found in Redis turns out not to be an answer (stale, undecodable): then
        // the lease is taken whatever is there.
        let mut unless_entry = true;
        loop {
            match l2
                .acquire_lease_as_leader(key.as_str(), token, settings.ttl, unless_entry)
                .await
            {
                Ok(Acquired::Taken) => {
                    return Leased::Held(LeaseGuard::start(l2, key.as_str(), token, settings.ttl));
                }
                Ok(Acquired::EntryExists) => {
                    // Written since this caller's read missed (another instance's load).
                    if let Found::Fresh(answer) = self.l2_read_one::<V, A>(key, ticket).await {
                        return Leased::Served(answer);
                    }
                    unless_entry = false;
                    continue;
                }
                Ok(Acquired::Held) => {}
                Err(e) => {
                    if !matches!(e, RedisFailure::CircuitOpen) {
                        bump(&stats.l2_errors);
                    }
                    return Leased::Alone;
                }
            }
            if started.elapsed() >= settings.wait {
                bump(&stats.lease_timeouts);
                tracing::debug!(key = %key, waited = ?started.elapsed(), "lease wait timed out: loading here");
                return Leased::Alone;
            }
            if !waited {
                waited = true;
                bump(&stats.lease_waits);
            }
            let remaining = settings.wait.saturating_sub(started.elapsed());
            tokio::time::sleep(backoff.min(remaining)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if !l2.serving() {
                return Leased::Alone;
            }
            if let Found::Fresh(answer) = self.l2_read_one::<V, A>(key, ticket).await {
                return Leased::Served(answer);
            }
        }
    }
}

/// Renews the lease every third of its time while the guard lives; stops when it is no longer
/// this token's (expired and taken by another instance) or Redis fails twice in a row.
fn spawn_renewal(l2: &Arc<RedisStore>, key: &str, token: u64, ttl: Duration) -> JoinHandle<()> {
    let l2 = Arc::clone(l2);
    let key: Arc<str> = Arc::from(key);
    tokio::spawn(async move {
        let every = (ttl / 3).max(Duration::from_millis(1));
        let mut failures = 0;
        loop {
            tokio::time::sleep(every).await;
            match l2.renew_lease(&key, token, ttl).await {
                Ok(true) => failures = 0,
                Ok(false) => return,
                Err(_) => {
                    failures += 1;
                    if failures >= 2 {
                        return;
                    }
                }
            }
        }
    })
}

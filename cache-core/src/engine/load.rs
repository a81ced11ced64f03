//! Cache-aside loads: after an L1 miss, one leader per key (single flight, [`super::single_flight`])
//! reads L2 and else runs the loader and writes its value back; the others await its outcome.
//! Batches read both tiers for all their keys, then call one loader for the keys still missing.
//! Between the L2 miss and the loader, the leader takes the fleet lease or waits for the value
//! another instance loads under it ([`super::lease`]). When a loader fails and a stale value is
//! within its pattern's window, the stale value is served instead (fail-safe).
//!
//! Owns leadership, the loader call (its span and its latency) and fail-safe. Writes go through
//! [`super::write`]; never touches the invalidation log other than to take a ticket.
//!
//! # Redis commands per read, miss and write
//!
//! What one call sends to Redis (client commands; every script by hash, see
//! `store/redis/scripts.rs`, loaded once per Redis with `SCRIPT LOAD` after a `NOSCRIPT`), and why:
//!
//! | call | commands | why each |
//! |---|---|---|
//! | L1 hit | none | |
//! | L2 hit | `MGET` | one round trip: the entry, the namespace's clear mark and the key's tag marks (a `clear()` or tag invalidation by another instance is seen on this read, O(1)) |
//! | cold miss (leased, the default) | `MGET`, `EVALSHA` acquire, loader, `EVALSHA` write + release: three round trips | `MGET` as an L2 hit; the acquire script takes the fleet lease (`SET NX PX`: one loader in the fleet) unless the entry is in Redis by now (then it is read instead); the write script writes the entry only if no tombstone is as recent as the load's start (an invalidation by another instance during the load wins), then, in the same call, deletes the lease only if it is still this caller's token |
//! | cold miss, leased, nothing written back | + `EVALSHA` release | the loader failed, `unless` vetoed caching, an invalidation dropped the value or the write failed: the release script alone (the same compare-and-delete) |
//! | cold miss, loader longer than a third of the lease | + `EVALSHA` renew each third | keeps the lease while the loader runs, only while it is still this caller's |
//! | miss with `lease = false` | `MGET`, loader, `EVALSHA` write | as above, without the lease |
//! | waiting on another instance's lease | `MGET`, `EVALSHA` acquire, then per poll `MGET` + `EVALSHA` acquire | each poll reads the value, else tries to take over a lease released without a value or expired (a plain `SET NX PX` once an entry found was stale or undecodable) |
//! | `get_many` / `get_many_or_load` of n keys | one `MGET` (n entries + marks); misses: one pipeline of n `EVALSHA` writes | one round trip each way, whatever n |
//! | `set` / `set_many` / `#[cache_put]` | one pipeline of `EVALSHA` writes, `XADD` | the guarded write (as above); `XADD` tells the other instances' L1 (backplane) |
//! | `invalidate(key)` | one pipeline of `SET` tombstone + `UNLINK`, `XADD` | the tombstone refuses write-backs of loads that began before it; `XADD` for the other L1s |
//! | `invalidate_tag` / `clear()` | `EVALSHA` mark, `XADD` | later-wins mark (entries stamped before it are stale everywhere); `XADD` for the other L1s |
//! | sampled read (`fleet_sampling(n)`, off by default) | one in n: pipelined `ZINCRBY` + `ZREMRANGEBYRANK` + `EXPIRE`, in the background | the fleet's popularity, for `warm_from_fleet` |
//!
//! Inside Redis the acquire script runs `EXISTS` (the entry) and `SET .. NX PX`; the write script
//! `GET` (the tombstone) and `SET .. PX`, and for a leased load `GET` and `DEL` (the lease); the
//! marks' script `GET` and `SET`; the release script `GET` and `DEL`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Engine;
use super::invalidate::Ticket;
use super::lease::{LeaseGuard, Leased};
use super::read::{Answer, Found, Lookup};
use super::single_flight::{Role, follow};
use super::write::WriteBack;
use crate::key::{Key, Pattern};
use crate::metrics::bump;
use crate::source::Source;
use crate::spans::{self, Outcome};
use crate::store::redis::WriteMode;

/// What a single-key loader produced: the answer, and whether to cache it (`unless` of
/// `#[cached]` may veto caching a value it still returns).
#[derive(Debug)]
pub(crate) struct Loaded<A> {
    pub(crate) value: A,
    pub(crate) cache: bool,
}

impl<A> Loaded<A> {
    /// A value to return and cache.
    pub(crate) fn cache(value: A) -> Self {
        Loaded { value, cache: true }
    }
}

impl Engine {
    /// The cache-aside path of every single-key load, after an L1 miss
    /// ([`l1_probe`](Engine::l1_probe)) that found `stale`. Concurrent calls for one key run one
    /// loader (the leader's); its error reaches every waiter and is never cached.
    pub(crate) async fn load<V, A, E, F, Fut>(
        &self,
        key: &Key,
        stale: Option<A>,
        loader: F,
    ) -> Result<A, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<A>, E>>,
    {
        self.load_with_source::<V, A, E, F, Fut>(key, stale, loader)
            .await
            .map(|(answer, _)| answer)
    }

    /// [`load`](Engine::load), also saying where the answer came from.
    pub(crate) async fn load_with_source<V, A, E, F, Fut>(
        &self,
        key: &Key,
        stale: Option<A>,
        loader: F,
    ) -> Result<(A, Source), E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<A>, E>>,
    {
        let stats = key.pattern().stats();
        let leader = loop {
            match self.flights.join::<V, E>(key.as_str(), key.shared_tags()) {
                Role::Leader(leader) => break Some(leader),
                Role::Alone => break None,
                Role::Follower(rx) => match follow(rx).await {
                    Some(Ok(v)) => match A::from_cached(v) {
                        Some(answer) => {
                            bump(&stats.misses);
                            return Ok((answer, Source::Coalesced));
                        }
                        // The leader's answer (an absence) is none for this caller: load alone.
                        None => break None,
                    },
                    Some(Err(e)) => {
                        bump(&stats.misses);
                        return Err(e);
                    }
                    // The leader went away without a result: try to lead.
                    None => {}
                },
            }
        };
        let outcome = self.lead(key, stale, loader).await;
        if let Some(leader) = leader {
            leader.finish(
                outcome
                    .as_ref()
                    .map(|(a, _)| A::to_cached(a))
                    .map_err(E::clone),
            );
        }
        outcome
    }

    /// [`load`](Engine::load) with a loader that can run on its own task: past the pattern's soft
    /// timeout, a caller holding a `stale` value gets it while the load goes on in the background
    /// and fills the cache.
    pub(crate) async fn load_detachable<V, A, E, F, Fut>(
        self: &Arc<Self>,
        key: &Key,
        stale: Option<A>,
        loader: F,
    ) -> Result<A, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Loaded<A>, E>> + Send + 'static,
    {
        let soft = key.pattern().policy().load_timeouts().0;
        let (Some(soft), Some(fallback)) = (soft, stale.clone()) else {
            return Box::pin(self.load(key, stale, loader)).await;
        };
        let (engine, owned) = (Arc::clone(self), key.clone());
        let mut task = tokio::spawn(async move { engine.load(&owned, stale, loader).await });
        match tokio::time::timeout(soft, &mut task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
            Err(_) => {
                // The task goes on (a dropped JoinHandle does not cancel it) and fills the cache.
                bump(&key.pattern().stats().soft_timeouts);
                tracing::debug!(key = %key, ?soft, "load past its soft timeout: serving the stale value meanwhile");
                Ok(fallback)
            }
        }
    }

    /// The leader's part: L1 again when Redis is not serving, L2, else the loader.
    async fn lead<V, A, E, F, Fut>(
        &self,
        key: &Key,
        mut stale: Option<A>,
        loader: F,
    ) -> Result<(A, Source), E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<A>, E>>,
    {
        let stats = key.pattern().stats();
        let ticket = self.log.ticket();
        // A previous leader may have filled L1 between this call's probe and its joining. While
        // Redis serves, the read below finds that leader's value there (it wrote it before
        // finishing); otherwise look in L1 again, so that the loader does not run twice.
        let l2_serving = self.l2.as_ref().is_some_and(|l2| l2.serving());
        if !l2_serving
            && let Found::Fresh(v) = self.l1_lookup::<V>(key.as_str(), ticket.at)
            && let Some(answer) = A::from_cached(v)
        {
            bump(&stats.l1_hits);
            return Ok((answer, Source::L1));
        }
        let mut lease = None;
        if self.l2.is_some() {
            match self.l2_read_one::<V, A>(key, ticket).await {
                Found::Fresh(answer) => return Ok((answer, Source::L2)),
                Found::Stale(answer) if stale.is_none() => stale = Some(answer),
                _ => {}
            }
            match self.lease_or_wait::<V, A>(key, ticket).await {
                // Another instance loaded it under its lease: read from L2.
                Leased::Served(answer) => return Ok((answer, Source::L2)),
                Leased::Held(guard) => lease = Some(guard),
                Leased::Alone => {}
            }
        }
        let outcome = self
            .run_loader(key, stale, loader, ticket, &mut lease)
            .await;
        // Still held: not released by a write-back (nothing written, or the write failed).
        if let Some(lease) = lease {
            lease.release().await;
        }
        outcome
    }

    /// The loader's run after a miss in both tiers, its write-back (which releases `lease`, if it
    /// writes to L2: see [`write_back_leased`](Engine::write_back_leased)), and fail-safe.
    async fn run_loader<V, A, E, F, Fut>(
        &self,
        key: &Key,
        stale: Option<A>,
        loader: F,
        ticket: Ticket,
        lease: &mut Option<LeaseGuard>,
    ) -> Result<(A, Source), E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        A: Answer<V>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded<A>, E>>,
    {
        let stats = key.pattern().stats();
        bump(&stats.misses);
        let started = Instant::now();
        let span = spans::load(key);
        let hard = key.pattern().policy().load_timeouts().1;
        let result = match (hard, &stale) {
            // Past the hard timeout a stale value answers and the loader's future is dropped.
            (Some(hard), Some(fallback)) => {
                match tokio::time::timeout(hard, loader().instrument(span.clone())).await {
                    Ok(result) => result,
                    Err(_) => {
                        spans::record(&span, Outcome::Stale);
                        bump(&stats.hard_timeouts);
                        bump(&stats.stale_served);
                        stats.record_load(started.elapsed(), false);
                        tracing::warn!(key = %key, ?hard, "loader past its hard timeout: abandoned, serving the stale value");
                        return Ok((fallback.clone(), Source::Stale));
                    }
                }
            }
            _ => loader().instrument(span.clone()).await,
        };
        stats.record_load(started.elapsed(), result.is_ok());
        spans::record(
            &span,
            match (&result, &stale) {
                (Ok(_), _) => Outcome::Ok,
                (Err(_), Some(_)) => Outcome::Stale,
                (Err(_), None) => Outcome::Error,
            },
        );
        match result {
            Ok(loaded) => {
                if loaded.cache {
                    self.count_fleet_read(key);
                    let value = loaded.value.to_cached();
                    let write = WriteBack { key, value };
                    self.write_back_leased(vec![write], ticket, WriteMode::Fill, lease)
                        .await;
                }
                Ok((loaded.value, Source::Loader))
            }
            Err(e) => match stale {
                Some(answer) => {
                    bump(&stats.stale_served);
                    tracing::warn!(key = %key, "loader failed: serving the stale value (fail-safe)");
                    Ok((answer, Source::Stale))
                }
                None => Err(e),
            },
        }
    }

    /// Batch cache-aside: one L1 pass, one L2 round trip for the rest, then **one** loader call
    /// for just the keys still missing (their indices into `keys`; values in the same order).
    pub(crate) async fn get_many_or_load<V, E, F, Fut>(
        &self,
        keys: &[Key],
        loader: F,
    ) -> Result<Vec<Option<Arc<V>>>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<V>>, E>>,
    {
        let ticket = self.log.ticket();
        let Lookup {
            fresh,
            stale,
            missing,
        } = self.lookup_many::<V>(keys).await;
        let mut results: Vec<Option<Arc<V>>> = fresh.into_iter().map(Option::flatten).collect();
        if missing.is_empty() {
            return Ok(results);
        }
        for &i in &missing {
            bump(&keys[i].pattern().stats().misses);
        }
        let started = Instant::now();
        let span = spans::load_many(missing.len());
        let loaded = loader(missing.clone()).instrument(span.clone()).await;
        spans::record(&span, Outcome::of(&loaded));
        record_batch_load(keys, &missing, started, loaded.is_ok());
        let values = match loaded {
            Ok(values) => values,
            Err(e) => return serve_stale(keys, &missing, stale, results).ok_or(e),
        };
        if values.len() != missing.len() {
            tracing::error!(
                expected = missing.len(),
                got = values.len(),
                "get_many_or_load: the loader returned a different number of values; extra ones ignored, absent ones not cached"
            );
        }
        let mut writes = Vec::with_capacity(values.len());
        for (&i, value) in missing.iter().zip(values) {
            let value = value.map(Arc::new);
            results[i] = value.clone();
            writes.push(WriteBack {
                key: &keys[i],
                value,
            });
        }
        self.write_back(writes, ticket, WriteMode::Fill).await;
        Ok(results)
    }
}

/// Records one batch loader call once for each pattern among the `missing` keys.
fn record_batch_load(keys: &[Key], missing: &[usize], started: Instant, ok: bool) {
    let took = started.elapsed();
    let mut seen: Vec<&Pattern> = Vec::new();
    for &i in missing {
        let p = keys[i].pattern();
        if !seen.iter().any(|s| s.is_same(p)) {
            p.stats().record_load(took, ok);
            seen.push(p);
        }
    }
}

/// Fail-safe of a batch whose loader failed: the results with every missing key's stale value, if
/// each has one (else `None`: the error stands).
fn serve_stale<V>(
    keys: &[Key],
    missing: &[usize],
    stale: Vec<Option<Option<Arc<V>>>>,
    mut results: Vec<Option<Arc<V>>>,
) -> Option<Vec<Option<Arc<V>>>> {
    if !missing.iter().all(|&i| stale[i].is_some()) {
        return None;
    }
    for &i in missing {
        bump(&keys[i].pattern().stats().stale_served);
        results[i] = stale[i].clone().flatten();
    }
    tracing::warn!(
        keys = missing.len(),
        "batch loader failed: serving stale values (fail-safe)"
    );
    Some(results)
}

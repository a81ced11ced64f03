//! Background work of an engine: the periodic L1 sweep, and (with an L2) the first read of the
//! marks at start and their periodic refresh. Each task holds the engine weakly and stops when
//! the cache is dropped. (The probe that closes the circuit after an L2 outage is the store's
//! own, `store/redis.rs`.)
//!
//! Owns the schedules only: what each task does is the engine's ([`Engine::refresh_marks`]) or
//! the store's (`MemoryStore::remove_expired`).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Engine;
use crate::clock::Timestamp;

/// How often expired L1 entries that no read has met are removed.
const L1_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Reads the marks once (with an L2), then starts the periodic tasks.
pub(super) async fn start(engine: &Arc<Engine>, mark_refresh: Duration) {
    if engine.l2.is_some() {
        engine.refresh_marks().await;
        spawn_mark_refresh(Arc::downgrade(engine), mark_refresh);
    }
    spawn_l1_sweep(Arc::downgrade(engine), L1_SWEEP_INTERVAL);
}

/// Runs `task` every `every` (the first time one interval after the start) while the engine
/// lives; stops when it is dropped or `task` answers `false`.
fn spawn_periodic<F, Fut>(engine: Weak<Engine>, every: Duration, task: F)
where
    F: Fn(Arc<Engine>) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            if !task(engine).await {
                return;
            }
        }
    });
}

/// Removes expired entries from L1 periodically (a read removes those it meets), so that they do
/// not hold the byte budget until size eviction reaches them.
fn spawn_l1_sweep(engine: Weak<Engine>, every: Duration) {
    spawn_periodic(engine, every, |engine| async move {
        // A walk over every entry: off the async workers.
        tokio::task::spawn_blocking(move || engine.l1.remove_expired(Timestamp::now()))
            .await
            .is_ok()
    });
}

/// Re-reads marks from Redis periodically, so that L1 hits notice tag invalidations and clears
/// made by other instances within one interval.
fn spawn_mark_refresh(engine: Weak<Engine>, every: Duration) {
    spawn_periodic(engine, every, |engine| async move {
        engine.refresh_marks().await;
        true
    });
}

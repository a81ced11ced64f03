//! Background work of an engine: the periodic L1 sweep, and (with an L2) the one read of the
//! marks at start. Marks are not polled: other instances' tag invalidations and clears arrive
//! through the backplane ([`super::backplane`], whose reader is a task of its own), and every L2
//! read brings the marks of what it reads. Each task holds the engine weakly and stops when the
//! cache is dropped. (The probe that closes the circuit after an L2 outage is the store's own,
//! `store/redis.rs`.)
//!
//! Owns the schedules only: what each task does is the engine's ([`Engine::refresh_marks`]) or
//! the store's (`MemoryStore::remove_expired`).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Engine;

/// How often expired L1 entries that no read has met are removed.
const L1_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Reads the marks once (with an L2), then starts the periodic task.
pub(super) async fn start(engine: &Arc<Engine>) {
    if engine.l2.is_some() {
        engine.refresh_marks().await;
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
        tokio::task::spawn_blocking(move || engine.l1.remove_expired(engine.clock.now()))
            .await
            .is_ok()
    });
}

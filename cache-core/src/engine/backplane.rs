//! The backplane: every invalidation (key, tag, pattern, clear) and every overwrite (`set`,
//! `set_many`, `#[cache_put]`) made by one instance reaches the L1 of every other instance of
//! the namespace, pushed through Redis, without polling. Fills (a load after a miss) are never
//! broadcast. Each message carries its sender's instance id, and an instance ignores its own.
//!
//! The transport is a capped Redis stream read on a connection of its own (why a stream: see
//! `store/backplane.rs`). One task per cache reads it: `XREAD BLOCK` from the last ID seen, and
//! applies each message through the same local path as an invalidation made here
//! ([`Engine::invalidate_locally`]: logged, so that a load in flight here cannot write the old
//! value back; tags and clears as marks stamped by the sender, on Redis's clock).
//!
//! Staleness is never silently unbounded:
//! - when the subscription is lost (an error, or a read that does not answer within its block
//!   time plus the call timeout: at most about 1.5 s after the last answer), L1 is dropped at
//!   once (a resync): messages sent since may be missed;
//! - while it is down, L1 serves only what was loaded during the outage (each entry at most its
//!   L1 TTL, and no longer than the outage, see below);
//! - when it is back, the reader reads on from its last ID if the stream still holds it: the
//!   gap is replayed, every message sent meanwhile is applied (to what was loaded during the
//!   outage). If not (trimmed, or Redis restarted empty), L1 is dropped again and the marks are
//!   read again (a second resync).
//!
//! Resyncs, messages and the lag of the last message are counted ([`Backplane`], in
//! [`Stats::backplane`](crate::Stats)).
//!
//! Owns the subscription task and what a message does. Never writes values; the publishing
//! calls sit where invalidations and overwrites happen (`invalidate.rs`, `write.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Engine;
use crate::clock::Timestamp;
use crate::invalidation::Invalidation;
use crate::metrics::{BackplaneStats, bump};
use crate::store::backplane::{CLOCK_SAMPLE_EVERY, Event, Message, Subscriber};

/// The first wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// This instance's side of the backplane: its id and counters.
#[derive(Debug)]
pub(crate) struct Backplane {
    /// Random, never 0 (0 is a message every instance applies, see `store/redis/replay.rs`).
    instance: u64,
    subscribed: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    resyncs: AtomicU64,
    lag_micros: AtomicU64,
}

impl Backplane {
    pub(crate) fn new() -> Backplane {
        Backplane {
            instance: rand::random::<u64>().max(1),
            subscribed: AtomicBool::new(false),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            lag_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn snapshot(&self, enabled: bool) -> BackplaneStats {
        BackplaneStats {
            enabled,
            subscribed: self.subscribed.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
            lag: Duration::from_micros(self.lag_micros.load(Ordering::Relaxed)),
        }
    }
}

impl Engine {
    /// Broadcasts what happened here (no-op without an L2). Called after the L2 side of the
    /// change is done, so that a receiver that reads Redis next finds the new state.
    pub(super) async fn publish(&self, stamp: Timestamp, event: Event) {
        let Some(l2) = &self.l2 else {
            return;
        };
        let message = Message {
            instance: self.backplane.instance,
            stamp,
            event,
        };
        l2.publish(message).await;
        bump(&self.backplane.published);
    }

    /// Applies a message of another instance to this one's L1 (and its loads in flight).
    async fn apply(&self, message: Message) {
        if message.instance == self.backplane.instance || message.event == Event::Join {
            return;
        }
        bump(&self.backplane.received);
        let lag = self.clock.now().saturating_duration_since(message.stamp);
        self.backplane.lag_micros.store(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let at = message.stamp;
        match message.event {
            Event::Keys(keys) => {
                for key in keys {
                    self.invalidate_locally(&Invalidation::Key(key), at).await;
                }
            }
            Event::Tag(tag) => self.invalidate_locally(&Invalidation::Tag(tag), at).await,
            Event::Pattern(glob) => {
                self.invalidate_locally(&Invalidation::Pattern(glob), at)
                    .await;
            }
            Event::Clear => self.invalidate_locally(&Invalidation::All, at).await,
            Event::Join => {}
            Event::Resync => {
                tracing::warn!("another instance lost backplane messages: L1 dropped");
                self.resync().await;
            }
            Event::Unknown => {
                tracing::warn!("backplane message not understood (a newer peer?): L1 dropped");
                self.resync().await;
            }
        }
    }

    /// Drops L1, whose entries may have missed an invalidation, under the exclusive gate and
    /// logged, so that no load or copy in flight writes an older value back; then re-reads the
    /// marks (once). Counted.
    async fn resync(&self) {
        {
            let _exclusive = self.log.exclusive().await;
            self.log.record(Invalidation::All);
            self.l1.clear();
            self.flights.detach(|_| true);
        }
        bump(&self.backplane.resyncs);
        self.refresh_marks().await;
    }
}

/// Subscribes (awaited: the position in the stream is taken before the cache is handed out, so
/// nothing sent after `build` returns is missed) and starts the task that reads on. Without an
/// L2, nothing.
pub(super) async fn start(engine: &Arc<Engine>) {
    let Some(l2) = &engine.l2 else {
        return;
    };
    let mut subscriber = l2.subscriber(Arc::clone(&engine.clock));
    let instance = engine.backplane.instance;
    let position = match subscriber.connect().await {
        Ok(()) => subscriber.join(instance).await.ok(),
        Err(_) => None,
    };
    engine
        .backplane
        .subscribed
        .store(position.is_some(), Ordering::Relaxed);
    let reader = Reader {
        engine: Arc::downgrade(engine),
        subscriber,
        instance,
        position,
    };
    tokio::spawn(reader.run());
}

/// The reading task's state.
struct Reader {
    engine: Weak<Engine>,
    subscriber: Subscriber,
    instance: u64,
    /// The ID of the last message read (`None`: never subscribed).
    position: Option<String>,
}

impl Reader {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut sampled = Instant::now();
        loop {
            if self.engine.strong_count() == 0 {
                return;
            }
            let (Some(position), true) = (self.position.clone(), self.subscriber.is_connected())
            else {
                if !self.reconnect(&mut backoff).await {
                    return;
                }
                continue;
            };
            let Ok(messages) = self.subscriber.read(&position).await else {
                continue; // the connection is dropped: reconnect next
            };
            backoff = MIN_BACKOFF;
            let Some(engine) = self.engine.upgrade() else {
                return;
            };
            if let Some(l2) = &engine.l2 {
                l2.probe_if_open();
            }
            for (id, message) in messages {
                engine.apply(message).await;
                self.position = Some(id);
            }
            drop(engine);
            if sampled.elapsed() >= CLOCK_SAMPLE_EVERY {
                sampled = Instant::now();
                let _ = self.subscriber.sample_clock().await;
            }
        }
    }

    /// One attempt at subscribing again, after a wait; `false` once the cache is gone.
    async fn reconnect(&mut self, backoff: &mut Duration) -> bool {
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        if engine.backplane.subscribed.swap(false, Ordering::Relaxed) {
            tracing::warn!("backplane subscription lost: L1 dropped");
            engine.resync().await;
        }
        drop(engine);
        tokio::time::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        if self.subscriber.connect().await.is_err() {
            return true;
        }
        let replayable = match &self.position {
            Some(position) => match self.subscriber.still_holds(position).await {
                Ok(holds) => holds,
                Err(_) => return true,
            },
            None => false,
        };
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        if !replayable {
            let Ok(position) = self.subscriber.join(self.instance).await else {
                return true;
            };
            self.position = Some(position);
            tracing::info!("backplane subscribed again after a gap it cannot replay: L1 dropped");
            engine.resync().await;
        } else {
            tracing::info!("backplane subscribed again: the gap is replayed from the stream");
        }
        engine.backplane.subscribed.store(true, Ordering::Relaxed);
        true
    }
}

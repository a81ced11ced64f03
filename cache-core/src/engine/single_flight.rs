//! Single-flight: concurrent loads of one missing key run the loader once; the others await its
//! result (value or error). If the leading call is cancelled or panics, a waiter takes over.
//!
//! Owns the map of loads in flight and its leaders and followers. Never touches a tier or a
//! pattern: a flight is a key and a type-erased outcome.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use compact_str::CompactString;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::key::Tags;

type Outcome<V, E> = Option<Result<Option<Arc<V>>, E>>;

/// One load in flight: its outcome once the leader is done (`Some(None)`: it went away without
/// one), and the followers' wake-up. A plain mutex and one `Notify`, not a `watch` channel: the
/// leader of a load nobody follows (the common case) pays one allocation, two uncontended locks
/// and a notification with no waiter.
struct Flight<V, E> {
    done: Mutex<Option<Outcome<V, E>>>,
    wake: Notify,
}

impl<V, E> Flight<V, E> {
    /// Records the leader's end (unless it already ended) and wakes the followers.
    fn end(&self, outcome: Outcome<V, E>) {
        self.done.lock().get_or_insert(outcome);
        self.wake.notify_waiters();
    }
}

/// In-flight loads by key, with the tags of the key (so that a tag's invalidation detaches only
/// the loads it affects). Flights are type-erased `Flight<V, E>`. Keys are short strings, kept
/// inline (no allocation up to 24 bytes); foldhash hashes them several times faster than the
/// default SipHash.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<CompactString, InFlight, foldhash::quality::RandomState>>,
}

/// One entry of [`Flights`]: the flight and its key's tags (a shared reference, not a copy).
struct InFlight {
    flight: Arc<dyn Any + Send + Sync>,
    tags: Tags,
}

/// What a caller is in a flight.
pub(crate) enum Role<'a, V, E> {
    /// Runs the load and must [`Leader::finish`].
    Leader(Leader<'a, V, E>),
    /// Awaits the leader ([`follow`]).
    Follower(Following<V, E>),
    /// Another type is in flight under this key: load alone.
    Alone,
}

/// A follower's hold on the flight it awaits.
pub(crate) struct Following<V, E>(Arc<Flight<V, E>>);

/// The caller that runs the load. Dropping it unfinished wakes the followers, who retry.
pub(crate) struct Leader<'a, V, E> {
    flights: &'a Flights,
    key: &'a str,
    flight: Arc<Flight<V, E>>,
    finished: bool,
}

impl<V, E> Leader<'_, V, E>
where
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Publishes the outcome to every follower.
    pub(crate) fn finish(mut self, outcome: Result<Option<Arc<V>>, E>) {
        self.flight.end(Some(outcome));
        self.finished = true;
    }
}

impl<V, E> Drop for Leader<'_, V, E> {
    fn drop(&mut self) {
        {
            let mut map = self.flights.map.lock();
            if let Some(current) = map.get(self.key) {
                let ours = Arc::as_ptr(&current.flight).cast::<()>()
                    == Arc::as_ptr(&self.flight).cast::<()>();
                if ours {
                    map.remove(self.key);
                }
            }
        }
        if !self.finished {
            // Cancelled, or a panic: the followers wake to no outcome, and retry.
            self.flight.end(None);
        }
    }
}

impl Flights {
    /// Joins the load of `key` (whose entry carries `tags`) in flight, or leads a new one.
    pub(crate) fn join<'a, V, E>(&'a self, key: &'a str, tags: &Tags) -> Role<'a, V, E>
    where
        V: Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
    {
        let mut map = self.map.lock();
        if let Some(existing) = map.get(key) {
            return match Arc::clone(&existing.flight).downcast::<Flight<V, E>>() {
                Ok(flight) => Role::Follower(Following(flight)),
                Err(_) => Role::Alone,
            };
        }
        let flight = Arc::new(Flight {
            done: Mutex::new(None),
            wake: Notify::new(),
        });
        map.insert(
            CompactString::from(key),
            InFlight {
                flight: flight.clone(),
                tags: Arc::clone(tags),
            },
        );
        Role::Leader(Leader {
            flights: self,
            key,
            flight,
            finished: false,
        })
    }

    /// Detaches the flights of the keys that `affected` selects: their leaders still answer the
    /// callers already waiting, but a call made from now on starts a load of its own, so that a
    /// read issued after an invalidation never receives a value loaded before it.
    pub(crate) fn detach(&self, affected: impl Fn(&str) -> bool) {
        self.map.lock().retain(|key, _| !affected(key));
    }

    /// [`detach`](Self::detach) of the flights whose key carries `tag`.
    pub(crate) fn detach_tagged(&self, tag: &str) {
        self.map
            .lock()
            .retain(|_, f| !f.tags.iter().any(|t| &**t == tag));
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.map.lock().len()
    }
}

/// Waits for the leader; `None` if it went away without a result (then the caller retries).
pub(crate) async fn follow<V, E>(following: Following<V, E>) -> Option<Result<Option<Arc<V>>, E>>
where
    E: Clone,
{
    let flight = following.0;
    loop {
        // Registered before the check: an end between the check and the wait still wakes it.
        let woken = flight.wake.notified();
        if let Some(outcome) = flight.done.lock().as_ref() {
            return outcome.clone();
        }
        woken.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Tags {
        names.iter().map(|t| Arc::<str>::from(*t)).collect()
    }

    fn leads(flights: &Flights, key: &str, tags: &Tags) -> bool {
        matches!(flights.join::<u8, ()>(key, tags), Role::Leader(_))
    }

    #[test]
    fn a_tag_detaches_only_the_flights_whose_key_carries_it() {
        let flights = Flights::default();
        let (seven, eight) = (
            tags(&["products", "product:7"]),
            tags(&["products", "product:8"]),
        );
        let Role::Leader(first) = flights.join::<u8, ()>("prod:7", &seven) else {
            panic!("the first caller leads");
        };
        let Role::Leader(second) = flights.join::<u8, ()>("prod:8", &eight) else {
            panic!("the first caller leads");
        };
        assert!(!leads(&flights, "prod:7", &seven), "joins the flight");
        flights.detach_tagged("product:8");
        assert_eq!(flights.in_flight(), 1);
        assert!(!leads(&flights, "prod:7", &seven), "still joins its flight");
        // A detached key's next caller starts a load of its own; the detached leader, ending,
        // does not remove it.
        let Role::Leader(third) = flights.join::<u8, ()>("prod:8", &eight) else {
            panic!("a call after the invalidation leads a new load");
        };
        second.finish(Ok(None));
        assert!(
            !leads(&flights, "prod:8", &eight),
            "the new flight is still there"
        );
        flights.detach_tagged("products");
        assert_eq!(flights.in_flight(), 0);
        drop((first, third));
    }
}

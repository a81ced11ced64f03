//! Single-flight: concurrent loads of one missing key run the loader once; the others await its
//! result (value or error). If the leading call is cancelled or panics, a waiter takes over.
//!
//! Owns the map of loads in flight and its leaders and followers. Never touches a tier or a
//! pattern: a flight is a key and a type-erased outcome.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

type Outcome<V, E> = Option<Result<Option<Arc<V>>, E>>;

struct Flight<V, E> {
    tx: watch::Sender<Outcome<V, E>>,
}

/// In-flight loads by key. Values are type-erased `Flight<V, E>`. Keys are short strings:
/// foldhash hashes them several times faster than the default SipHash.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>, foldhash::quality::RandomState>>,
}

/// What a caller is in a flight.
pub(crate) enum Role<'a, V, E> {
    /// Runs the load and must [`Leader::finish`].
    Leader(Leader<'a, V, E>),
    /// Awaits the leader.
    Follower(watch::Receiver<Outcome<V, E>>),
    /// Another type is in flight under this key: load alone.
    Alone,
}

/// The caller that runs the load. Dropping it unfinished wakes the followers, who retry.
pub(crate) struct Leader<'a, V, E> {
    flights: &'a Flights,
    key: &'a str,
    flight: Arc<Flight<V, E>>,
}

impl<V, E> Leader<'_, V, E>
where
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// Publishes the outcome to every follower.
    pub(crate) fn finish(self, outcome: Result<Option<Arc<V>>, E>) {
        self.flight.tx.send_replace(Some(outcome));
    }
}

impl<V, E> Drop for Leader<'_, V, E> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock();
        if let Some(current) = map.get(self.key) {
            let ours = Arc::as_ptr(current).cast::<()>() == Arc::as_ptr(&self.flight).cast::<()>();
            if ours {
                map.remove(self.key);
            }
        }
    }
}

impl Flights {
    pub(crate) fn join<'a, V, E>(&'a self, key: &'a str) -> Role<'a, V, E>
    where
        V: Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
    {
        let mut map = self.map.lock();
        if let Some(existing) = map.get(key) {
            return match Arc::clone(existing).downcast::<Flight<V, E>>() {
                Ok(flight) => Role::Follower(flight.tx.subscribe()),
                Err(_) => Role::Alone,
            };
        }
        let (tx, _) = watch::channel(None);
        let flight = Arc::new(Flight { tx });
        map.insert(key.to_owned(), flight.clone());
        Role::Leader(Leader {
            flights: self,
            key,
            flight,
        })
    }

    /// Detaches the flights of the keys that `affected` selects: their leaders still answer the
    /// callers already waiting, but a call made from now on starts a load of its own, so that a
    /// read issued after an invalidation never receives a value loaded before it.
    pub(crate) fn detach(&self, affected: impl Fn(&str) -> bool) {
        self.map.lock().retain(|key, _| !affected(key));
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.map.lock().len()
    }
}

/// Waits for the leader; `None` if it went away without a result (then the caller retries).
pub(crate) async fn follow<V, E>(
    mut rx: watch::Receiver<Outcome<V, E>>,
) -> Option<Result<Option<Arc<V>>, E>>
where
    E: Clone,
{
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}

//! What `#[cached]` calls when its body may run in the background (`refresh_ahead`,
//! `soft_timeout_ms`): [`cached_refresh`] and [`cached_refresh_arc`], the macro's form of
//! [`Cache::get_or_refresh`](crate::Cache::get_or_refresh), and the helpers that give the loader
//! its own copies of the receiver and the arguments ([`owned_self`], [`owned_arg`], [`owned_ref`]).
//!
//! The loader is made by the generated code's `make`, called only on a miss or a due refresh: a
//! hit clones nothing, and allocates nothing (only a miss boxes its load). Owns that control
//! flow; the hit probe, the load and the background reload are the engine's. Never touches a
//! tier.

use std::borrow::Borrow;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Lookup, Miss, PreparedKey};
use crate::Cache;
use crate::engine::{Engine, Loaded, Probe};

/// `self`, cloned for a loader that may run in the background. Requires what running on a task
/// of its own requires of the receiver.
#[inline]
pub fn owned_self<S: Clone + Send + Sync + 'static>(this: &S) -> S {
    this.clone()
}

/// An argument passed by value, cloned for a loader that may run in the background.
#[inline]
pub fn owned_arg<T: Clone + Send + 'static>(arg: &T) -> T {
    arg.clone()
}

/// An argument passed by reference (`&T`, `&str`), owned for a loader that may run in the
/// background; the loader borrows it back.
#[inline]
pub fn owned_ref<T>(arg: &T) -> T::Owned
where
    T: ToOwned + ?Sized,
    T::Owned: Borrow<T> + Send + 'static,
{
    arg.to_owned()
}

/// `#[cached]` with refresh-ahead or a soft timeout: `make` returns the loader's future (owning
/// what it uses) and the `unless` veto; it is called on a miss, and on a hit due for a refresh
/// (whose reload then runs on a task of its own).
pub async fn cached_refresh<V, E, M, Fut, U>(
    cache: &Cache,
    key: PreparedKey,
    make: M,
) -> Result<Option<V>, E>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    M: Fn() -> (Fut, U) + Send,
    Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
    U: FnOnce(&Option<V>) -> bool + Send + 'static,
{
    let make = move || {
        let (load, unless) = make();
        async move {
            let value = load.await?;
            let keep = !unless(&value);
            Ok(Loaded {
                value: value.map(Arc::new),
                cache: keep,
            })
        }
    };
    let answer = match probe_due::<V, E, _, _>(cache, key, &make) {
        Ok(hit) => hit,
        Err(miss) => Box::pin(load::<V, E, _, _>(cache, miss, make)).await?,
    };
    Ok(answer.map(Arc::unwrap_or_clone))
}

/// [`cached_refresh`] on a function whose value type is `Arc<T>`: the cache shares the `Arc`.
pub async fn cached_refresh_arc<T, E, M, Fut, U>(
    cache: &Cache,
    key: PreparedKey,
    make: M,
) -> Result<Option<Arc<T>>, E>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    M: Fn() -> (Fut, U) + Send,
    Fut: Future<Output = Result<Option<Arc<T>>, E>> + Send + 'static,
    U: FnOnce(&Option<Arc<T>>) -> bool + Send + 'static,
{
    let make = move || {
        let (load, unless) = make();
        async move {
            let value = load.await?;
            let keep = !unless(&value);
            Ok(Loaded { value, cache: keep })
        }
    };
    match probe_due::<T, E, _, _>(cache, key, &make) {
        Ok(hit) => Ok(hit),
        Err(miss) => Box::pin(load::<T, E, _, _>(cache, miss, make)).await,
    }
}

/// Both forms' hit path, synchronous (a hit allocates nothing; only a miss boxes its load): the
/// L1 probe; on a hit due for a refresh, one background reload per key. A miss returns the key to
/// load (`None`: the site bypasses the cache) and the stale value L1 holds.
#[inline(always)]
fn probe_due<V, E, M, Fut>(
    cache: &Cache,
    key: PreparedKey,
    make: &M,
) -> Result<Option<Arc<V>>, Miss<V>>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    M: Fn() -> Fut,
    Fut: Future<Output = Result<Loaded<Option<Arc<V>>>, E>> + Send + 'static,
{
    let Some(lookup) = key.into_lookup() else {
        return Err((None, None));
    };
    let Some(pattern) = lookup.binding.pattern() else {
        return Err((None, None));
    };
    let engine = cache.shared_engine();
    match engine.l1_probe_due::<V, Option<Arc<V>>>(&lookup.text, pattern) {
        (Probe::Hit(hit), due) => {
            if due {
                reload_in_background::<V, E, M, Fut>(engine, lookup, make);
            }
            Ok(hit)
        }
        (Probe::Miss { stale }, _) => Err((lookup.into_key(), stale)),
    }
}

/// A hit due for a refresh-ahead: one background reload of its key in this process.
#[cold]
fn reload_in_background<V, E, M, Fut>(engine: &Arc<Engine>, lookup: Lookup, make: &M)
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    M: Fn() -> Fut,
    Fut: Future<Output = Result<Loaded<Option<Arc<V>>>, E>> + Send + 'static,
{
    if let Some(claim) = engine.claim_refresh(&lookup.text)
        && let Some(key) = lookup.into_key()
    {
        let load = make();
        let reload =
            Arc::clone(engine)
                .refresh_ahead::<V, Option<Arc<V>>, _, _, _>(claim, key, move || load);
        tokio::spawn(reload);
    }
}

/// Both forms' miss: a load that may outlive this call past the soft timeout, or the body alone
/// for a call that bypasses the cache.
async fn load<V, E, M, Fut>(cache: &Cache, miss: Miss<V>, make: M) -> Result<Option<Arc<V>>, E>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    M: Fn() -> Fut + Send,
    Fut: Future<Output = Result<Loaded<Option<Arc<V>>>, E>> + Send + 'static,
{
    match miss {
        (Some(key), stale) => {
            let load = make();
            cache
                .shared_engine()
                .load_detachable::<V, Option<Arc<V>>, E, _, _>(&key, stale, move || load)
                .await
        }
        (None, _) => make().await.map(|loaded| loaded.value),
    }
}

//! What `#[cached]` calls when its body may run in the background (`refresh_ahead`,
//! `soft_timeout_ms`): [`cached_refresh`] and [`cached_refresh_arc`], the macro's form of
//! [`Cache::get_or_refresh`](crate::Cache::get_or_refresh), and the helpers that give the loader
//! its own copies of the receiver and the arguments ([`owned_self`], [`owned_arg`], [`owned_ref`]).
//!
//! The loader is made by the generated code's `make`, called only on a miss or a due refresh: a
//! hit clones nothing. Owns that control flow; the hit probe, the load and the background reload
//! are the engine's. Never touches a tier.

use std::borrow::Borrow;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::PreparedKey;
use crate::Cache;
use crate::engine::{Loaded, Probe};

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
    let answer = Box::pin(refresh::<V, E, _, _>(cache, key, make)).await?;
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
    Box::pin(refresh::<T, E, _, _>(cache, key, make)).await
}

/// Both forms: the L1 probe; on a hit due for a refresh, one background reload per key; on a
/// miss, a load that may outlive this call past the soft timeout.
async fn refresh<V, E, M, Fut>(
    cache: &Cache,
    key: PreparedKey,
    make: M,
) -> Result<Option<Arc<V>>, E>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    M: Fn() -> Fut + Send,
    Fut: Future<Output = Result<Loaded<Option<Arc<V>>>, E>> + Send + 'static,
{
    let bypass = |make: M| async move { make().await.map(|loaded| loaded.value) };
    let Some(lookup) = key.into_lookup() else {
        return bypass(make).await;
    };
    let Some(pattern) = lookup.binding.pattern() else {
        return bypass(make).await;
    };
    let engine = cache.shared_engine();
    match engine.l1_probe_due::<V, Option<Arc<V>>>(&lookup.text, pattern) {
        (Probe::Hit(hit), due) => {
            if due
                && let Some(claim) = engine.claim_refresh(&lookup.text)
                && let Some(key) = lookup.into_key()
            {
                let load = make();
                let reload = Arc::clone(engine).refresh_ahead::<V, Option<Arc<V>>, _, _, _>(
                    claim,
                    key,
                    move || load,
                );
                tokio::spawn(reload);
            }
            Ok(hit)
        }
        (Probe::Miss { stale }, _) => match lookup.into_key() {
            Some(key) => {
                let load = make();
                engine
                    .load_detachable::<V, Option<Arc<V>>, E, _, _>(&key, stale, move || load)
                    .await
            }
            None => bypass(make).await,
        },
    }
}

//! The facade's reads that do more than cache-aside: refresh-ahead with loader timeouts
//! ([`Cache::get_or_refresh`]) and reads that say which tier or load served them
//! ([`Cache::get_or_load_with_source`], for `X-Cache`). Thin methods over the engine, as in
//! `cache/mod.rs`; they own no logic.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cache;
use crate::engine::{Loaded, Probe};
use crate::key::Key;
use crate::source::Source;

impl Cache {
    /// [`get_or_load`](Self::get_or_load) with a loader that owns what it uses (`Send + 'static`),
    /// so that the cache can run it in the background: a hit in the last fraction of the entry's
    /// TTL (the pattern's [`TtlPolicy::refresh_ahead`]) returns the value at once and triggers
    /// one background reload in the fleet (one per key in this process, under the fleet lease
    /// across instances), so a key read often never expires. And a miss holding a stale value
    /// whose load runs past the pattern's [`TtlPolicy::soft_timeout`] gets the stale value while
    /// the load finishes in the background. Without these this is `get_or_load`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?;
    /// let policy = TtlPolicy::new(Duration::from_secs(60)).refresh_ahead(0.8);
    /// let prices = cache.register(PatternConfig::new("price:<id>", policy))?;
    /// let key = prices.key(&[&7u64])?;
    /// let price = cache.get_or_refresh(&key, || async { Ok::<_, String>(12u32) }).await;
    /// assert_eq!(*price.unwrap(), 12);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_refresh<V, E, F, Fut>(&self, key: &Key, loader: F) -> Result<Arc<V>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        match self
            .engine
            .l1_probe_due::<V, Arc<V>>(key.as_str(), key.pattern())
        {
            (Probe::Hit(hit), false) => Ok(hit),
            (Probe::Hit(hit), true) => {
                if let Some(claim) = self.engine.claim_refresh(key.as_str()) {
                    let engine = Arc::clone(&self.engine);
                    let loader =
                        || async move { loader().await.map(|v| Loaded::cache(Arc::new(v))) };
                    tokio::spawn(engine.refresh_ahead::<V, Arc<V>, _, _, _>(
                        claim,
                        key.clone(),
                        loader,
                    ));
                }
                Ok(hit)
            }
            (Probe::Miss { stale }, _) => {
                let loader = || async move { loader().await.map(|v| Loaded::cache(Arc::new(v))) };
                Box::pin(self.engine.load_detachable(key, stale, loader)).await
            }
        }
    }

    /// [`get_or_load`](Self::get_or_load), also saying where the value came from ([`Source`]:
    /// L1, L2, this call's loader, another call's, or a stale value after a failed load). For an
    /// `X-Cache` header or a log line; the plain read does not compute it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, Source, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let key = products.key(&[&7u64])?;
    /// let load = || async { Ok::<_, String>(String::from("Lamp")) };
    /// let (_, source) = cache.get_or_load_with_source(&key, load).await.unwrap();
    /// assert_eq!(source, Source::Loader);
    /// let (name, source) = cache.get_or_load_with_source(&key, load).await.unwrap();
    /// assert_eq!((name.as_str(), source), ("Lamp", Source::L1));
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_with_source<V, E, F, Fut>(
        &self,
        key: &Key,
        loader: F,
    ) -> Result<(Arc<V>, Source), E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        match self
            .engine
            .l1_probe::<V, Arc<V>>(key.as_str(), key.pattern())
        {
            Probe::Hit(hit) => Ok((hit, Source::L1)),
            Probe::Miss { stale } => {
                let loader = || async move { loader().await.map(|v| Loaded::cache(Arc::new(v))) };
                Box::pin(self.engine.load_with_source(key, stale, loader)).await
            }
        }
    }

    /// [`get_or_load_optional`](Self::get_or_load_optional), also saying where the answer came
    /// from (see [`get_or_load_with_source`](Self::get_or_load_with_source)).
    pub async fn get_or_load_optional_with_source<V, E, F, Fut>(
        &self,
        key: &Key,
        loader: F,
    ) -> Result<(Option<Arc<V>>, Source), E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        match self
            .engine
            .l1_probe::<V, Option<Arc<V>>>(key.as_str(), key.pattern())
        {
            Probe::Hit(hit) => Ok((hit, Source::L1)),
            Probe::Miss { stale } => {
                let loader =
                    || async move { loader().await.map(|v| Loaded::cache(v.map(Arc::new))) };
                Box::pin(self.engine.load_with_source(key, stale, loader)).await
            }
        }
    }
}

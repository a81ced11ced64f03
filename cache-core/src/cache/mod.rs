//! The public [`Cache`]: a facade of thin methods over the engine (`engine/`), with their docs
//! and doctests. The hit paths get no layer of the facade's own: `get_or_load*` call the engine's
//! synchronous L1 probe here and box the load only on a miss, `get` returns the engine's future
//! itself; everything else is one call into the engine.
//!
//! Owns the public API's shapes only: no cache logic lives here, and nothing here touches a tier,
//! the invalidation log or the registry except through the engine.

mod sourced;
mod warm;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::CacheBuilder;
use crate::engine::{Engine, Loaded, Probe};
use crate::error::Error;
use crate::invalidation::Invalidation;
use crate::key::registry::PatternConfig;
use crate::key::{Key, Pattern};
use crate::metrics::Stats;
use crate::ttl::TtlPolicy;

/// A two-tier cache: an in-process L1 (moka, bounded in bytes) in front of a shared L2 (Redis).
///
/// Cheap to clone (all clones share one cache), `Send + Sync + 'static`. No operation fails
/// because of the cache: while Redis is down or slow, calls are served from L1 or the loader.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cache_core::{Cache, PatternConfig, TtlPolicy};
/// use std::time::Duration;
///
/// let cache = Cache::builder().namespace("shop").build().await?; // add .redis_url(..) for L2
/// let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(1800))))?;
/// let key = products.key(&[&7u64])?;
/// let name = cache
///     .get_or_load(&key, || async { Ok::<_, std::convert::Infallible>(String::from("Lamp")) })
///     .await?;
/// assert_eq!(*name, "Lamp");
/// assert_eq!(cache.stats().total.loads, 1);
/// cache.invalidate(&key).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.engine.namespace())
            .field("l2", &self.engine.has_l2())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The cache over a started engine (see [`CacheBuilder::build`]).
    pub(crate) fn from_engine(engine: Arc<Engine>) -> Cache {
        Cache { engine }
    }

    /// The engine, for the macros' support (`__private`) and the health check.
    #[inline]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, shared: for the macros' support of loads that can run on a task of their own.
    #[inline]
    pub(crate) fn shared_engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The namespace: the prefix of every Redis key.
    pub fn namespace(&self) -> &str {
        self.engine.namespace()
    }

    /// Whether an L2 (Redis) is configured.
    pub fn has_l2(&self) -> bool {
        self.engine.has_l2()
    }

    /// The policy of patterns used without a TTL of their own (from
    /// [`CacheBuilder::default_ttl`]).
    pub fn default_policy(&self) -> &TtlPolicy {
        self.engine.default_policy()
    }

    /// Registers a key pattern with its TTL policy and tags. Registering the same configuration
    /// again returns the same pattern; a different policy or tags for the same template is an
    /// error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// let config = PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60)));
    /// let products = cache.register(config.clone())?;
    /// assert_eq!(products.template(), "prod:<id>");
    /// assert_eq!(cache.register(config)?.template(), "prod:<id>"); // same config: fine
    /// let other = PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(5)));
    /// assert!(matches!(cache.register(other), Err(cache_core::Error::PatternConflict { .. })));
    /// # Ok(()) }
    /// ```
    pub fn register(&self, config: PatternConfig) -> Result<Pattern, Error> {
        self.engine.register(config)
    }

    /// The registered pattern with this template, if any.
    pub fn pattern(&self, template: &str) -> Option<Pattern> {
        self.engine.pattern(template)
    }

    /// Every registered pattern, sorted by template.
    pub fn patterns(&self) -> Vec<Pattern> {
        self.engine.patterns()
    }

    // ----- reads -----

    /// Reads a fresh value from L1, else from L2. A cached absence reads as `None` too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let key = products.key(&[&1u64])?;
    /// assert_eq!(cache.get::<String>(&key).await, None);
    /// cache.set(&key, String::from("Lamp")).await;
    /// assert_eq!(cache.get::<String>(&key).await.as_deref().map(String::as_str), Some("Lamp"));
    /// assert_eq!(cache.stats().total.l1_hits, 1);
    /// # Ok(()) }
    /// ```
    pub fn get<V>(&self, key: &Key) -> impl Future<Output = Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        // The engine's future itself, not one of the facade's around it: no layer added on the
        // L1 or the L2 hit path.
        self.engine.get(key)
    }

    /// Reads many keys: L1 first, then one L2 round trip for the rest. Results are in key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let keys = [products.key(&[&1u64])?, products.key(&[&2u64])?];
    /// cache.set(&keys[1], 20u32).await;
    /// let found = cache.get_many::<u32>(&keys).await;
    /// assert_eq!(found, vec![None, Some(std::sync::Arc::new(20))]);
    /// # Ok(()) }
    /// ```
    pub async fn get_many<V>(&self, keys: &[Key]) -> Vec<Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.engine.get_many(keys).await
    }

    // ----- cache-aside -----

    /// Cache-aside: L1, then L2, then `loader`, whose value is written to both tiers.
    ///
    /// Concurrent calls for one missing key run the loader once (single-flight); its error
    /// reaches every waiter and is never cached. If the loader fails and a stale value is within
    /// the pattern's stale window, the stale value is returned instead (fail-safe).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let key = products.key(&[&7u64])?;
    /// let load = || async { Ok::<_, String>(String::from("Lamp")) };
    /// assert_eq!(*cache.get_or_load(&key, load).await.unwrap(), "Lamp");
    /// // Cached now: a failing loader is not even called.
    /// let fail = || async { Err::<String, _>(String::from("db down")) };
    /// assert_eq!(*cache.get_or_load(&key, fail).await.unwrap(), "Lamp");
    /// assert_eq!(cache.stats().total.loads, 1);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load<V, E, F, Fut>(&self, key: &Key, loader: F) -> Result<Arc<V>, E>
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
            Probe::Hit(hit) => Ok(hit),
            Probe::Miss { stale } => {
                let loader = || async move { loader().await.map(|v| Loaded::cache(Arc::new(v))) };
                Box::pin(self.engine.load(key, stale, loader)).await
            }
        }
    }

    /// Like [`get_or_load`](Self::get_or_load) for loaders that may find nothing: `Ok(None)` is
    /// cached only when the pattern's policy has a [negative TTL](TtlPolicy::negative_ttl).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// let policy = TtlPolicy::new(Duration::from_secs(60)).negative_ttl(Duration::from_secs(10));
    /// let users = cache.register(PatternConfig::new("user:<id>", policy))?;
    /// let key = users.key(&[&404u64])?;
    /// let none = cache
    ///     .get_or_load_optional(&key, || async { Ok::<Option<String>, String>(None) })
    ///     .await
    ///     .unwrap();
    /// assert!(none.is_none());
    /// // The absence is cached (negative TTL): the loader does not run again.
    /// let again = cache
    ///     .get_or_load_optional(&key, || async { Ok::<_, String>(Some(String::from("x"))) })
    ///     .await
    ///     .unwrap();
    /// assert!(again.is_none());
    /// assert_eq!(cache.stats().total.loads, 1);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_optional<V, E, F, Fut>(
        &self,
        key: &Key,
        loader: F,
    ) -> Result<Option<Arc<V>>, E>
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
            Probe::Hit(hit) => Ok(hit),
            Probe::Miss { stale } => {
                let loader =
                    || async move { loader().await.map(|v| Loaded::cache(v.map(Arc::new))) };
                Box::pin(self.engine.load(key, stale, loader)).await
            }
        }
    }

    /// Batch cache-aside: one L1 pass, one L2 round trip for the rest, then **one** loader call
    /// for just the keys still missing. The loader gets their indices into `keys` and returns
    /// their values in the same order (`None`: not found, cached only with a negative TTL).
    ///
    /// ```
    /// # async fn demo(cache: cache_core::Cache, pattern: cache_core::Pattern) -> Result<(), std::convert::Infallible> {
    /// let ids = [1u64, 2, 3];
    /// let keys: Vec<_> = ids.iter().map(|id| pattern.key(&[id]).unwrap()).collect();
    /// let names = cache
    ///     .get_many_or_load(&keys, |missing: Vec<usize>| async move {
    ///         Ok::<_, std::convert::Infallible>(missing.iter().map(|&i| Some(format!("product {}", ids[i]))).collect())
    ///     })
    ///     .await?;
    /// assert_eq!(names.len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn get_many_or_load<V, E, F, Fut>(
        &self,
        keys: &[Key],
        loader: F,
    ) -> Result<Vec<Option<Arc<V>>>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<V>>, E>>,
    {
        self.engine.get_many_or_load(keys, loader).await
    }

    // ----- writes -----

    /// Writes a value through to both tiers (for example right after the database write).
    /// A load of the same key still in flight will not overwrite it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let key = products.key(&[&1u64])?;
    /// cache.set(&key, 1999u64).await;
    /// assert_eq!(cache.get::<u64>(&key).await.as_deref(), Some(&1999));
    /// # Ok(()) }
    /// ```
    pub async fn set<V>(&self, key: &Key, value: V)
    where
        V: Serialize + Send + Sync + 'static,
    {
        self.set_many(vec![(key.clone(), value)]).await;
    }

    /// Writes many values through to both tiers, with one pipelined L2 round trip.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let entries = (1..=3u64).map(|id| Ok((products.key(&[&id])?, id * 100)));
    /// cache.set_many(entries.collect::<Result<Vec<_>, cache_core::KeyError>>()?).await;
    /// assert_eq!(cache.get::<u64>(&products.key(&[&3u64])?).await.as_deref(), Some(&300));
    /// # Ok(()) }
    /// ```
    pub async fn set_many<V>(&self, entries: Vec<(Key, V)>)
    where
        V: Serialize + Send + Sync + 'static,
    {
        let shared = entries.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        self.engine.set_many_shared(shared).await;
    }

    // ----- invalidation -----

    /// Removes one key from both tiers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let key = products.key(&[&1u64])?;
    /// cache.set(&key, 1u8).await;
    /// cache.invalidate(&key).await;
    /// assert_eq!(cache.get::<u8>(&key).await, None);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, key: &Key) {
        self.invalidate_with(Invalidation::Key(key.as_str().to_owned()))
            .await;
    }

    /// Invalidates every entry carrying `tag`, in O(1): the tag's mark is set, and entries
    /// stamped before it are stale wherever they are.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// let config = PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60)));
    /// let products = cache.register(config.tag("products"))?;
    /// let orders = cache.register(PatternConfig::new("order:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let (p1, o1) = (products.key(&[&1u64])?, orders.key(&[&1u64])?);
    /// cache.set(&p1, 1u8).await;
    /// cache.set(&o1, 1u8).await;
    /// cache.invalidate_tag("products").await;
    /// assert_eq!(cache.get::<u8>(&p1).await, None);
    /// assert!(cache.get::<u8>(&o1).await.is_some(), "untagged entries stay");
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) {
        self.invalidate_with(Invalidation::Tag(tag.to_owned()))
            .await;
    }

    /// Removes every key matching a Redis glob over rendered keys (`prod:*`), with SCAN + UNLINK
    /// in batches (never `KEYS`). Meant for operators; use tags on hot paths.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// # let users = cache.register(PatternConfig::new("user:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let (p1, u1) = (products.key(&[&1u64])?, users.key(&[&1u64])?);
    /// cache.set(&p1, 1u8).await;
    /// cache.set(&u1, 1u8).await;
    /// cache.invalidate_pattern("prod:*").await;
    /// assert_eq!(cache.get::<u8>(&p1).await, None);
    /// assert!(cache.get::<u8>(&u1).await.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_pattern(&self, glob: &str) {
        self.invalidate_with(Invalidation::Pattern(glob.to_owned()))
            .await;
    }

    /// Invalidates the whole namespace in O(1).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let keys = [products.key(&[&1u64])?, products.key(&[&2u64])?];
    /// cache.set_many(keys.iter().cloned().map(|k| (k, 1u8)).collect()).await;
    /// cache.clear().await;
    /// assert_eq!(cache.get_many::<u8>(&keys).await, vec![None, None]);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) {
        self.invalidate_with(Invalidation::All).await;
    }

    /// Frees the Redis memory of what [`Cache::clear`] (here or in any instance) made stale:
    /// deletes the entries of the namespace written before the last clear, scanning (`SCAN`,
    /// never `KEYS`) at most `keys_per_second` keys a second, and says how many it deleted and
    /// how many bytes they used (`MEMORY USAGE`). Entries written since the clear are kept. A
    /// clear takes effect without this (its mark makes the old entries stale at once): this only
    /// returns their memory before their TTLs would. Without an L2, nothing to do.
    ///
    /// # Errors
    /// [`Error::RedisUnavailable`] if Redis fails meanwhile; what was deleted stays deleted.
    pub async fn reclaim_cleared(&self, keys_per_second: u32) -> Result<Reclaimed, Error> {
        match self.engine.reclaim_cleared(keys_per_second).await {
            None => Ok(Reclaimed::default()),
            Some(Ok(r)) => Ok(Reclaimed {
                scanned: r.scanned,
                deleted: r.deleted,
                bytes: r.bytes,
            }),
            Some(Err(e)) => Err(Error::RedisUnavailable(e)),
        }
    }

    /// The one path of every invalidation. When it returns, no load that started before it can
    /// write its value into either tier.
    pub async fn invalidate_with(&self, what: Invalidation) {
        self.engine.invalidate(what).await;
    }

    // ----- observation -----

    /// A snapshot of the counters, per pattern and in total, and L1 usage.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// # use cache_core::{Cache, PatternConfig, TtlPolicy};
    /// # use std::time::Duration;
    /// # let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
    /// # let products = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
    /// let key = products.key(&[&1u64])?;
    /// cache.get_or_load(&key, || async { Ok::<_, String>(5u8) }).await.unwrap(); // miss, load
    /// cache.get::<u8>(&key).await; // L1 hit
    /// let stats = cache.stats();
    /// let prod = &stats.pattern("prod:<id>").unwrap().counters;
    /// assert_eq!((prod.misses, prod.loads, prod.l1_hits), (1, 1, 1));
    /// assert_eq!(stats.hit_ratio(), 0.5);
    /// assert_eq!(stats.l1_entries, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Loads in flight right now.
    pub fn loads_in_flight(&self) -> usize {
        self.engine.loads_in_flight()
    }
}

/// What [`Cache::reclaim_cleared`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reclaimed {
    /// Entry keys scanned.
    pub scanned: u64,
    /// Entries deleted (written before the last clear).
    pub deleted: u64,
    /// The memory they used, as `MEMORY USAGE` reports it.
    pub bytes: u64,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// An L1-only cache with one pattern, `item:<id>`.
    pub(crate) async fn l1_cache() -> (Cache, Pattern) {
        let cache = Cache::builder().namespace("unit").build().await.unwrap();
        let p = cache
            .register(PatternConfig::new(
                "item:<id>",
                TtlPolicy::new(Duration::from_secs(60)),
            ))
            .unwrap();
        (cache, p)
    }

    #[tokio::test]
    async fn l1_only_cache_aside() {
        let (cache, p) = l1_cache().await;
        let key = p.key(&[&1]).unwrap();
        let v: Arc<String> = cache
            .get_or_load(&key, || async { Ok::<_, ()>("one".to_owned()) })
            .await
            .unwrap();
        assert_eq!(*v, "one");
        let v: Arc<String> = cache
            .get_or_load(&key, || async { Err::<String, ()>(()) })
            .await
            .unwrap();
        assert_eq!(*v, "one");
        let s = cache.stats();
        assert_eq!((s.total.loads, s.total.l1_hits, s.total.misses), (1, 1, 1));
        cache.invalidate(&key).await;
        assert!(cache.get::<String>(&key).await.is_none());
    }

    #[tokio::test]
    async fn a_zero_l1_capacity_disables_l1() {
        let cache = Cache::builder().l1_capacity_bytes(0).build().await.unwrap();
        let p = cache
            .register(PatternConfig::new(
                "item:<id>",
                TtlPolicy::new(Duration::from_secs(60)),
            ))
            .unwrap();
        let key = p.key(&[&1]).unwrap();
        cache.set(&key, 1u8).await;
        assert!(cache.get::<u8>(&key).await.is_none());
        assert_eq!(cache.stats().l1_entries, 0);
    }

    /// A cached absence (stored through `get_or_load_optional`) is no answer for `get_or_load`,
    /// whose loader always yields a value: its loader runs.
    #[tokio::test]
    async fn get_or_load_passes_over_a_cached_absence() {
        let cache = Cache::builder().build().await.unwrap();
        let policy = TtlPolicy::new(Duration::from_secs(60)).negative_ttl(Duration::from_secs(60));
        let p = cache
            .register(PatternConfig::new("user:<id>", policy))
            .unwrap();
        let key = p.key(&[&1]).unwrap();
        let none = cache
            .get_or_load_optional(&key, || async { Ok::<Option<u8>, ()>(None) })
            .await;
        assert_eq!(none, Ok(None));
        let one = cache.get_or_load(&key, || async { Ok::<_, ()>(1u8) }).await;
        assert_eq!(one.as_deref(), Ok(&1));
        assert_eq!(cache.stats().total.loads, 2);
    }

    #[tokio::test]
    async fn wrong_type_is_a_miss_not_a_panic() {
        let (cache, p) = l1_cache().await;
        let key = p.key(&[&1]).unwrap();
        cache.set(&key, 5u32).await;
        assert!(cache.get::<String>(&key).await.is_none());
        assert_eq!(cache.get::<u32>(&key).await.as_deref(), Some(&5));
    }
}

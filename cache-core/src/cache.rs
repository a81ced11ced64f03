//! The two-tier [`Cache`]: L1 (moka) in front of L2 (Redis).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::builder::CacheBuilder;
use crate::clock::Timestamp;
use crate::codec::{self, Stamp};
use crate::error::Error;
use crate::error::RedisFailure;
use crate::invalidation::{Invalidation, InvalidationLog, TagClock, Ticket, glob_match};
use crate::key::registry::{PatternConfig, Registry};
use crate::key::{Key, Pattern, Tags};
use crate::metrics::{Stats, bump};
use crate::single_flight::{Flights, Role, follow};
use crate::store::memory::{L1Entry, MemoryStore};
use crate::store::redis::{EntryWrite, Marks, RedisSettings, RedisStore, WriteMode};
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
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.namespace)
            .field("l2", &self.inner.l2.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) namespace: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) l1: MemoryStore,
    pub(crate) l2: Option<Arc<RedisStore>>,
    clock: TagClock,
    log: InvalidationLog,
    flights: Flights,
    default_policy: TtlPolicy,
    pub(crate) max_lifetime: Duration,
    /// Per-call-site bindings of the macros, by site address.
    pub(crate) sites: RwLock<HashMap<usize, Arc<dyn Any + Send + Sync>>>,
}

/// What a lookup found in one tier.
enum Found<T> {
    Fresh(T),
    Stale(T),
    Missing,
}

/// What the L1 fast path found.
pub(crate) enum Probe<V> {
    /// A fresh value (or cached absence), counted as an L1 hit.
    Hit(Option<Arc<V>>),
    /// None fresh; perhaps a stale one, usable if the load fails (fail-safe).
    Miss { stale: Option<Option<Arc<V>>> },
}

/// Whether a single-key load may answer with a cached absence (`Ok(None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Absent {
    /// Yes: the caller's loader may itself find nothing.
    Accept,
    /// No (`get_or_load`, whose loader always yields a value): a cached or shared absence, which
    /// another caller of the same key stored, is passed over and the loader runs.
    Skip,
}

impl Absent {
    fn accepts<V>(self, value: &Option<V>) -> bool {
        self == Absent::Accept || value.is_some()
    }
}

/// A value read from L2, ready for L1.
struct FromL2<V> {
    value: Option<Arc<V>>,
    stamp: Stamp,
    tags: Tags,
    /// [`codec::decoded_size_estimate`] of the payload: what the value weighs in L1.
    decoded_size: usize,
}

/// A value to write back to both tiers.
struct WriteBack<'k, V> {
    key: &'k Key,
    value: Option<Arc<V>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Cache {
    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    pub(crate) async fn from_builder(b: CacheBuilder) -> Result<Cache, Error> {
        b.validate()?;
        let l2 = match &b.redis_url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url.as_str()).map_err(Error::RedisUrl)?;
                let store = Arc::new(RedisStore::new(
                    client,
                    RedisSettings {
                        namespace: b.namespace.clone(),
                        op_timeout: b.op_timeout,
                        connect_timeout: b.connect_timeout,
                        failure_threshold: b.failure_threshold,
                        cool_down: b.cool_down,
                        mark_retention: b.max_entry_lifetime,
                    },
                ));
                if let Err(e) = store.connect().await {
                    if b.require_redis {
                        return Err(Error::RedisUnavailable(e));
                    }
                    tracing::warn!(error = %e, "Redis unreachable at start: running on L1 until it answers");
                }
                Some(store)
            }
        };
        let registry = Arc::new(Registry::default());
        let l1 = MemoryStore::new(b.l1_capacity_bytes, {
            let registry = Arc::clone(&registry);
            move |pattern| registry.count_eviction(pattern)
        });
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            namespace: b.namespace,
            registry,
            l1,
            l2,
            clock: TagClock::new(),
            log: InvalidationLog::new(),
            flights: Flights::default(),
            default_policy: TtlPolicy::new(b.default_ttl),
            max_lifetime: b.max_entry_lifetime,
            sites: RwLock::new(HashMap::new()),
        });
        if let Some(l2) = &inner.l2 {
            if let Ok(marks) = l2.read_marks(&[]).await {
                inner.clock.observe_clear(marks.clear);
            }
            spawn_mark_refresh(Arc::downgrade(&inner), b.mark_refresh);
        }
        spawn_l1_sweep(Arc::downgrade(&inner), L1_SWEEP_INTERVAL);
        Ok(Cache { inner })
    }

    /// The namespace: the prefix of every Redis key.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Whether an L2 (Redis) is configured.
    pub fn has_l2(&self) -> bool {
        self.inner.l2.is_some()
    }

    /// The policy of patterns used without a TTL of their own (from
    /// [`CacheBuilder::default_ttl`]).
    pub fn default_policy(&self) -> &TtlPolicy {
        &self.inner.default_policy
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
        self.inner
            .registry
            .register(config, self.inner.max_lifetime)
    }

    /// The registered pattern with this template, if any.
    pub fn pattern(&self, template: &str) -> Option<Pattern> {
        self.inner.registry.get(template)
    }

    /// Every registered pattern, sorted by template.
    pub fn patterns(&self) -> Vec<Pattern> {
        self.inner.registry.all()
    }

    // ----- reads -----

    /// The fast path of every single-key read: a fresh L1 hit, counted, or what a miss found in L1
    /// (a stale value for fail-safe), which the caller hands to the full path, boxed so that its
    /// large future is not part of every hit's.
    #[inline]
    pub(crate) fn l1_probe<V: Send + Sync + 'static>(
        &self,
        key: &str,
        pattern: &Pattern,
        absent: Absent,
    ) -> Probe<V> {
        match self.l1_lookup::<V>(key, Timestamp::coarse_now()) {
            Found::Fresh(v) if absent.accepts(&v) => {
                bump(&pattern.0.stats.l1_hits);
                Probe::Hit(v)
            }
            Found::Stale(v) if absent.accepts(&v) => Probe::Miss { stale: Some(v) },
            _ => Probe::Miss { stale: None },
        }
    }

    #[inline]
    fn l1_lookup<V: Send + Sync + 'static>(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Found<Option<Arc<V>>> {
        let Some(entry) = self.inner.l1.get(key) else {
            return Found::Missing;
        };
        if !self
            .inner
            .clock
            .is_current(entry.stamp.written_at, entry.tags())
        {
            self.inner.l1.remove(key);
            return Found::Missing;
        }
        let value = match entry.value {
            None => None,
            Some(any) => match any.downcast::<V>() {
                Ok(v) => Some(v),
                Err(_) => return Found::Missing,
            },
        };
        if now < entry.stamp.fresh_until {
            Found::Fresh(value)
        } else if now < entry.stamp.stale_until {
            Found::Stale(value)
        } else {
            self.inner.l1.remove(key);
            Found::Missing
        }
    }

    fn observe(&self, marks: &Marks, tags: &[&str]) {
        self.inner.clock.observe_clear(marks.clear);
        for (tag, &at) in tags.iter().zip(&marks.tags) {
            self.inner.clock.observe_tag(tag, at);
        }
    }

    /// Decodes an L2 value. A value that does not decode is counted, deleted and treated as absent.
    async fn decode_l2<V>(&self, key: &Key, bytes: &[u8], now: Timestamp) -> Found<FromL2<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let decoded = codec::decode(bytes).and_then(|env| {
            let value = env.payload.map(codec::decode_value::<V>).transpose()?;
            let size = env.payload.map_or(0, codec::decoded_size_estimate);
            Ok((env.stamp, env.tags, value, size))
        });
        let (stamp, tags, value, decoded_size) = match decoded {
            Ok(d) => d,
            Err(error) => {
                bump(&key.pattern.0.stats.decode_errors);
                tracing::warn!(key = %key.text, %error, "undecodable value in Redis: deleted, reloading");
                if let Some(l2) = &self.inner.l2 {
                    l2.unlink_best_effort(&key.text).await;
                }
                return Found::Missing;
            }
        };
        if !self
            .inner
            .clock
            .is_current(stamp.written_at, tags.iter().copied())
        {
            return Found::Missing;
        }
        let tags = if tags.iter().copied().eq(key.tags.iter().map(|t| &**t)) {
            key.tags.clone()
        } else {
            tags.iter().map(|t| Arc::<str>::from(*t)).collect()
        };
        let entry = FromL2 {
            value: value.map(Arc::new),
            stamp,
            tags,
            decoded_size,
        };
        if now < stamp.fresh_until {
            Found::Fresh(entry)
        } else if now < stamp.stale_until {
            Found::Stale(entry)
        } else {
            Found::Missing
        }
    }

    /// Looks keys up in L2 (one round trip, marks included). Returns, per key, what was found.
    async fn l2_lookup<V>(&self, keys: &[&Key], now: Timestamp) -> Vec<Found<FromL2<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let missing = || keys.iter().map(|_| Found::Missing).collect();
        let Some(l2) = &self.inner.l2 else {
            return missing();
        };
        let texts: Vec<&str> = keys.iter().map(|k| k.text.as_str()).collect();
        let mut tags: Vec<&str> = keys
            .iter()
            .flat_map(|k| k.tags.iter().map(|t| &**t))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        match l2.read(&texts, &tags).await {
            Ok((values, marks)) => {
                self.observe(&marks, &tags);
                let mut found = Vec::with_capacity(keys.len());
                for (key, bytes) in keys.iter().zip(values) {
                    found.push(match bytes {
                        Some(bytes) => self.decode_l2(key, &bytes, now).await,
                        None => Found::Missing,
                    });
                }
                found
            }
            Err(e) => {
                if !matches!(e, RedisFailure::CircuitOpen) {
                    for key in keys {
                        bump(&key.pattern.0.stats.l2_errors);
                    }
                }
                missing()
            }
        }
    }

    /// Copies fresh L2 values into L1, unless invalidated since `ticket`. Synchronous: if an
    /// invalidation holds the gate right now, the copy is skipped (the value was still served; the
    /// next read finds it in L2 again) rather than making the reader wait.
    fn fill_l1<V: Send + Sync + 'static>(&self, items: Vec<(&Key, FromL2<V>)>, ticket: Ticket) {
        if items.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let Some(_shared) = self.inner.log.try_shared() else {
            return;
        };
        for (key, found) in items {
            if self
                .inner
                .log
                .invalidated_since(ticket, &key.text, &found.tags)
            {
                continue;
            }
            let l1_fresh = key
                .pattern
                .policy()
                .lifetimes(found.value.is_none())
                .map_or(Duration::ZERO, |l| l.l1_fresh);
            let stamp = Stamp {
                fresh_until: found.stamp.fresh_until.min(now.saturating_add(l1_fresh)),
                ..found.stamp
            };
            let value = found.value.map(|v| v as Arc<dyn Any + Send + Sync>);
            let entry = L1Entry::new(
                value,
                stamp,
                &found.tags,
                key.pattern.0.id,
                found.decoded_size,
            );
            // A plain insert: an entry written since `ticket` (a `set`) is refused by the log
            // check above, or dropped by the `set`'s settle pass (`set_many_shared`).
            self.inner.l1.insert(&key.text, entry);
        }
    }

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
    pub async fn get<V>(&self, key: &Key) -> Option<Arc<V>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        if let Found::Fresh(v) = self.l1_lookup::<V>(&key.text, Timestamp::coarse_now()) {
            bump(&key.pattern.0.stats.l1_hits);
            return v;
        }
        let ticket = self.inner.log.ticket();
        match self.l2_read_one::<V>(key, ticket, Absent::Accept).await {
            Found::Fresh(value) => value,
            _ => {
                bump(&key.pattern.0.stats.misses);
                None
            }
        }
    }

    /// One key from L2 (one round trip, marks included), fresh as of `ticket`. A fresh value that
    /// `absent` accepts is copied into L1 (unless invalidated since `ticket`) and counted as an
    /// L2 hit.
    async fn l2_read_one<V>(
        &self,
        key: &Key,
        ticket: Ticket,
        absent: Absent,
    ) -> Found<Option<Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        match self.l2_lookup::<V>(&[key], ticket.at).await.pop() {
            Some(Found::Fresh(entry)) if absent.accepts(&entry.value) => {
                bump(&key.pattern.0.stats.l2_hits);
                let value = entry.value.clone();
                self.fill_l1(vec![(key, entry)], ticket);
                Found::Fresh(value)
            }
            Some(Found::Stale(entry)) if absent.accepts(&entry.value) => Found::Stale(entry.value),
            _ => Found::Missing,
        }
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
        let (results, _stale, missing) = self.lookup_many::<V>(keys).await;
        for &i in &missing {
            bump(&keys[i].pattern.0.stats.misses);
        }
        results.into_iter().map(Option::flatten).collect()
    }

    /// Both tiers for many keys. Returns per key `Some(value)` if fresh, the stale values usable
    /// for fail-safe, and the indices of keys found fresh in neither tier.
    #[allow(clippy::type_complexity)]
    async fn lookup_many<V>(
        &self,
        keys: &[Key],
    ) -> (
        Vec<Option<Option<Arc<V>>>>,
        Vec<Option<Option<Arc<V>>>>,
        Vec<usize>,
    )
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let now = Timestamp::now();
        let ticket = self.inner.log.ticket();
        let mut results = Vec::with_capacity(keys.len());
        let mut stale: Vec<Option<Option<Arc<V>>>> = Vec::with_capacity(keys.len());
        let mut l2_keys = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.l1_lookup::<V>(&key.text, now) {
                Found::Fresh(v) => {
                    bump(&key.pattern.0.stats.l1_hits);
                    results.push(Some(v));
                    stale.push(None);
                    continue;
                }
                Found::Stale(v) => stale.push(Some(v)),
                Found::Missing => stale.push(None),
            }
            results.push(None);
            l2_keys.push(i);
        }
        if l2_keys.is_empty() {
            return (results, stale, Vec::new());
        }
        let refs: Vec<&Key> = l2_keys.iter().map(|&i| &keys[i]).collect();
        let found = self.l2_lookup::<V>(&refs, now).await;
        let mut fill = Vec::new();
        let mut missing = Vec::new();
        for (&i, found) in l2_keys.iter().zip(found) {
            match found {
                Found::Fresh(entry) => {
                    bump(&keys[i].pattern.0.stats.l2_hits);
                    results[i] = Some(entry.value.clone());
                    fill.push((&keys[i], entry));
                }
                Found::Stale(entry) => {
                    if stale[i].is_none() {
                        stale[i] = Some(entry.value);
                    }
                    missing.push(i);
                }
                Found::Missing => missing.push(i),
            }
        }
        self.fill_l1(fill, ticket);
        (results, stale, missing)
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
        let loaded = match self.l1_probe::<V>(&key.text, &key.pattern, Absent::Skip) {
            Probe::Hit(hit) => hit,
            Probe::Miss { stale } => {
                Box::pin(self.load(
                    key,
                    Absent::Skip,
                    stale,
                    |_: &Option<V>| false,
                    || async move { loader().await.map(Some) },
                ))
                .await?
            }
        };
        match loaded {
            Some(v) => Ok(v),
            // `Absent::Skip` passes over cached absences (written under the same key by
            // `get_or_load_optional`) and stale ones, so the value comes from this loader, which
            // always returns one, or from the cache.
            None => unreachable!("load with Absent::Skip never answers None"),
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
        match self.l1_probe::<V>(&key.text, &key.pattern, Absent::Accept) {
            Probe::Hit(hit) => Ok(hit),
            Probe::Miss { stale } => {
                let never = |_: &Option<V>| false;
                Box::pin(self.load(key, Absent::Accept, stale, never, loader)).await
            }
        }
    }

    /// The cache-aside path of every single-key load, after an L1 miss ([`l1_probe`](Self::l1_probe))
    /// that found `stale`; `skip` vetoes caching a loaded value. The loader yields a `V` or an
    /// `Arc<V>` (`L`): either way the cache shares it without a copy.
    pub(crate) async fn load<V, L, E, F, Fut, S>(
        &self,
        key: &Key,
        absent: Absent,
        stale: Option<Option<Arc<V>>>,
        skip: S,
        loader: F,
    ) -> Result<Option<Arc<V>>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        L: Into<Arc<V>>,
        E: Clone + Send + Sync + 'static,
        S: FnOnce(&Option<L>) -> bool,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<L>, E>>,
    {
        let stats = &key.pattern.0.stats;
        let leader = loop {
            match self.inner.flights.join::<V, E>(&key.text) {
                Role::Leader(leader) => break Some(leader),
                Role::Alone => break None,
                Role::Follower(rx) => match follow(rx).await {
                    Some(Ok(v)) if !absent.accepts(&v) => break None,
                    Some(outcome) => {
                        bump(&stats.misses);
                        return outcome;
                    }
                    // The leader went away without a result: try to lead.
                    None => {}
                },
            }
        };
        let outcome = self.lead(key, absent, stale, skip, loader).await;
        if let Some(leader) = leader {
            leader.finish(&outcome);
        }
        outcome
    }

    async fn lead<V, L, E, F, Fut, S>(
        &self,
        key: &Key,
        absent: Absent,
        mut stale: Option<Option<Arc<V>>>,
        skip: S,
        loader: F,
    ) -> Result<Option<Arc<V>>, E>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        L: Into<Arc<V>>,
        S: FnOnce(&Option<L>) -> bool,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<L>, E>>,
    {
        let stats = &key.pattern.0.stats;
        let ticket = self.inner.log.ticket();
        // A previous leader may have filled L1 between this call's probe and its joining. While
        // Redis serves, the read below finds that leader's value there (it wrote it before
        // finishing); otherwise look in L1 again, so that the loader does not run twice.
        let l2_serving = self.inner.l2.as_ref().is_some_and(|l2| l2.serving());
        if !l2_serving
            && let Found::Fresh(v) = self.l1_lookup::<V>(&key.text, ticket.at)
            && absent.accepts(&v)
        {
            bump(&stats.l1_hits);
            return Ok(v);
        }
        if self.inner.l2.is_some() {
            match self.l2_read_one::<V>(key, ticket, absent).await {
                Found::Fresh(value) => return Ok(value),
                Found::Stale(value) if stale.is_none() => stale = Some(value),
                _ => {}
            }
        }
        bump(&stats.misses);
        let started = Instant::now();
        let span =
            tracing::debug_span!("cache.load", pattern = key.pattern.template(), key = %key.text);
        let result = loader().instrument(span).await;
        stats.record_load(started.elapsed(), result.is_ok());
        match result {
            Ok(value) => {
                let cache_it = !skip(&value);
                let value: Option<Arc<V>> = value.map(Into::into);
                if cache_it {
                    self.write_back(
                        vec![WriteBack {
                            key,
                            value: value.clone(),
                        }],
                        ticket,
                        WriteMode::Fill,
                    )
                    .await;
                }
                Ok(value)
            }
            Err(e) => match stale {
                Some(value) => {
                    bump(&stats.stale_served);
                    tracing::warn!(key = %key.text, "loader failed: serving the stale value (fail-safe)");
                    Ok(value)
                }
                None => Err(e),
            },
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
        let ticket = self.inner.log.ticket();
        let (results, stale, missing) = self.lookup_many::<V>(keys).await;
        let mut results: Vec<Option<Arc<V>>> = results.into_iter().map(Option::flatten).collect();
        if missing.is_empty() {
            return Ok(results);
        }
        for &i in &missing {
            bump(&keys[i].pattern.0.stats.misses);
        }
        let started = Instant::now();
        let span = tracing::debug_span!("cache.load_many", keys = missing.len());
        let loaded = loader(missing.clone()).instrument(span).await;
        let took = started.elapsed();
        let mut seen = Vec::new();
        for &i in &missing {
            let p = &keys[i].pattern;
            if !seen.iter().any(|s: &&Pattern| Arc::ptr_eq(&s.0, &p.0)) {
                p.0.stats.record_load(took, loaded.is_ok());
                seen.push(p);
            }
        }
        match loaded {
            Ok(values) => {
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
            Err(e) => {
                if missing.iter().all(|&i| stale[i].is_some()) {
                    for &i in &missing {
                        bump(&keys[i].pattern.0.stats.stale_served);
                        results[i] = stale[i].clone().flatten();
                    }
                    tracing::warn!(
                        keys = missing.len(),
                        "batch loader failed: serving stale values (fail-safe)"
                    );
                    Ok(results)
                } else {
                    Err(e)
                }
            }
        }
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
        self.set_many_shared(shared).await;
    }

    /// [`set_many`](Self::set_many) of values already shared (cached as they are, not copied).
    pub(crate) async fn set_many_shared<V>(&self, entries: Vec<(Key, Arc<V>)>)
    where
        V: Serialize + Send + Sync + 'static,
    {
        {
            let _exclusive = self.inner.log.exclusive().await;
            for (key, _) in &entries {
                self.inner.log.record(Invalidation::Key(key.text.clone()));
                self.inner.flights.detach(|k| k == key.text);
            }
        }
        let ticket = self.inner.log.ticket();
        let (keys, values): (Vec<Key>, Vec<Arc<V>>) = entries.into_iter().unzip();
        let batch = keys
            .iter()
            .zip(values)
            .map(|(key, v)| WriteBack {
                key,
                value: Some(v),
            })
            .collect();
        self.write_back(batch, ticket, WriteMode::Overwrite).await;
        self.settle_set(&keys, ticket).await;
    }

    /// The end of a `set` of `keys` (written at `ticket`). A read may have fetched the old value
    /// from Redis before this write landed there, with a ticket taken after the set's first log
    /// record: its copy into L1 (`fill_l1`) passes the log check. Settled here, under the
    /// exclusive gate so that no copy runs meanwhile: any entry of these keys older than this
    /// write is dropped, and the keys are logged again, so that a copy still to come from such a
    /// read is refused.
    async fn settle_set(&self, keys: &[Key], ticket: Ticket) {
        let _exclusive = self.inner.log.exclusive().await;
        for key in keys {
            self.inner.l1.remove_if_older(&key.text, ticket.at);
            self.inner.log.record(Invalidation::Key(key.text.clone()));
        }
    }

    /// Encodes and writes values to L1 and (one pipeline) L2, dropping those invalidated since
    /// `ticket` or already older than a known mark.
    async fn write_back<V>(&self, items: Vec<WriteBack<'_, V>>, ticket: Ticket, mode: WriteMode)
    where
        V: Serialize + Send + Sync + 'static,
    {
        let now = Timestamp::now();
        let mut encoded = Vec::with_capacity(items.len());
        for item in items {
            let policy = item.key.pattern.policy();
            let Some(life) = policy.lifetimes(item.value.is_none()) else {
                continue;
            };
            let fresh_until = now.saturating_add(life.l2_fresh);
            let l2_stamp = Stamp {
                written_at: ticket.at,
                fresh_until,
                stale_until: fresh_until.saturating_add(life.stale),
            };
            match codec::encode(item.value.as_deref(), l2_stamp, &item.key.tags) {
                Ok((bytes, payload_start)) => {
                    let decoded_size = codec::decoded_size_estimate(&bytes[payload_start..]);
                    encoded.push((item, l2_stamp, life.l1_fresh, bytes, decoded_size));
                }
                Err(error) => {
                    tracing::warn!(key = %item.key.text, %error, "value not cached: it does not serialize")
                }
            }
        }
        let _shared = self.inner.log.shared().await;
        let mut l2_batch: Vec<EntryWrite<'_>> = Vec::with_capacity(encoded.len());
        for (item, l2_stamp, l1_fresh, bytes, decoded_size) in &encoded {
            let key = item.key;
            if self
                .inner
                .log
                .invalidated_since(ticket, &key.text, &key.tags)
                || !self
                    .inner
                    .clock
                    .is_current(ticket.at, key.tags.iter().map(|t| &**t))
            {
                tracing::debug!(key = %key.text, "loaded value dropped: invalidated while loading");
                continue;
            }
            let l1_stamp = Stamp {
                fresh_until: now.saturating_add(*l1_fresh).min(l2_stamp.fresh_until),
                ..*l2_stamp
            };
            let value = item.value.clone().map(|v| v as Arc<dyn Any + Send + Sync>);
            let entry = L1Entry::new(value, l1_stamp, &key.tags, key.pattern.0.id, *decoded_size);
            self.inner.l1.insert(&key.text, entry);
            l2_batch.push(EntryWrite {
                key: &key.text,
                bytes,
                time_to_live: l2_stamp.stale_until.saturating_duration_since(now),
            });
        }
        if let Some(l2) = &self.inner.l2
            && !l2_batch.is_empty()
            && let Err(e) = l2.write(&l2_batch, ticket.at, mode).await
            && !matches!(e, RedisFailure::CircuitOpen)
        {
            for (item, ..) in &encoded {
                bump(&item.key.pattern.0.stats.l2_errors);
            }
        }
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
        self.invalidate_with(Invalidation::Key(key.text.clone()))
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

    /// The one path of every invalidation. When it returns, no load that started before it can
    /// write its value into either tier.
    pub async fn invalidate_with(&self, what: Invalidation) {
        let now = Timestamp::now();
        self.invalidate_locally(&what, now).await;
        tracing::debug!(?what, "invalidated");
        if let Some(l2) = &self.inner.l2 {
            match &what {
                Invalidation::Key(k) => l2.unlink(&[k], now).await,
                Invalidation::Tag(t) => l2.mark(Some(t), now).await,
                Invalidation::Pattern(g) => l2.unlink_matching(g).await,
                Invalidation::All => l2.mark(None, now).await,
            }
            // A read that took its ticket after the first pass may have fetched the old value
            // from Redis before the UNLINK landed, and may be about to copy it into L1: a second
            // pass removes such a copy and makes such a write-back drop it. (Tags and clears need
            // none: their marks already make every value stamped before them stale.)
            if matches!(what, Invalidation::Key(_) | Invalidation::Pattern(_)) {
                self.invalidate_locally(&what, now).await;
            }
        }
    }

    /// Logs an invalidation, applies it to L1 and detaches the loads in flight that it affects,
    /// all under the exclusive gate (so no write-back interleaves).
    async fn invalidate_locally(&self, what: &Invalidation, now: Timestamp) {
        let _exclusive = self.inner.log.exclusive().await;
        self.inner.log.record(what.clone());
        match what {
            Invalidation::Key(k) => {
                self.inner.l1.remove(k);
                self.inner.flights.detach(|key| key == k);
            }
            Invalidation::Tag(t) => {
                self.inner.clock.observe_tag(t, now);
                // Flights do not know their tags: detach them all (a few extra loads, at worst).
                self.inner.flights.detach(|_| true);
            }
            Invalidation::Pattern(g) => {
                let matches = |k: &str| glob_match(g.as_bytes(), k.as_bytes());
                self.inner.l1.remove_matching(matches);
                self.inner.flights.detach(matches);
            }
            Invalidation::All => {
                self.inner.clock.observe_clear(now);
                self.inner.l1.clear();
                self.inner.flights.detach(|_| true);
            }
        }
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
        let patterns = self
            .inner
            .registry
            .all()
            .iter()
            .map(|p| p.0.stats.snapshot(p.template()))
            .collect();
        let unattributed = self
            .inner
            .l2
            .as_ref()
            .map_or(0, |l2| l2.unattributed_errors.load(Ordering::Relaxed));
        Stats::new(patterns, unattributed, self.inner.l1.usage())
    }

    /// Loads in flight right now.
    pub fn loads_in_flight(&self) -> usize {
        self.inner.flights.in_flight()
    }
}

/// How often expired L1 entries that no read has met are removed.
const L1_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Runs `task` every `every` (the first time one interval after the start) while the cache
/// lives; stops when the cache is dropped or `task` answers `false`.
fn spawn_periodic<F, Fut>(inner: Weak<Inner>, every: Duration, task: F)
where
    F: Fn(Arc<Inner>) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            if !task(inner).await {
                return;
            }
        }
    });
}

/// Removes expired entries from L1 periodically (a read removes those it meets), so that they do
/// not hold the byte budget until size eviction reaches them.
fn spawn_l1_sweep(inner: Weak<Inner>, every: Duration) {
    spawn_periodic(inner, every, |inner| async move {
        // A walk over every entry: off the async workers.
        tokio::task::spawn_blocking(move || inner.l1.remove_expired(Timestamp::now()))
            .await
            .is_ok()
    });
}

/// Re-reads marks from Redis periodically, so that L1 hits notice tag invalidations and clears
/// made by other instances within one interval.
fn spawn_mark_refresh(inner: Weak<Inner>, every: Duration) {
    spawn_periodic(inner, every, |inner| async move {
        let Some(l2) = inner.l2.clone() else {
            return false;
        };
        let tags = inner.clock.known_tags();
        let names: Vec<&str> = tags.iter().map(|t| &**t).collect();
        if let Ok(marks) = l2.read_marks(&names).await {
            inner.clock.observe_clear(marks.clear);
            for (tag, &at) in names.iter().zip(&marks.tags) {
                inner.clock.observe_tag(tag, at);
            }
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PatternConfig;

    async fn l1_cache() -> (Cache, Pattern) {
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

    /// A read that fetched the old value from L2 with a ticket taken while a `set` of the key was
    /// under way copies it into L1 either before the set settles (the settle pass drops it) or
    /// after (the log refuses it): never does the older value stay in L1.
    #[tokio::test]
    async fn a_copy_of_an_older_l2_value_never_outlives_a_set() {
        let (cache, p) = l1_cache().await;
        let key = p.key(&[&1]).unwrap();
        let old = |written_at| FromL2 {
            value: Some(Arc::new(String::from("old"))),
            stamp: Stamp {
                written_at,
                fresh_until: Timestamp::from_micros(u64::MAX / 2),
                stale_until: Timestamp::from_micros(u64::MAX / 2),
            },
            tags: key.tags.clone(),
            decoded_size: 3,
        };
        // The set, step by step as `set_many_shared` runs it; the reads' tickets are taken after
        // its first record.
        {
            let _exclusive = cache.inner.log.exclusive().await;
            cache.inner.log.record(Invalidation::Key(key.text.clone()));
        }
        let (early, late) = (cache.inner.log.ticket(), cache.inner.log.ticket());
        let set_ticket = cache.inner.log.ticket();
        let new = WriteBack {
            key: &key,
            value: Some(Arc::new(String::from("new"))),
        };
        cache
            .write_back(vec![new], set_ticket, WriteMode::Overwrite)
            .await;
        cache.fill_l1(
            vec![(&key, old(Timestamp::from_micros(early.at.as_micros() - 1)))],
            early,
        );
        assert!(
            cache.inner.l1.get(&key.text).is_some(),
            "the early copy lands"
        );
        cache
            .settle_set(std::slice::from_ref(&key), set_ticket)
            .await;
        assert!(
            cache.inner.l1.get(&key.text).is_none(),
            "the settle pass drops the early copy"
        );
        cache.fill_l1(
            vec![(&key, old(Timestamp::from_micros(late.at.as_micros() - 1)))],
            late,
        );
        assert!(
            cache.inner.l1.get(&key.text).is_none(),
            "the log refuses the late copy"
        );
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

    #[tokio::test]
    async fn wrong_type_is_a_miss_not_a_panic() {
        let (cache, p) = l1_cache().await;
        let key = p.key(&[&1]).unwrap();
        cache.set(&key, 5u32).await;
        assert!(cache.get::<String>(&key).await.is_none());
        assert_eq!(cache.get::<u32>(&key).await.as_deref(), Some(&5));
    }
}

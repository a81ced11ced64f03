//! Health of both tiers: [`Cache::health`](crate::Cache::health), the report's types and how it
//! is read off the engine (L1 usage) and the L2 store (circuit, replay queue, PING and INFO).
//!
//! Reads only: never changes a tier or the circuit.

use std::time::Duration;

use crate::cache::Cache;
use crate::store::circuit::CircuitState;

/// The state of L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum L2Status {
    /// No Redis configured: L1 only, by design.
    Disabled,
    /// Redis answers and the circuit is closed.
    Up,
    /// Redis answers but the circuit is not closed yet (recovering), or invalidations are still
    /// queued for replay.
    Degraded,
    /// Redis does not answer: calls are served from L1 and the loaders.
    Down,
}

/// L2 details.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct L2Health {
    /// Overall state.
    pub status: L2Status,
    /// The circuit breaker (`None` without Redis).
    pub circuit: Option<CircuitState>,
    /// PING round trip.
    pub ping: Option<Duration>,
    /// `redis_version` from INFO.
    pub redis_version: Option<String>,
    /// `connected_clients` from INFO.
    pub connected_clients: Option<u64>,
    /// `used_memory` (bytes) from INFO.
    pub used_memory: Option<u64>,
    /// `maxmemory` (bytes, 0 = unlimited) from INFO.
    pub maxmemory: Option<u64>,
    /// `maxmemory_policy` from INFO.
    pub maxmemory_policy: Option<String>,
    /// `evicted_keys` from INFO: keys Redis evicted for `maxmemory` since it started.
    pub evicted_keys: Option<u64>,
    /// Invalidations waiting for Redis to come back.
    pub pending_invalidations: usize,
    /// Why Redis is down.
    pub error: Option<String>,
}

/// L1 details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct L1Health {
    /// Entries.
    pub entries: u64,
    /// Weighted size in bytes.
    pub weighted_bytes: u64,
    /// Budget in bytes.
    pub capacity_bytes: u64,
}

/// A health report of both tiers, from [`Cache::health`](crate::Cache::health).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::Error> {
/// use cache_core::{Cache, L2Status, PatternConfig, TtlPolicy};
/// # use std::time::Duration;
/// let cache = Cache::builder().l1_capacity_bytes(1 << 20).build().await?;
/// let p = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))))?;
/// cache.set(&p.key(&[&1u64])?, 1u8).await;
/// let health = cache.health().await;
/// assert!(health.is_healthy());
/// assert_eq!((health.l2.status, health.l2.circuit), (L2Status::Disabled, None));
/// assert_eq!((health.l1.entries, health.l1.capacity_bytes), (1, 1 << 20));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Health {
    /// L2 (Redis).
    pub l2: L2Health,
    /// L1 (in process).
    pub l1: L1Health,
}

impl Health {
    /// `true` unless L2 is configured and down. A cache with L2 down still serves, slower.
    pub fn is_healthy(&self) -> bool {
        self.l2.status != L2Status::Down
    }

    /// Configuration problems an operator should fix, as sentences; empty when there are none.
    /// Today: a Redis without `maxmemory` (every distinct key a client can make adds an entry
    /// until the host runs out of memory), or whose `maxmemory-policy` is `noeviction` (writes
    /// fail once it is full).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// let health = cache_core::Cache::builder().build().await?.health().await;
    /// assert!(health.warnings().is_empty(), "no Redis, nothing to warn about");
    /// # Ok(()) }
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.l2.maxmemory == Some(0) {
            warnings.push(
                "Redis has no maxmemory: the cache's entries can grow until the host runs out of \
                 memory; set maxmemory and maxmemory-policy allkeys-lru (or volatile-lru)"
                    .to_owned(),
            );
        } else if self.l2.maxmemory_policy.as_deref() == Some("noeviction") {
            warnings.push(
                "Redis's maxmemory-policy is noeviction: cache writes fail once it is full; use \
                 allkeys-lru (or volatile-lru)"
                    .to_owned(),
            );
        }
        warnings
    }
}

impl Cache {
    /// Checks both tiers: PING latency and INFO fields of Redis, circuit state, L1 usage.
    /// Bounded by the Redis timeouts; never fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_core::Error> {
    /// use cache_core::{Cache, health::L2Status};
    /// let cache = Cache::builder().build().await?; // L1 only
    /// let health = cache.health().await;
    /// assert_eq!(health.l2.status, L2Status::Disabled);
    /// assert_eq!(health.l1.entries, 0);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Health {
        let (entries, weighted_bytes, capacity_bytes) = self.engine().l1_usage();
        let l1 = L1Health {
            entries,
            weighted_bytes,
            capacity_bytes,
        };
        let Some(l2) = self.engine().l2() else {
            let l2 = L2Health {
                status: L2Status::Disabled,
                circuit: None,
                ping: None,
                redis_version: None,
                connected_clients: None,
                used_memory: None,
                maxmemory: None,
                maxmemory_policy: None,
                evicted_keys: None,
                pending_invalidations: 0,
                error: None,
            };
            return Health { l2, l1 };
        };
        let circuit = l2.circuit_state();
        let pending = l2.pending_invalidations();
        let l2 = match l2.diagnose().await {
            Ok((ping, info)) => {
                let num = |k: &str| info.get(k).and_then(|v| v.parse().ok());
                L2Health {
                    status: if circuit == CircuitState::Closed && pending == 0 {
                        L2Status::Up
                    } else {
                        L2Status::Degraded
                    },
                    circuit: Some(circuit),
                    ping: Some(ping),
                    redis_version: info.get("redis_version").cloned(),
                    connected_clients: num("connected_clients"),
                    used_memory: num("used_memory"),
                    maxmemory: num("maxmemory"),
                    maxmemory_policy: info.get("maxmemory_policy").cloned(),
                    evicted_keys: num("evicted_keys"),
                    pending_invalidations: pending,
                    error: None,
                }
            }
            Err(e) => L2Health {
                status: L2Status::Down,
                circuit: Some(circuit),
                ping: None,
                redis_version: None,
                connected_clients: None,
                used_memory: None,
                maxmemory: None,
                maxmemory_policy: None,
                evicted_keys: None,
                pending_invalidations: pending,
                error: Some(e.to_string()),
            },
        };
        Health { l2, l1 }
    }
}

//! The facade's warm start: filling a new instance's L1 with what the fleet reads most
//! ([`Cache::warm_from_fleet`]), straight from Redis and without running a loader. A thin method
//! over the engine (`engine/fleet.rs` samples the reads and ranks them), as in `cache/mod.rs`.

use serde::de::DeserializeOwned;

use super::Cache;
use crate::error::RedisFailure;
use crate::key::Pattern;

impl Cache {
    /// Warms this instance's L1 with the values of `pattern` that the instances sharing this
    /// namespace read most, straight from Redis, without running any loader: for a new
    /// instance before it takes traffic. Returns how many fresh values it found (entries already
    /// in L1 are skipped); `Ok(0)` without an L2.
    ///
    /// The popularity comes from sampled reads that reached Redis (see
    /// [`CacheBuilder::fleet_sampling`](crate::CacheBuilder::fleet_sampling)); `V` is the
    /// pattern's value type, as for any read. Tags of the pattern that depend on the key's
    /// arguments are read from each value's envelope.
    pub async fn warm_from_fleet<V>(
        &self,
        pattern: &Pattern,
        limit: usize,
    ) -> Result<usize, RedisFailure>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        self.engine.warm_from_fleet::<V>(pattern, limit).await
    }
}

//! Fleet popularity in Redis: one sorted set per name (`ns:p:<name>`) whose members are keys
//! (without the namespace) scored by how often the instances read them. The engine samples its
//! reads and names the set (one per key pattern); this file only counts and lists.
//!
//! Kept cheap: a sampled read costs one pipelined `ZINCRBY` + trim; each set keeps its
//! [`MAX_MEMBERS`] best members and expires [`SET_TTL`] after its last increment.

use std::sync::Arc;
use std::time::Duration;

use super::RedisStore;
use crate::error::RedisFailure;

/// Members a popularity set keeps (the lowest scores are trimmed).
pub(crate) const MAX_MEMBERS: isize = 50_000;
/// A popularity set no instance increments for this long disappears.
const SET_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl RedisStore {
    fn popularity_key(&self, name: &str) -> String {
        format!("{}:p:{name}", self.settings.namespace)
    }

    /// Counts `by` reads of `key` in the popularity set `name` (best effort: one attempt).
    pub(crate) async fn count_reads(self: &Arc<Self>, name: &str, key: &str, by: u32) {
        let set = self.popularity_key(name);
        let mut pipe = redis::pipe();
        pipe.cmd("ZINCRBY").arg(&set).arg(by).arg(key).ignore();
        pipe.cmd("ZREMRANGEBYRANK")
            .arg(&set)
            .arg(0)
            .arg(-MAX_MEMBERS - 1)
            .ignore();
        pipe.cmd("EXPIRE").arg(&set).arg(SET_TTL.as_secs()).ignore();
        let _ = self
            .run("popularity", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await;
    }

    /// The `limit` most read keys of the popularity set `name`, most read first.
    pub(crate) async fn most_read(
        self: &Arc<Self>,
        name: &str,
        limit: usize,
    ) -> Result<Vec<String>, RedisFailure> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let set = self.popularity_key(name);
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        self.run("popularity", |mut conn| async move {
            // ZREVRANGE rather than `ZRANGE .. REV`, which needs Redis 6.2.
            redis::cmd("ZREVRANGE")
                .arg(&set)
                .arg(0)
                .arg(stop)
                .query_async(&mut conn)
                .await
        })
        .await
    }
}

//! The Redis side of fleet leases: one key per entry key, `ns:l:<key>`, holding the owner's token
//! (a random number, decimal) and expiring after the lease's time (`PX`). Taken with
//! `SET .. NX PX`, renewed by a script that moves the expiry only while the key still holds the
//! owner's token, released by a script that deletes it only then: a holder whose lease expired
//! (and was taken by another instance) can neither renew nor release the new holder's lease.
//!
//! Owns the lease keys and their scripts. What a lease means for a load is the engine's
//! ([`crate::engine`]'s `lease` module).

use std::sync::Arc;
use std::time::Duration;

use super::{Prefixed, RedisStore};
use crate::error::RedisFailure;

/// Moves the expiry of `KEYS[1]` to `ARGV[2]` ms if it holds the token `ARGV[1]`; 1 if it did.
const RENEW_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Deletes `KEYS[1]` if it holds the token `ARGV[1]`; 1 if it did.
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) else return 0 end";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Takes the lease of `key` for `ttl` with `token`, if nobody holds it; `true` if taken.
    pub(crate) async fn acquire_lease(
        self: &Arc<Self>,
        key: &str,
        token: u64,
        ttl: Duration,
    ) -> Result<bool, RedisFailure> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(Prefixed(&self.lease_prefix, key, self.key_close))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        self.run("lease", |mut conn| async move {
            let reply: Option<String> = cmd.query_async(&mut conn).await?;
            Ok(reply.is_some())
        })
        .await
    }

    /// Extends the lease of `key` to `ttl` from now if `token` still holds it; `true` if it does.
    pub(crate) async fn renew_lease(
        self: &Arc<Self>,
        key: &str,
        token: u64,
        ttl: Duration,
    ) -> Result<bool, RedisFailure> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RENEW_SCRIPT)
            .arg(1)
            .arg(Prefixed(&self.lease_prefix, key, self.key_close))
            .arg(token)
            .arg(millis(ttl));
        self.run("lease_renew", |mut conn| async move {
            let renewed: i64 = cmd.query_async(&mut conn).await?;
            Ok(renewed == 1)
        })
        .await
    }

    /// Releases the lease of `key` if `token` still holds it.
    pub(crate) async fn release_lease(
        self: &Arc<Self>,
        key: &str,
        token: u64,
    ) -> Result<(), RedisFailure> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(Prefixed(&self.lease_prefix, key, self.key_close))
            .arg(token);
        self.run("lease_release", |mut conn| async move {
            cmd.query_async::<i64>(&mut conn).await.map(|_| ())
        })
        .await
    }
}

//! The Redis side of fleet leases: one key per entry key, `ns:l:<key>`, holding the owner's token
//! (a random number, decimal) and expiring after the lease's time (`PX`). Taken with
//! `SET .. NX PX` by a script that first checks, in the same atomic step, that the entry itself is
//! not in Redis already (so that an instance whose read missed just before another one wrote the
//! value and released its lease does not load a second time: measured, 2 loads out of 1,000
//! callers in `benches/fleet.rs` before); renewed by a script that moves the expiry only while the
//! key still holds the owner's token, released by a script that deletes it only then: a holder
//! whose lease expired (and was taken by another instance) can neither renew nor release the new
//! holder's lease. A holder that writes its value back releases the lease in the write's own
//! script call instead ([`super::scripts::WRITE`], the same compare-and-delete after the write),
//! one round trip fewer; the release script here is for a load that writes nothing back.
//!
//! The store remembers the leases its single-flight leaders hold. A leader that finds the lease
//! held by an older leader of this process takes it over (compare-and-set on the older token, in
//! one script, `TAKE_OVER`): single flight leaves one leader per key, so two exist only when an
//! invalidation detached the older one (its value may predate the invalidation and is dropped),
//! and the newer one must not wait for it as it would for another instance (polling until the
//! older load ends). The older load can then neither renew nor release the lease. Refresh-ahead's
//! leases are neither remembered nor taken over.
//!
//! Owns the lease keys and their scripts. What a lease means for a load is the engine's
//! ([`crate::engine`]'s `lease` module).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::{Prefixed, RedisStore};
use crate::error::RedisFailure;

/// Takes the lease `KEYS[1]` with the token `ARGV[1]` for `ARGV[2]` ms unless the entry `KEYS[2]`
/// exists (2) or the lease is held (0); 1 if taken. Sent by hash, as the others.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end \
         if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end return 0",
    )
});

/// Takes the lease `KEYS[1]` with the token `ARGV[1]` for `ARGV[2]` ms if nobody holds it or it
/// still holds the token `ARGV[3]` (a load of this process that an invalidation detached); with
/// `ARGV[4]` = 1, not if the entry `KEYS[2]` exists (2). 1 if taken, 0 if held by another owner.
static TAKE_OVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 2 end \
         if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end \
         if redis.call('GET', KEYS[1]) == ARGV[3] then \
         redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0",
    )
});

/// What an attempt at taking a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Taken: this caller loads.
    Taken,
    /// Held by another owner.
    Held,
    /// Not taken: the entry is in Redis already (read it; it may still be stale or undecodable).
    EntryExists,
}

/// Moves the expiry of `KEYS[1]` to `ARGV[2]` ms if it holds the token `ARGV[1]`; 1 if it did.
/// Sent by hash (`EVALSHA`, loaded on `NOSCRIPT`: see [`super::scripts`]).
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
         return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});

/// Deletes `KEYS[1]` if it holds the token `ARGV[1]`; 1 if it did.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
         return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});

/// What the acquire and take-over scripts' reply means.
fn acquired(reply: i64) -> Acquired {
    match reply {
        1 => Acquired::Taken,
        2 => Acquired::EntryExists,
        _ => Acquired::Held,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// A single-flight leader's [`Self::acquire_lease`]: it also takes over a lease that an older
    /// leader of this process holds (one that an invalidation detached), in one atomic script.
    /// A lease taken is this process's until [`Self::forget_lease`]. Refresh-ahead, which runs
    /// beside its key's flights, takes leases with [`Self::acquire_lease`] instead: it never takes
    /// one over, nor is its own taken over (it would only load the key twice).
    pub(crate) async fn acquire_lease_as_leader(
        self: &Arc<Self>,
        key: &str,
        token: u64,
        ttl: Duration,
        unless_entry: bool,
    ) -> Result<Acquired, RedisFailure> {
        let held_here = self.held_leases.lock().get(key).copied();
        let acquired = match held_here {
            Some(older) => self.take_over(key, token, ttl, older, unless_entry).await,
            None => self.acquire_lease(key, token, ttl, unless_entry).await,
        };
        if let Ok(Acquired::Taken) = acquired {
            self.held_leases.lock().insert(key.to_owned(), token);
        }
        acquired
    }

    /// This process no longer holds the lease `token` of `key` (released, written back,
    /// abandoned); a newer load of this process that took it over keeps it.
    pub(crate) fn forget_lease(&self, key: &str, token: u64) {
        let mut held = self.held_leases.lock();
        if held.get(key) == Some(&token) {
            held.remove(key);
        }
    }

    /// The lease of `key`, from this process's `older` token if it still holds it.
    async fn take_over(
        self: &Arc<Self>,
        key: &str,
        token: u64,
        ttl: Duration,
        older: u64,
        unless_entry: bool,
    ) -> Result<Acquired, RedisFailure> {
        let mut take_over = TAKE_OVER.key(Prefixed(&self.lease_prefix, key, self.key_close));
        take_over
            .key(Prefixed(&self.entry_prefix, key, self.key_close))
            .arg(token)
            .arg(millis(ttl))
            .arg(older)
            .arg(u8::from(unless_entry));
        self.run("lease", |mut conn| async move {
            let reply: i64 = take_over.invoke_async(&mut conn).await?;
            Ok(acquired(reply))
        })
        .await
    }

    /// Takes the lease of `key` for `ttl` with `token`, if nobody holds it and, when
    /// `unless_entry`, the entry is not in Redis (one atomic script); else a plain `SET NX PX`.
    pub(crate) async fn acquire_lease(
        self: &Arc<Self>,
        key: &str,
        token: u64,
        ttl: Duration,
        unless_entry: bool,
    ) -> Result<Acquired, RedisFailure> {
        let lease = Prefixed(&self.lease_prefix, key, self.key_close);
        if !unless_entry {
            let mut cmd = redis::cmd("SET");
            cmd.arg(lease)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl));
            return self
                .run("lease", |mut conn| async move {
                    let reply: Option<String> = cmd.query_async(&mut conn).await?;
                    Ok(if reply.is_some() {
                        Acquired::Taken
                    } else {
                        Acquired::Held
                    })
                })
                .await;
        }
        let mut acquire = ACQUIRE.key(lease);
        acquire
            .key(Prefixed(&self.entry_prefix, key, self.key_close))
            .arg(token)
            .arg(millis(ttl));
        self.run("lease", |mut conn| async move {
            let reply: i64 = acquire.invoke_async(&mut conn).await?;
            Ok(acquired(reply))
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
        let mut renew = RENEW.key(Prefixed(&self.lease_prefix, key, self.key_close));
        renew.arg(token).arg(millis(ttl));
        self.run("lease_renew", |mut conn| async move {
            let renewed: i64 = renew.invoke_async(&mut conn).await?;
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
        let mut release = RELEASE.key(Prefixed(&self.lease_prefix, key, self.key_close));
        release.arg(token);
        self.run("lease_release", |mut conn| async move {
            release.invoke_async::<i64>(&mut conn).await.map(|_| ())
        })
        .await
    }
}

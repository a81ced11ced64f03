//! The Lua scripts the L2 runs, sent by hash (`EVALSHA`), never by text after the first time.
//!
//! Each script is a [`redis::Script`] built once per process (its SHA1 computed once). A single
//! call goes through [`redis::ScriptInvocation::invoke_async`]: `EVALSHA`, and on `NOSCRIPT` (a
//! Redis that restarted, failed over or ran `SCRIPT FLUSH`) `SCRIPT LOAD` then `EVALSHA` again. A
//! pipeline of script calls goes through [`query_pipeline`], which does the same for the whole
//! pipeline (redis-rs does not reload scripts inside pipelines; on a cluster `SCRIPT LOAD` goes
//! to every primary): every script call here is
//! idempotent (a guarded write, a later-wins mark), so sending the pipeline again is harmless.
//!
//! Owns the text of the write-back and mark scripts and the reload of pipelines. The lease
//! scripts (`lease.rs`) and the reclaim script (`reclaim.rs`) are [`Script`]s of their own files,
//! run singly through `invoke_async`.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{ErrorKind, Script, ServerErrorKind};

/// Writes an entry (`KEYS[1]`) unless its tombstone (`KEYS[2]`) is at least as recent as the time
/// the value's load started (`ARGV[3]`); `ARGV[1]` the bytes, `ARGV[2]` the time to live in ms.
/// With a third key, the entry's fleet lease (`KEYS[3]`, held by the caller with the token
/// `ARGV[4]`), it then releases that lease as the release script of `lease.rs` does (deleted only
/// while it holds that token), whether or not the entry was written: a leased load writes back and
/// releases in one round trip. 1 if the entry was written.
pub(super) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local t = tonumber(redis.call('GET', KEYS[2]) or '0') or 0 \
         local written = 0 \
         if t < tonumber(ARGV[3]) then \
         redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) written = 1 end \
         if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end \
         return written",
    )
});

/// Keeps the later of two marks (`KEYS[1]`, the new one `ARGV[1]`, kept `ARGV[2]` ms): clocks
/// of different instances may disagree a little.
pub(super) static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 \
         if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end \
         return 1",
    )
});

/// Sends `pipe`; if Redis does not know one of `scripts` (`NOSCRIPT`), loads them and sends the
/// pipeline once more.
pub(super) async fn query_pipeline<C: ConnectionLike + Send>(
    pipe: &redis::Pipeline,
    scripts: &[&Script],
    conn: &mut C,
) -> redis::RedisResult<()> {
    match pipe.query_async::<()>(conn).await {
        Err(e) if is_noscript(&e) => {
            for script in scripts {
                script.load_async(conn).await?;
            }
            pipe.query_async::<()>(conn).await
        }
        other => other,
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_script_has_its_own_hash() {
        let hashes = [WRITE.get_hash(), MARK.get_hash()];
        assert!(hashes.iter().all(|h| h.len() == 40));
        assert_ne!(hashes[0], hashes[1]);
    }
}

//! The `tracing` spans the cache opens, for a subscriber to show or export (an OpenTelemetry
//! layer turns each into a span of a trace; the loader's own spans, a database query say, are
//! its children). All at `DEBUG` level, under the target of the file that opens them
//! (`cache_core::...`): `RUST_LOG=cache_core=debug`, or the exporter's filter, selects them.
//!
//! Names and fields are stable:
//!
//! | span | fields |
//! |---|---|
//! | `cache.load` | `pattern` (the key's template), `key_hash`, `tier = "loader"`, `outcome` |
//! | `cache.refresh_ahead` | the same: a background reload by refresh-ahead |
//! | `cache.load_many` | `keys` (how many the loader was asked for), `tier = "loader"`, `outcome` |
//! | `cache.l2` | `op` (what the call does: `read`, `write`, `unlink`, `mark`, `publish`, `lease`, `lease_renew`, `lease_release`, `popularity`, `reclaim`, ...), `tier = "l2"`, `outcome` |
//!
//! `outcome` is recorded when the work ends: `ok`, `error` (the loader's `Err`, a failed Redis
//! call), `stale` (the loader failed or ran past its hard timeout and a stale value was served),
//! or `timeout` (a Redis call past its timeout). `key_hash` is the first 16 hex digits of the
//! MD5 of the rendered key (without the namespace), never the key itself, which may hold what
//! users typed: the same key has the same hash in every instance and every run, so that traces
//! of one key can be found together.

use std::fmt;

use md5::{Digest, Md5};
use tracing::Span;
use tracing::field::Empty;

use crate::key::Key;

/// How the work of a span ended (its `outcome` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Stale,
    Timeout,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Stale => "stale",
            Outcome::Timeout => "timeout",
        }
    }

    /// `Ok` or `Error` for a result.
    pub(crate) fn of<T, E>(result: &Result<T, E>) -> Outcome {
        if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        }
    }
}

/// Records `outcome` on `span` (nothing if the span is disabled).
pub(crate) fn record(span: &Span, outcome: Outcome) {
    span.record("outcome", outcome.as_str());
}

/// The `key_hash` field: computed only when a subscriber wants the span.
struct KeyHash<'a>(&'a Key);

impl fmt::Display for KeyHash<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Md5::digest(self.0.as_str().as_bytes());
        for byte in &digest[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A loader's run for `key` after a miss in both tiers.
pub(crate) fn load(key: &Key) -> Span {
    tracing::debug_span!(
        "cache.load",
        pattern = key.pattern().template(),
        key_hash = %KeyHash(key),
        tier = "loader",
        outcome = Empty,
    )
}

/// A background reload of `key` by refresh-ahead.
pub(crate) fn refresh_ahead(key: &Key) -> Span {
    tracing::debug_span!(
        "cache.refresh_ahead",
        pattern = key.pattern().template(),
        key_hash = %KeyHash(key),
        tier = "loader",
        outcome = Empty,
    )
}

/// One loader call for the `keys` a batch read missed.
pub(crate) fn load_many(keys: usize) -> Span {
    tracing::debug_span!("cache.load_many", keys, tier = "loader", outcome = Empty)
}

/// One Redis call, `op`.
pub(crate) fn l2(op: &'static str) -> Span {
    tracing::debug_span!("cache.l2", op, tier = "l2", outcome = Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_their_documented_names() {
        let names = [
            Outcome::Ok,
            Outcome::Error,
            Outcome::Stale,
            Outcome::Timeout,
        ]
        .map(Outcome::as_str);
        assert_eq!(names, ["ok", "error", "stale", "timeout"]);
        assert_eq!(Outcome::of(&Err::<(), _>(())), Outcome::Error);
    }
}

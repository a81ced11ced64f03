//! TTL policy: how long an entry lives in L2 and in L1, with jitter and a fail-safe stale window.
//!
//! Owns the policy and the draw of one write's `Lifetimes`. Never touches stamps or the tiers:
//! the engine turns lifetimes into timestamps.

use std::time::Duration;

use crate::error::{ConfigError, ConfigErrorKind, Error};

/// The lifetime rules of one key pattern.
///
/// - `ttl`: how long an entry is fresh in L2 (Redis).
/// - `l1_ttl`: how long it is fresh in L1; never longer than `ttl`. By default half of `ttl`,
///   at most 60 s, so that instances sharing a Redis converge quickly.
/// - `jitter`: each entry's TTLs are shortened by a random fraction in `[0, jitter)`, so that keys
///   written together do not expire together. Default 5 %.
/// - `stale`: after it stops being fresh, an entry is kept this much longer and served only when
///   the loader fails (fail-safe). Default none.
/// - `negative_ttl`: how long a loader's `Ok(None)` is cached. Default: not cached.
/// - `max_size`: the largest encoded value (envelope bytes) cached; a larger value is served to
///   its caller but cached in neither tier, and counted (`Counters::oversize`). Default: the
///   cache's [`max_value_size`](crate::CacheBuilder::max_value_size), 1 MiB unless set.
///
/// ```
/// use cache_core::TtlPolicy;
/// use std::time::Duration;
/// let policy = TtlPolicy::new(Duration::from_secs(1800))
///     .l1_ttl(Duration::from_secs(30))
///     .stale(Duration::from_secs(300))
///     .negative_ttl(Duration::from_secs(60));
/// assert_eq!(policy.effective_l1_ttl(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct TtlPolicy {
    ttl: Duration,
    l1_ttl: Option<Duration>,
    jitter: f64,
    stale: Duration,
    negative_ttl: Option<Duration>,
    max_size: Option<usize>,
}

/// The default jitter fraction.
pub const DEFAULT_JITTER: f64 = 0.05;
/// The longest default L1 TTL.
pub const DEFAULT_MAX_L1_TTL: Duration = Duration::from_secs(60);

/// Lifetimes of one write, counted from the write (already jittered, whole milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    /// Fresh in L2 for this long.
    pub(crate) l2_fresh: Duration,
    /// Fresh in L1 for this long (never longer than in L2).
    pub(crate) l1_fresh: Duration,
    /// Kept this much longer than fresh, for fail-safe.
    pub(crate) stale: Duration,
}

impl TtlPolicy {
    /// A policy with the given L2 TTL and the defaults for everything else.
    pub fn new(ttl: Duration) -> Self {
        TtlPolicy {
            ttl,
            l1_ttl: None,
            jitter: DEFAULT_JITTER,
            stale: Duration::ZERO,
            negative_ttl: None,
            max_size: None,
        }
    }

    /// Sets the L1 TTL (at most the L2 TTL).
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
        self
    }

    /// Sets the jitter fraction, from 0.0 (none) to 0.5.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// Sets the fail-safe stale window.
    pub fn stale(mut self, window: Duration) -> Self {
        self.stale = window;
        self
    }

    /// Caches `None` results for this long.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Caches values whose encoded form is at most `bytes` long (larger ones are served, not
    /// cached). Overrides the cache's default, [`CacheBuilder::max_value_size`](crate::CacheBuilder::max_value_size).
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The largest encoded value cached, if this policy sets one.
    pub fn max_value_size(&self) -> Option<usize> {
        self.max_size
    }

    /// The L2 TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The L1 TTL in force: the one set, or half the L2 TTL capped at 60 s.
    pub fn effective_l1_ttl(&self) -> Duration {
        self.l1_ttl.unwrap_or_else(|| {
            (self.ttl / 2)
                .min(DEFAULT_MAX_L1_TTL)
                .max(self.ttl.min(Duration::from_millis(1)))
        })
    }

    /// The stale window.
    pub fn stale_window(&self) -> Duration {
        self.stale
    }

    /// The TTL of cached `None` results, if they are cached.
    pub fn negative(&self) -> Option<Duration> {
        self.negative_ttl
    }

    /// Checks the policy; `max_lifetime` bounds `ttl + stale`.
    pub(crate) fn validate(&self, max_lifetime: Duration) -> Result<(), Error> {
        let bad = |m: String| Err(ConfigError::new(ConfigErrorKind::Policy, m).into());
        if self.ttl.is_zero() {
            return bad("ttl must be positive".into());
        }
        if self.max_size == Some(0) {
            return bad("max_size must be positive".into());
        }
        if let Some(l1) = self.l1_ttl
            && (l1 > self.ttl || l1.is_zero())
        {
            return bad(format!(
                "l1_ttl ({l1:?}) must be positive and at most ttl ({:?})",
                self.ttl
            ));
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return bad(format!(
                "jitter must be between 0.0 and 0.5, not {}",
                self.jitter
            ));
        }
        if let Some(n) = self.negative_ttl
            && n.is_zero()
        {
            return bad("negative_ttl must be positive".into());
        }
        let longest = self
            .ttl
            .max(self.negative_ttl.unwrap_or_default())
            .checked_add(self.stale);
        if longest.is_none_or(|l| l > max_lifetime) {
            return bad(format!(
                "ttl + stale exceeds the cache's max entry lifetime ({max_lifetime:?})"
            ));
        }
        Ok(())
    }

    /// Draws the lifetimes of one write. `negative` selects the negative TTL.
    pub(crate) fn lifetimes(&self, negative: bool) -> Option<Lifetimes> {
        let ttl = if negative {
            self.negative_ttl?
        } else {
            self.ttl
        };
        let l1 = if negative {
            ttl.min(self.effective_l1_ttl())
        } else {
            self.effective_l1_ttl()
        };
        let factor = if self.jitter > 0.0 {
            1.0 - rand::random::<f64>() * self.jitter
        } else {
            1.0
        };
        let jittered =
            |d: Duration| Duration::from_millis(((d.as_millis() as f64 * factor) as u64).max(1));
        Some(Lifetimes {
            l2_fresh: jittered(ttl),
            l1_fresh: jittered(l1),
            // Whole milliseconds, like the others.
            stale: Duration::new(self.stale.as_secs(), self.stale.subsec_millis() * 1_000_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_defaults_to_half_capped() {
        assert_eq!(
            TtlPolicy::new(Duration::from_secs(1800)).effective_l1_ttl(),
            Duration::from_secs(60)
        );
        assert_eq!(
            TtlPolicy::new(Duration::from_secs(10)).effective_l1_ttl(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn jitter_spreads_and_stays_below_ttl() {
        let p = TtlPolicy::new(Duration::from_secs(1000)).jitter(0.1);
        let draws: Vec<Duration> = (0..200)
            .map(|_| p.lifetimes(false).unwrap().l2_fresh)
            .collect();
        let (low, high) = (Duration::from_secs(900), Duration::from_secs(1000));
        assert!(draws.iter().all(|&d| (low..=high).contains(&d)));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(
            distinct.len() > 100,
            "jitter should spread expiries, got {} distinct",
            distinct.len()
        );
        for _ in 0..100 {
            let l = p.lifetimes(false).unwrap();
            assert!(l.l1_fresh <= l.l2_fresh);
        }
    }

    #[test]
    fn validation() {
        let max = Duration::from_secs(86_400);
        assert!(TtlPolicy::new(Duration::ZERO).validate(max).is_err());
        assert!(
            TtlPolicy::new(Duration::from_secs(1))
                .l1_ttl(Duration::from_secs(2))
                .validate(max)
                .is_err()
        );
        assert!(
            TtlPolicy::new(Duration::from_secs(1))
                .jitter(0.9)
                .validate(max)
                .is_err()
        );
        assert!(
            TtlPolicy::new(max)
                .stale(Duration::from_secs(1))
                .validate(max)
                .is_err()
        );
        assert!(TtlPolicy::new(Duration::from_secs(1)).validate(max).is_ok());
        // Sums that overflow are a configuration error, not a panic.
        assert!(
            TtlPolicy::new(Duration::MAX)
                .stale(Duration::MAX)
                .validate(Duration::MAX)
                .is_err()
        );
        assert!(
            TtlPolicy::new(Duration::from_secs(1))
                .negative_ttl(Duration::MAX)
                .stale(Duration::from_secs(1))
                .validate(Duration::MAX)
                .is_err()
        );
        assert_eq!(TtlPolicy::new(Duration::from_secs(1)).lifetimes(true), None);
    }
}

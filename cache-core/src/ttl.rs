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
/// - `lease`: whether a miss takes the fleet lease (one loader in the fleet). Default `true`.
/// - `refresh_ahead`: from which fraction of its TTL a read reloads an entry in the background.
///   Default none.
/// - `soft_timeout`, `hard_timeout`: how long a load may run before a stale value answers
///   instead (the load going on in the background, or abandoned). Default none.
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
    lease: bool,
    refresh_ahead: Option<f64>,
    soft_timeout: Option<Duration>,
    hard_timeout: Option<Duration>,
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
            lease: true,
            refresh_ahead: None,
            soft_timeout: None,
            hard_timeout: None,
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

    /// Whether a miss of this pattern takes the fleet lease (default `true`: one instance of the
    /// fleet loads a missing key while the others wait for its value; see
    /// [`CacheBuilder::fleet_lease`](crate::CacheBuilder::fleet_lease)). `false` for loaders
    /// cheap enough that every instance may run them.
    pub fn lease(mut self, enabled: bool) -> Self {
        self.lease = enabled;
        self
    }

    /// Refresh-ahead: a read in the last `1 - fraction` of an entry's TTL (from `fraction` of it
    /// on; `0.8`: the last fifth) returns the entry at once and triggers one background reload in
    /// the fleet (under the fleet lease), so a key read often never expires. Only reads whose
    /// loader can run in the background trigger it ([`Cache::get_or_refresh`](crate::Cache::get_or_refresh)).
    /// A fraction strictly between 0 and 1. Default: none.
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.refresh_ahead = Some(fraction);
        self
    }

    /// The refresh-ahead fraction, if any.
    pub fn refresh_ahead_fraction(&self) -> Option<f64> {
        self.refresh_ahead
    }

    /// Soft loader timeout: a caller holding a stale value (within the `stale` window) whose load
    /// takes longer than this gets the stale value, while the load goes on in the background and
    /// fills the cache. Needs a loader that can run on its own task
    /// ([`Cache::get_or_refresh`](crate::Cache::get_or_refresh)); other reads wait for their
    /// load. Default: none.
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = Some(timeout);
        self
    }

    /// Hard loader timeout: a load with a stale value in hand (within the `stale` window) that
    /// takes longer than this is abandoned (the loader's future dropped) and the stale value
    /// served (fail-safe). A load with no stale value is not abandoned: there is nothing to
    /// answer with, and the loader's error type cannot say "timed out"; bound such calls with
    /// `tokio::time::timeout`. Default: none.
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = Some(timeout);
        self
    }

    /// The soft and hard loader timeouts.
    pub fn load_timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.soft_timeout, self.hard_timeout)
    }

    /// Whether misses of this pattern take the fleet lease.
    pub fn leased(&self) -> bool {
        self.lease
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
        if let Some(f) = self.refresh_ahead
            && !(f > 0.0 && f < 1.0)
        {
            return bad(format!(
                "refresh_ahead must be strictly between 0.0 and 1.0, not {f}"
            ));
        }
        if self.soft_timeout.is_some_and(|t| t.is_zero())
            || self.hard_timeout.is_some_and(|t| t.is_zero())
        {
            return bad("load timeouts must be positive".into());
        }
        if let (Some(soft), Some(hard)) = (self.soft_timeout, self.hard_timeout)
            && soft >= hard
        {
            return bad(format!(
                "soft_timeout ({soft:?}) must be shorter than hard_timeout ({hard:?})"
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
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(
                TtlPolicy::new(Duration::from_secs(1))
                    .refresh_ahead(bad)
                    .validate(max)
                    .is_err(),
                "refresh_ahead {bad}"
            );
        }
        assert!(
            TtlPolicy::new(Duration::from_secs(1))
                .refresh_ahead(0.8)
                .validate(max)
                .is_ok()
        );
        let ms = Duration::from_millis;
        let timeouts = |soft, hard| {
            TtlPolicy::new(Duration::from_secs(1))
                .soft_timeout(soft)
                .hard_timeout(hard)
                .validate(max)
        };
        assert!(timeouts(ms(100), ms(500)).is_ok());
        assert!(timeouts(ms(500), ms(500)).is_err(), "soft before hard");
        assert!(timeouts(ms(0), ms(500)).is_err());
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

//! Time as the cache counts it: [`Timestamp`], a point on the wall clock in microseconds since the
//! Unix epoch, the unit of every stamp, mark and tombstone (fine enough that an invalidation and a
//! load starting right after it are never stamped alike). Spans of time are [`Duration`]s; a
//! timestamp moves by one with [`Timestamp::saturating_add`], never by multiplying bare integers.
//!
//! Owns the clock reads (precise and coarse). Never touches the tiers, keys or the engine.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: microseconds since the Unix epoch. Stamps of entries, tag and clear marks,
/// tickets and tombstones are all `Timestamp`s; `Timestamp::EPOCH` (0) means "never".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself: the mark of something that never happened.
    pub(crate) const EPOCH: Timestamp = Timestamp(0);

    /// The end of time: the deadline of something that never comes due.
    pub(crate) const NEVER: Timestamp = Timestamp(u64::MAX);

    /// The timestamp `micros` microseconds after the epoch (as stored in Redis and envelopes).
    #[inline]
    pub(crate) const fn from_micros(micros: u64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the epoch (as stored in Redis and envelopes).
    #[inline]
    pub(crate) const fn as_micros(self) -> u64 {
        self.0
    }

    /// Now, from the precise wall clock: what every stamp and mark is taken from.
    #[inline]
    pub(crate) fn now() -> Timestamp {
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }

    /// Now, from the kernel's coarse wall clock, for the expiry check of an L1 hit: on Linux a
    /// read of the time of the last tick (`CLOCK_REALTIME_COARSE`, about 5 ns against about 30 ns
    /// for [`Timestamp::now`]), behind by at most one tick (1 to 4 ms). An L1 entry may so be
    /// served up to a tick past its L1 TTL, which is counted in seconds. Never used to stamp
    /// anything: stamps and marks come from [`Timestamp::now`].
    #[inline]
    pub(crate) fn coarse_now() -> Timestamp {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            match nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE) {
                Ok(t) => {
                    let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
                    let micros = u64::try_from(t.tv_nsec() / 1000).unwrap_or(0);
                    Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
                }
                Err(_) => Timestamp::now(),
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            Timestamp::now()
        }
    }

    /// The timestamp `span` later (saturating; a span is truncated to whole microseconds).
    /// In `u64` arithmetic (not `Duration::as_micros`'s `u128`): it runs on every L2 hit.
    #[inline]
    pub(crate) fn saturating_add(self, span: Duration) -> Timestamp {
        let micros = span
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(span.subsec_micros()));
        Timestamp(self.0.saturating_add(micros))
    }

    /// How long after `earlier` this is; zero if it is not after it.
    #[inline]
    pub(crate) fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} µs", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_at_most_a_few_ticks_behind() {
        for _ in 0..1000 {
            let coarse = Timestamp::coarse_now();
            let precise = Timestamp::now();
            assert!(
                coarse <= precise.saturating_add(Duration::from_micros(1)),
                "never ahead: {coarse} > {precise}"
            );
            let behind = precise.saturating_duration_since(coarse);
            assert!(behind < Duration::from_millis(50), "behind by {behind:?}");
        }
    }

    #[test]
    fn spans_move_timestamps_in_microseconds_and_saturate() {
        let t = Timestamp::from_micros(1_000);
        assert_eq!(
            t.saturating_add(Duration::from_millis(2)).as_micros(),
            3_000
        );
        assert_eq!(
            Timestamp::from_micros(u64::MAX - 1).saturating_add(Duration::MAX),
            Timestamp::from_micros(u64::MAX)
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_micros(400)),
            Duration::from_micros(600)
        );
        assert_eq!(
            Timestamp::EPOCH.saturating_duration_since(t),
            Duration::ZERO
        );
    }
}

//! Time as the cache counts it: [`Timestamp`], a point on the wall clock in microseconds since the
//! Unix epoch, the unit of every stamp, mark and tombstone (fine enough that an invalidation and a
//! load starting right after it are never stamped alike). Spans of time are [`Duration`]s; a
//! timestamp moves by one with [`Timestamp::saturating_add`], never by multiplying bare integers.
//!
//! Every stamp is read from a [`Clock`]: Redis's clock as estimated here (the local wall clock
//! plus a correction measured against Redis's `TIME`), so that no decision depends on two
//! machines' wall clocks agreeing (see [`Clock`]).
//!
//! Owns the clock reads (precise and coarse) and the correction. Never touches the tiers, keys or
//! the engine: whoever talks to Redis hands [`Clock::observe_redis_time`] what `TIME` answered.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
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

/// The clock of one cache: Redis's clock, estimated locally.
///
/// Stamps of entries, tickets, tag and clear marks and tombstones are compared across instances
/// (a mark set by one instance against an entry loaded by another), so they must come from one
/// clock. Here that clock is Redis's: [`Clock::now`] is the local wall clock plus a correction,
/// `TIME` minus the local clock at the midpoint of the `TIME` call, measured when the backplane
/// connects and again every 30 s (`engine/backplane.rs`), keeping the fastest of a few `TIME`
/// calls. The error between two instances is then at most about half a round trip to Redis
/// (tens of µs on a LAN), whatever their wall clocks say (and zero between instances of one
/// machine, see [`Clock::observe_redis_time`]); a step of the local wall clock (NTP) is corrected at the next sample. Until the
/// first sample (Redis unreachable at start, or no Redis) the correction is zero: with one
/// instance, or instances on one machine, nothing is compared across clocks anyway.
///
/// Reading it costs one relaxed atomic load and an add on top of the wall clock read (the hit
/// path's coarse read included).
#[derive(Debug)]
pub(crate) struct Clock {
    /// Microseconds to add to the real wall clock to read Redis's clock: the skew (tests) before
    /// the first sample, the measured correction after.
    offset: AtomicI64,
    /// A simulated error of this machine's wall clock (tests only; 0 otherwise).
    skew: i64,
}

impl Clock {
    /// A clock whose local wall clock is off by `skew_micros` (0 outside tests).
    pub(crate) fn new(skew_micros: i64) -> Clock {
        Clock {
            offset: AtomicI64::new(skew_micros),
            skew: skew_micros,
        }
    }

    /// This machine's wall clock as it reads it (with the simulated skew).
    pub(crate) fn local(&self) -> Timestamp {
        Timestamp::now().shifted(self.skew)
    }

    /// Now, on Redis's clock: what every stamp and mark is taken from.
    #[inline]
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::now().shifted(self.offset.load(Ordering::Relaxed))
    }

    /// Now, coarse ([`Timestamp::coarse_now`]), on Redis's clock: for the expiry check of an L1
    /// hit only.
    #[inline]
    pub(crate) fn coarse_now(&self) -> Timestamp {
        Timestamp::coarse_now().shifted(self.offset.load(Ordering::Relaxed))
    }

    /// Takes a sample of Redis's clock: `redis` is what `TIME` answered to a call sent at the
    /// local time `sent` and answered at `received` (both from [`Clock::local`]).
    ///
    /// If the local clock agrees with Redis's within what the sample can tell (half its round
    /// trip: Redis read its clock somewhere between `sent` and `received`), it is kept as is:
    /// the correction would be noise. So instances on one machine (one clock) stamp exactly
    /// alike, and instances whose clocks NTP keeps close are not moved by a noisy sample.
    pub(crate) fn observe_redis_time(
        &self,
        redis: Timestamp,
        sent: Timestamp,
        received: Timestamp,
    ) {
        let midpoint = sent.as_micros() / 2 + received.as_micros() / 2;
        let half_round_trip = i128::from(received.as_micros().saturating_sub(sent.as_micros()) / 2);
        let mut local_error = i128::from(redis.as_micros()) - i128::from(midpoint);
        if local_error.abs() <= half_round_trip + 1 {
            local_error = 0;
        }
        let offset = i128::from(self.skew) + local_error;
        let offset = i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
        self.offset.store(offset, Ordering::Relaxed);
    }
}

impl Timestamp {
    /// This timestamp moved by `micros` (either way), saturating.
    #[inline]
    fn shifted(self, micros: i64) -> Timestamp {
        Timestamp(self.0.saturating_add_signed(micros))
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
    fn a_sample_of_redis_time_cancels_the_skew() {
        let at = Timestamp::from_micros;
        for skew in [5_000_000, -5_000_000, 0] {
            let clock = Clock::new(skew);
            let before = clock.now();
            assert!(
                before.as_micros().abs_diff(Timestamp::now().as_micros())
                    >= skew.unsigned_abs().saturating_sub(100_000),
                "unsynchronized: the local (skewed) clock"
            );
            // Redis's clock 1 s behind the real wall clock, a call of 2 ms.
            let sent = clock.local();
            let real = Timestamp::now().as_micros();
            clock.observe_redis_time(
                at(real - 1_000_000 + 1_000),
                sent,
                sent.saturating_add(Duration::from_millis(2)),
            );
            let now = clock.now().as_micros();
            let expected = Timestamp::now().as_micros() - 1_000_000;
            assert!(
                now.abs_diff(expected) < 20_000,
                "skew {skew}: {now} against {expected}"
            );
        }
    }

    #[test]
    fn a_clock_that_agrees_within_the_sample_s_precision_is_kept() {
        let clock = Clock::new(0);
        let sent = clock.local();
        let received = sent.saturating_add(Duration::from_millis(2));
        // Redis answered 0.8 ms after the midpoint of a 2 ms call: not measurably different.
        clock.observe_redis_time(
            sent.saturating_add(Duration::from_micros(1_800)),
            sent,
            received,
        );
        let (now, real) = (clock.now().as_micros(), Timestamp::now().as_micros());
        assert!(now.abs_diff(real) < 1_000, "kept: {now} against {real}");
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

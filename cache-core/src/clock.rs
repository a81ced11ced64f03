//! Wall-clock microseconds, the unit of every stamp and invalidation mark (fine enough that an
//! invalidation and a load starting right after it are never stamped alike).

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
#[inline]
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Microseconds since the Unix epoch from the kernel's coarse wall clock, for the expiry check of
/// an L1 hit: on Linux a read of the time of the last tick (`CLOCK_REALTIME_COARSE`, about 5 ns
/// against about 30 ns for [`now_us`]), behind by at most one tick (1 to 4 ms). An L1 entry may
/// so be served up to a tick past its L1 TTL, which is counted in seconds. Never used to stamp
/// anything: stamps and marks come from [`now_us`].
#[inline]
pub(crate) fn coarse_now_us() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        match nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE) {
            Ok(t) => {
                let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
                let micros = u64::try_from(t.tv_nsec() / 1000).unwrap_or(0);
                secs.saturating_mul(1_000_000).saturating_add(micros)
            }
            Err(_) => now_us(),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        now_us()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_at_most_a_few_ticks_behind() {
        for _ in 0..1000 {
            let coarse = coarse_now_us();
            let precise = now_us();
            assert!(coarse <= precise + 1, "never ahead: {coarse} > {precise}");
            assert!(
                precise - coarse < 50_000,
                "behind by {} µs",
                precise - coarse
            );
        }
    }
}

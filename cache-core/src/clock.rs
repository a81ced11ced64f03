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

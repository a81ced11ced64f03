//! Where a read's answer came from: the tier that served it, or the load that produced it.
//!
//! Reported by the `*_with_source` reads of [`Cache`](crate::Cache) (for an `X-Cache` header, a
//! log line, a test); the plain reads do not compute it.

/// Where a read's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// A fresh entry of L1 (in process).
    L1,
    /// A fresh entry of L2 (Redis), now copied into L1.
    L2,
    /// This call ran the loader (a miss in both tiers).
    Loader,
    /// Another call's loader, which this call waited for (single flight): a miss too.
    Coalesced,
    /// The loader failed and a stale entry was served instead (fail-safe).
    Stale,
}

impl Source {
    /// Whether a tier answered with a fresh entry (no loader ran for this call).
    pub fn is_hit(self) -> bool {
        matches!(self, Source::L1 | Source::L2)
    }

    /// The conventional `X-Cache` value: `hit-l1`, `hit-l2`, `miss` (a loader ran, this call's or
    /// another's) or `stale`.
    ///
    /// ```
    /// use cache_core::Source;
    /// assert_eq!(Source::L2.x_cache(), "hit-l2");
    /// assert_eq!(Source::Coalesced.x_cache(), "miss");
    /// ```
    pub fn x_cache(self) -> &'static str {
        match self {
            Source::L1 => "hit-l1",
            Source::L2 => "hit-l2",
            Source::Loader | Source::Coalesced => "miss",
            Source::Stale => "stale",
        }
    }
}

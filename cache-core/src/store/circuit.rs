//! A circuit breaker for L2: after `threshold` consecutive failures it opens, and L2 is skipped
//! (no call, no timeout wait) until a background probe succeeds after the cool-down.
//!
//! Owns the circuit's state and its transitions only: it never calls Redis (the store's
//! connection guard asks it for a permit and reports each outcome).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The state of the circuit, as reported by health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CircuitState {
    /// L2 is used.
    Closed,
    /// L2 is skipped. Once the cool-down has ended, the next call starts a background probe;
    /// until then the circuit stays `Open`, however long ago the cool-down ended.
    Open,
    /// A probe is in flight: its answer closes the circuit or opens it for another cool-down.
    HalfOpen,
}

/// What a caller may do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Go ahead.
    Call,
    /// The cool-down is over: the caller must start the (single) probe. L2 stays skipped meanwhile.
    Probe,
    /// Skip L2.
    Skip,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

#[derive(Debug)]
pub(crate) struct Circuit {
    open: AtomicBool,
    inner: Mutex<Inner>,
    threshold: u32,
    cool_down: Duration,
}

impl Circuit {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Circuit {
            open: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                failures: 0,
                opened_at: None,
                probing: false,
            }),
            threshold: threshold.max(1),
            cool_down,
        }
    }

    /// Whether a call may go to L2 now. The closed fast path is one atomic load.
    #[inline]
    pub(crate) fn permit(&self) -> Permit {
        if !self.open.load(Ordering::Acquire) {
            return Permit::Call;
        }
        let mut inner = self.inner.lock();
        match inner.opened_at {
            None => Permit::Call,
            Some(_) if inner.probing => Permit::Skip,
            Some(at) if at.elapsed() >= self.cool_down => {
                inner.probing = true;
                Permit::Probe
            }
            Some(_) => Permit::Skip,
        }
    }

    pub(crate) fn on_success(&self) {
        if self.open.load(Ordering::Acquire) {
            let mut inner = self.inner.lock();
            *inner = Inner {
                failures: 0,
                opened_at: None,
                probing: false,
            };
            self.open.store(false, Ordering::Release);
        } else {
            let mut inner = self.inner.lock();
            inner.failures = 0;
        }
    }

    /// Records a failure; returns `true` if it opened the circuit.
    pub(crate) fn on_failure(&self) -> bool {
        let mut inner = self.inner.lock();
        inner.failures = inner.failures.saturating_add(1);
        if inner.probing || (inner.opened_at.is_none() && inner.failures >= self.threshold) {
            let was_open = inner.opened_at.is_some();
            inner.opened_at = Some(Instant::now());
            inner.probing = false;
            self.open.store(true, Ordering::Release);
            return !was_open;
        }
        false
    }

    /// Whether calls are being skipped (`Open` or `HalfOpen`): one atomic load.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> CircuitState {
        let inner = self.inner.lock();
        match inner.opened_at {
            None => CircuitState::Closed,
            Some(_) if inner.probing => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once_after_cool_down() {
        let c = Circuit::new(3, Duration::from_millis(20));
        assert_eq!(c.permit(), Permit::Call);
        assert!(!c.on_failure());
        assert!(!c.on_failure());
        assert!(c.on_failure());
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.permit(), Permit::Skip);
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(c.permit(), Permit::Probe);
        assert_eq!(c.permit(), Permit::Skip, "only one probe at a time");
        assert_eq!(c.state(), CircuitState::HalfOpen);
        c.on_failure();
        assert_eq!(c.state(), CircuitState::Open, "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(c.permit(), Permit::Probe);
        c.on_success();
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.permit(), Permit::Call);
    }

    #[test]
    fn half_open_only_while_a_probe_is_in_flight() {
        let c = Circuit::new(1, Duration::from_millis(10));
        assert!(c.on_failure());
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(
            c.state(),
            CircuitState::Open,
            "cool-down over but no probe started yet"
        );
        assert_eq!(c.permit(), Permit::Probe);
        assert_eq!(c.state(), CircuitState::HalfOpen, "probe in flight");
        c.on_failure();
        assert_eq!(c.state(), CircuitState::Open);
    }

    #[test]
    fn success_resets_the_failure_count() {
        let c = Circuit::new(2, Duration::from_secs(60));
        c.on_failure();
        c.on_success();
        c.on_failure();
        assert_eq!(c.state(), CircuitState::Closed);
    }
}

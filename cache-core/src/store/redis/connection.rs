//! The connection to Redis and the guard around every call: one multiplexed connection (on a
//! cluster, redis-rs's cluster connection; through Sentinel, to the master it names: see
//! [`super::deployment`]), opened on demand and dropped on an I/O error, on a `READONLY` reply
//! (a demoted master) and when Sentinel names another master; each call checked by the circuit breaker (skipped, not
//! waited for, while Redis is known to be down), bounded by one timeout that covers connecting,
//! the replay of queued invalidations and the command; and the background probe that closes the
//! circuit once Redis answers again. (Why this and not redis-rs's `ConnectionManager`: see
//! [`super`].)
//!
//! Owns the connection slot, the circuit's bookkeeping and the call budgets. Knows no key layout.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::RedisStore;
use super::deployment::L2Connection;
use crate::clock::{Clock, Timestamp};
use crate::error::RedisFailure;
use crate::spans::{self, Outcome};
use crate::store::circuit::{CircuitState, Permit};

/// Settings of the L2 tier.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub(crate) namespace: String,
    pub(crate) op_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) failure_threshold: u32,
    pub(crate) cool_down: Duration,
    pub(crate) mark_retention: Duration,
}

impl RedisSettings {
    /// Time allowed to a background probe: connect, PING and replay. The builder rejects
    /// settings for which these sums overflow; saturating here keeps that a config error only.
    pub(crate) fn probe_budget(&self) -> Duration {
        self.connect_timeout
            .checked_add(self.op_timeout)
            .unwrap_or(Duration::MAX)
    }

    /// Time allowed to one pattern invalidation (SCAN + UNLINK in batches).
    pub(crate) fn scan_budget(&self) -> Duration {
        self.op_timeout.checked_mul(100).unwrap_or(Duration::MAX)
    }

    /// Time allowed to a health diagnosis: connect, PING and INFO.
    pub(crate) fn diagnose_budget(&self) -> Duration {
        self.op_timeout
            .checked_mul(2)
            .and_then(|t| t.checked_add(self.connect_timeout))
            .unwrap_or(Duration::MAX)
    }
}

/// How many `TIME` calls a sample of Redis's clock makes; the one answered fastest is kept (its
/// midpoint is the surest: the error is at most half its round trip).
const CLOCK_SAMPLES: usize = 3;

/// Samples Redis's clock into `clock` on `conn`.
pub(in crate::store) async fn sample_redis_clock(
    conn: &mut L2Connection,
    clock: &Clock,
) -> redis::RedisResult<()> {
    let mut best: Option<(Timestamp, Timestamp, Timestamp)> = None;
    for _ in 0..CLOCK_SAMPLES {
        let sent = clock.local();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
        let received = clock.local();
        let redis = Timestamp::from_micros(secs.saturating_mul(1_000_000).saturating_add(micros));
        let rtt = |s: Timestamp, r: Timestamp| r.saturating_duration_since(s);
        if best.is_none_or(|(_, s, r)| rtt(sent, received) < rtt(s, r)) {
            best = Some((redis, sent, received));
        }
    }
    if let Some((redis, sent, received)) = best {
        clock.observe_redis_time(redis, sent, received);
    }
    Ok(())
}

impl RedisStore {
    /// The open connection, if it was opened under the deployment's current generation.
    fn open_connection(&self) -> Option<L2Connection> {
        let generation = self.deployment.generation();
        match self.conn.read().as_ref() {
            Some((c, opened)) if *opened == generation => Some(c.clone()),
            _ => None,
        }
    }

    pub(super) async fn connection(&self) -> redis::RedisResult<L2Connection> {
        if let Some(c) = self.open_connection() {
            return Ok(c);
        }
        // Boxed: the connecting future is large, and every call's future would carry it.
        Box::pin(self.reconnect()).await
    }

    /// Opens the connection (one caller at a time), unless another caller just did.
    async fn reconnect(&self) -> redis::RedisResult<L2Connection> {
        let _one_at_a_time = self.connect_lock.lock().await;
        if let Some(c) = self.open_connection() {
            return Ok(c);
        }
        // Single-server responses are bounded by the timeout around each call (`run`); a
        // cluster's by its client too, so that its retries and redirections stop in time.
        let (mut conn, generation) = self
            .deployment
            .connect(self.settings.connect_timeout, self.settings.op_timeout)
            .await?;
        // Each new connection samples Redis's clock (so does the backplane's): stamps taken
        // after this are on Redis's clock even if the backplane has not connected yet.
        sample_redis_clock(&mut conn, &self.clock).await?;
        *self.conn.write() = Some((conn.clone(), generation));
        Ok(conn)
    }

    pub(super) fn drop_connection(&self) {
        *self.conn.write() = None;
    }

    /// Tries once (at build time) to connect and PING, then to read the namespace's clear mark:
    /// refused credentials (`NOAUTH` after a connection without them) and an ACL that denies the
    /// cache its keys (`NOPERM`) show here, not on the first cache call. The caller decides what
    /// a failure means (a configuration error, or starting degraded).
    pub(crate) async fn connect(&self) -> Result<(), RedisFailure> {
        let check = async {
            let mut conn = self.connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            let _: bool = redis::cmd("EXISTS")
                .arg(&self.clear_key)
                .query_async(&mut conn)
                .await?;
            Ok::<_, redis::RedisError>(())
        };
        let budget = self.settings.probe_budget();
        match tokio::time::timeout(budget, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.circuit.on_failure();
                Err(e.into())
            }
            Err(_) => {
                self.circuit.on_failure();
                Err(RedisFailure::Timeout(budget))
            }
        }
    }

    /// Runs one L2 operation under the circuit, the timeout and a tracing span.
    pub(super) async fn run<T, F, Fut>(
        self: &Arc<Self>,
        op: &'static str,
        f: F,
    ) -> Result<T, RedisFailure>
    where
        F: FnOnce(L2Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match self.circuit.permit() {
            Permit::Call => {}
            Permit::Probe => {
                self.spawn_probe();
                return Err(RedisFailure::CircuitOpen);
            }
            Permit::Skip => return Err(RedisFailure::CircuitOpen),
        }
        let timeout = self.settings.op_timeout;
        let call = async {
            let mut conn = self.connection().await?;
            if self.has_pending.load(Ordering::Acquire) {
                // Boxed, as the connecting: rare, and large.
                Box::pin(self.flush_pending(&mut conn)).await?;
            }
            f(conn).await
        };
        let span = spans::l2(op);
        #[cfg(feature = "metrics")]
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, call)
            .instrument(span.clone())
            .await;
        #[cfg(feature = "metrics")]
        self.latency.record(started.elapsed());
        spans::record(
            &span,
            match &outcome {
                Ok(Ok(_)) => Outcome::Ok,
                Ok(Err(_)) => Outcome::Error,
                Err(_) => Outcome::Timeout,
            },
        );
        match outcome {
            Ok(Ok(v)) => {
                self.circuit.on_success();
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_readonly(&e) {
                    // A demoted master: find the new one (Sentinel), reconnect either way.
                    self.deployment.on_readonly();
                    self.drop_connection();
                } else if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                {
                    self.drop_connection();
                }
                self.failed(op, &e);
                Err(e.into())
            }
            Err(_) => {
                self.failed(op, &"timeout");
                Err(RedisFailure::Timeout(timeout))
            }
        }
    }

    pub(super) fn failed(&self, op: &str, error: &dyn std::fmt::Display) {
        if self.circuit.on_failure() {
            tracing::warn!(op, %error, cool_down = ?self.settings.cool_down, "Redis failing: circuit opened, serving without L2");
        } else {
            tracing::debug!(op, %error, "Redis call failed");
        }
    }

    /// Probes Redis in the background with a fresh connection; closes the circuit on success.
    pub(super) fn spawn_probe(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.drop_connection();
            let probe = async {
                let mut conn = this.connection().await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                this.flush_pending(&mut conn).await
            };
            match tokio::time::timeout(this.settings.probe_budget(), probe).await {
                Ok(Ok(())) => {
                    tracing::info!("Redis answers again: circuit closed");
                    this.circuit.on_success();
                }
                _ => {
                    this.drop_connection();
                    this.circuit.on_failure();
                }
            }
        });
    }

    /// PING latency and the INFO fields a health report shows. Bypasses the circuit (it is a
    /// diagnosis) but not the timeout.
    pub(crate) async fn diagnose(
        &self,
    ) -> Result<(Duration, HashMap<String, String>), RedisFailure> {
        let timeout = self.settings.diagnose_budget();
        let probe = async {
            let mut conn = self.connection().await?;
            let started = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            let ping = started.elapsed();
            let info = conn.info().await?;
            let fields = info
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .collect();
            Ok::<_, redis::RedisError>((ping, fields))
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(r) => r.map_err(RedisFailure::from),
            Err(_) => Err(RedisFailure::Timeout(timeout)),
        }
    }

    /// Starts the background probe if the circuit is open and its cool-down is over. The
    /// backplane's reader calls this after each read that Redis answered, so that the circuit
    /// closes once Redis is back even when no traffic reaches L2 (every read an L1 hit).
    pub(crate) fn probe_if_open(self: &Arc<Self>) {
        if self.circuit.is_open() && matches!(self.circuit.permit(), Permit::Probe) {
            self.spawn_probe();
        }
    }

    /// Whether a read would be sent to Redis now (the circuit is closed).
    pub(crate) fn serving(&self) -> bool {
        !self.circuit.is_open()
    }

    pub(crate) fn circuit_state(&self) -> CircuitState {
        self.circuit.state()
    }
}

/// Whether Redis answered `READONLY` (a replica, or a master just demoted by a failover).
fn is_readonly(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY")
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

#[cfg(test)]
impl RedisSettings {
    /// Settings for unit tests: short timeouts, a threshold that keeps the circuit closed.
    pub(crate) fn for_tests(namespace: &str) -> RedisSettings {
        RedisSettings {
            namespace: namespace.to_owned(),
            op_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            failure_threshold: 100,
            cool_down: Duration::from_secs(1),
            mark_retention: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_saturate_instead_of_overflowing() {
        let settings = RedisSettings {
            op_timeout: Duration::MAX,
            connect_timeout: Duration::MAX,
            ..RedisSettings::for_tests("ns")
        };
        assert_eq!(settings.probe_budget(), Duration::MAX);
        assert_eq!(settings.scan_budget(), Duration::MAX);
        assert_eq!(settings.diagnose_budget(), Duration::MAX);
    }
}

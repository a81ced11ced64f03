//! The validation of a [`CacheBuilder`]'s settings before anything starts: the namespace (which
//! must not reach another namespace's keys), durations (positive, and capped so that nothing
//! derived from them overflows), sizes, and the metrics prefix. A setting that fails is a
//! [`ConfigError`] of its kind.
//!
//! Owns the rules only; never builds anything.

use std::time::Duration;

use super::CacheBuilder;
use crate::error::{ConfigError, ConfigErrorKind, Error};
use crate::ttl::TtlPolicy;

/// The largest value any duration setting of the builder accepts: 100 years. Every sum and
/// product the cache derives from its settings (call budgets, expiry times in microseconds since
/// the epoch) then fits; larger values are rejected by [`CacheBuilder::build`].
pub const MAX_DURATION_SETTING: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Checks a namespace: non-empty, printable ASCII (`!` to `~`), without `:` (the separator of
/// the key layout `ns:k:<key>`, so `x` with the pattern `p:*` would reach the keys of a namespace
/// `x:k:p`) and without the glob characters `* ? [ ] \\` (`a*` would reach `ab`'s keys).
///
/// ```
/// use cache_core::validate_namespace;
/// assert!(validate_namespace("shop.v2").is_ok());
/// for bad in ["", "x:k:p", "a*", "a?", "a[b]", "a\\b", "has space", "caf\u{e9}"] {
///     let error = validate_namespace(bad).unwrap_err();
///     assert!(error.message().contains(&format!("`{}`", bad.escape_debug())));
/// }
/// ```
pub fn validate_namespace(namespace: &str) -> Result<(), ConfigError> {
    let ok = !namespace.is_empty()
        && namespace.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b':' | b'*' | b'?' | b'[' | b']' | b'\\')
        });
    if ok {
        return Ok(());
    }
    Err(ConfigError::new(
        ConfigErrorKind::Namespace,
        format!(
            "namespace `{}` must be non-empty printable ASCII without spaces, `:` or the glob \
             characters `* ? [ ] \\`",
            namespace.escape_debug()
        ),
    ))
}

impl CacheBuilder {
    pub(super) fn validate(&self) -> Result<(), Error> {
        validate_namespace(&self.namespace)?;
        if self.max_value_size == 0 {
            return Err(ConfigError::new(
                ConfigErrorKind::Policy,
                "max_value_size must be positive",
            )
            .into());
        }
        #[cfg(feature = "metrics")]
        {
            if self.metrics.interval.is_zero() {
                return Err(ConfigError::new(
                    ConfigErrorKind::Duration,
                    "metrics_interval must be positive",
                )
                .into());
            }
            let prefix = &self.metrics.prefix;
            if prefix.is_empty()
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::Namespace,
                    format!("metrics_prefix `{prefix}` must be non-empty letters, digits and `_`"),
                )
                .into());
            }
        }
        if self.op_timeout.is_zero()
            || self.connect_timeout.is_zero()
            || self.lease.ttl < Duration::from_millis(3)
            || self.lease.wait.is_zero()
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Duration,
                "timeouts and intervals must be positive (a lease's ttl at least 3 ms)",
            )
            .into());
        }
        for (name, value) in [
            ("redis_timeout", self.op_timeout),
            ("redis_connect_timeout", self.connect_timeout),
            ("circuit_breaker cool-down", self.cool_down),
            ("max_entry_lifetime", self.max_entry_lifetime),
            ("default_ttl", self.default_ttl),
            ("fleet lease ttl", self.lease.ttl),
            ("fleet lease wait", self.lease.wait),
        ] {
            if value > MAX_DURATION_SETTING {
                return Err(ConfigError::new(
                    ConfigErrorKind::Duration,
                    format!(
                        "{name} ({value:?}) exceeds the maximum of {MAX_DURATION_SETTING:?} (100 years)"
                    ),
                )
                .into());
            }
        }
        // Under these caps nothing derived from the settings overflows: the L2 budgets (at most
        // 100 × a timeout) and expiry times in µs since the epoch stay far below the limits, and
        // the budgets saturate regardless (`RedisSettings`).
        TtlPolicy::new(self.default_ttl).validate(self.max_entry_lifetime)
    }
}

//! Errors of configuration and key rendering. Cache operations themselves never fail because of
//! the cache: Redis trouble is counted and logged, and the call is served from L1 or the loader.
//!
//! In the style of redis-rs's error: a variant says what failed, a kind says which way, and the
//! underlying error stays reachable through [`std::error::Error::source`]. Owns the public error
//! types only; never touches the tiers or the engine.

use std::time::Duration;

use crate::key::template::TemplateError;

/// A configuration or registration error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key or tag template is invalid, or a key could not be rendered.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The template is already registered with another policy or other tags.
    #[error("pattern `{template}` is already registered with a different TTL policy or tags")]
    PatternConflict {
        /// The template.
        template: String,
    },
    /// A builder or policy setting is out of range, or Redis refused the cache's credentials or
    /// TLS handshake at build time ([`ConfigErrorKind::Auth`], [`ConfigErrorKind::Tls`]).
    #[error("invalid configuration: {0}")]
    Config(#[source] ConfigError),
    /// The Redis URL does not parse.
    #[error("invalid Redis URL: {0}")]
    RedisUrl(#[source] redis::RedisError),
    /// Redis was required at build time (`require_redis(true)`) and could not be reached.
    #[error("Redis is required but could not be reached: {0}")]
    RedisUnavailable(#[source] RedisFailure),
}

/// A setting out of range: its [kind](ConfigErrorKind) and what is wrong, in words.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_core::error::{ConfigErrorKind, Error};
/// let Err(Error::Config(e)) = cache_core::Cache::builder().namespace("a b").build().await else {
///     panic!("a namespace with a space is rejected");
/// };
/// assert_eq!(e.kind(), ConfigErrorKind::Namespace);
/// assert!(e.message().contains("a b"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    kind: ConfigErrorKind,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            message: message.into(),
        }
    }

    /// Which kind of setting is wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// What is wrong, in words (names the setting).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// The kind of a [`ConfigError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The namespace is empty, or has a byte that is not printable ASCII, a space, `:` or a glob
    /// character (see [`validate_namespace`](crate::builder::validate_namespace)).
    Namespace,
    /// A timeout or interval is zero, or a duration exceeds the 100-year cap.
    Duration,
    /// A TTL policy is invalid: zero TTL, L1 TTL above the TTL, jitter out of range, or
    /// `ttl + stale` above the cache's max entry lifetime.
    Policy,
    /// A limit of one cache is reached (more than 2^32 key patterns).
    Limit,
    /// Redis refused the credentials (`WRONGPASS`, `NOAUTH`), or its ACL denies the user what the
    /// cache needs (`NOPERM`). Reported by `build()` at once, never retried as an outage; the
    /// message names the user, never the password.
    Auth,
    /// The TLS settings cannot apply (PEM that does not parse, TLS settings for a `redis://`
    /// URL), or the TLS handshake failed (unknown CA, wrong server name, a client certificate
    /// missing or refused).
    Tls,
    /// The Redis settings contradict each other (TLS settings beside a client of one's own).
    Redis,
}

/// Why a call to Redis produced no answer: a timeout, an error of Redis or of the connection (the
/// redis-rs error, kept as the source), or the circuit breaker skipping Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisFailure {
    /// No answer within the timeout (connect or call).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Redis, or the connection to it, failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// Not sent: the circuit breaker is open after repeated failures.
    #[error("skipped: the circuit breaker is open")]
    CircuitOpen,
}

impl RedisFailure {
    /// `true` for a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RedisFailure::Timeout(_))
    }

    /// The redis-rs error, when Redis or the connection failed.
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match self {
            RedisFailure::Redis(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a key could not be rendered.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The template does not parse.
    #[error("invalid template `{template}`: {source}")]
    Template {
        /// The template text.
        template: String,
        /// Where and what.
        #[source]
        source: TemplateError,
    },
    /// A tag template names a placeholder that the key has no argument for.
    #[error("template `{template}` uses `<{placeholder}>`, which is not an argument of the key")]
    UnknownPlaceholder {
        /// The template text.
        template: String,
        /// The placeholder spec.
        placeholder: String,
    },
    /// Wrong number of arguments.
    #[error("template `{template}` takes {expected} argument(s), {got} given")]
    Arity {
        /// The template text.
        template: String,
        /// Arguments the template takes.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
    /// A `:hash` placeholder was given a plain value, or a plain one a [`Hashed`](crate::key::Hashed).
    #[error(
        "placeholder `<{placeholder}>`: wrap the value in `Hashed` exactly for `:hash` placeholders"
    )]
    HashMismatch {
        /// The placeholder spec.
        placeholder: String,
    },
    /// A hashed value failed to serialize.
    #[error("could not serialize a hashed key argument: {0}")]
    Serialize(String),
    /// A `Display` implementation returned an error.
    #[error("a key argument's Display implementation failed")]
    Display,
}

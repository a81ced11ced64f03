//! Errors of configuration and key rendering. Cache operations themselves never fail because of
//! the cache: Redis trouble is counted and logged, and the call is served from L1 or the loader.

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
    /// A builder or policy setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The Redis URL does not parse.
    #[error("invalid Redis URL: {0}")]
    RedisUrl(#[source] redis::RedisError),
    /// Redis was required at build time (`require_redis(true)`) and could not be reached.
    #[error("Redis is required but could not be reached: {0}")]
    RedisUnavailable(String),
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

#![doc = include_str!("../README.md")]
//!
//! ## Crate layout
//!
//! - [`Cache`] (`cache/`): the public facade, thin methods with their docs, over the
//!   crate-private engine (`engine/`: reads, loads with single flight and fail-safe, writes,
//!   invalidation, background tasks), which [`CacheBuilder`] (`builder.rs`) starts;
//! - where the L2 is (`redis_target.rs`): a URL with [`TlsConfig`] or a redis-rs client of one's
//!   own, the password hidden from `Debug`, and refused credentials or TLS handshakes at build
//!   time turned into configuration errors;
//! - [`key`]: templates, rendering, the registry of [`Pattern`]s, macro call sites' bindings, glob
//!   matching; [`ttl`]: the TTL policy; [`invalidation`]: what can be invalidated;
//! - the tiers (`store/`, crate-private): L1 (moka) and L2 (Redis, with its circuit breaker and
//!   replay queue), which know entries and bytes, never patterns;
//! - [`CachedBody`] (`body.rs`): a response body cached with its `ETag`; [`Source`]
//!   (`source.rs`): which tier served a read; `http` (feature `http`): HTTP caching over them;
//! - [`codec`]: the L2 envelope; [`metrics`], [`health`], [`error`]; [`spans`]: the `tracing`
//!   spans on loads and Redis calls; time (`clock.rs`);
//! - `__private`: what the macros' generated code calls.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod body;
pub mod builder;
pub mod cache;
mod clock;
pub mod codec;
mod engine;
pub mod error;
pub mod health;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod invalidation;
pub mod key;
pub mod metrics;
#[cfg(feature = "metrics")]
mod metrics_export;
mod redis_target;
pub mod source;
pub mod spans;
mod store;
pub mod ttl;

#[doc(hidden)]
pub mod __internals;
#[doc(hidden)]
pub mod __private;

pub use body::CachedBody;
pub use builder::{CacheBuilder, validate_namespace};
pub use cache::{Cache, Reclaimed};
pub use error::{ConfigError, Error, KeyError, RedisFailure};
pub use health::{Health, L2Status};
pub use invalidation::Invalidation;
pub use key::{Hashed, Key, KeyArg, Pattern, PatternConfig};
pub use metrics::{BackplaneStats, Counters, Stats};
pub use redis_target::TlsConfig;
pub use source::Source;
pub use store::circuit::CircuitState;
pub use ttl::TtlPolicy;

pub use cache_macros::*;

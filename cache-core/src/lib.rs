#![doc = include_str!("../README.md")]
//!
//! ## Crate layout
//!
//! - [`Cache`] (`cache.rs`): the public facade, thin methods with their docs, over the
//!   crate-private engine (`engine/`: reads, loads with single flight and fail-safe, writes,
//!   invalidation, background tasks), which [`CacheBuilder`] (`builder.rs`) starts;
//! - [`key`]: templates, rendering, the registry of [`Pattern`]s, macro call sites' bindings, glob
//!   matching; [`ttl`]: the TTL policy; [`invalidation`]: what can be invalidated;
//! - the tiers (`store/`, crate-private): L1 (moka) and L2 (Redis, with its circuit breaker and
//!   replay queue), which know entries and bytes, never patterns;
//! - [`codec`]: the L2 envelope; [`metrics`], [`health`], [`error`]; time (`clock.rs`);
//! - `__private`: what the macros' generated code calls.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod builder;
pub mod cache;
mod clock;
pub mod codec;
mod engine;
pub mod error;
pub mod health;
pub mod invalidation;
pub mod key;
pub mod metrics;
#[cfg(feature = "metrics")]
mod metrics_export;
mod store;
pub mod ttl;

#[doc(hidden)]
pub mod __private;

pub use builder::CacheBuilder;
pub use cache::Cache;
pub use error::{ConfigError, Error, KeyError, RedisFailure};
pub use health::{Health, L2Status};
pub use invalidation::Invalidation;
pub use key::{Hashed, Key, KeyArg, Pattern, PatternConfig};
pub use metrics::{Counters, Stats};
pub use store::circuit::CircuitState;
pub use ttl::TtlPolicy;

pub use cache_macros::*;

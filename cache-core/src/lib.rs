#![doc = include_str!("../README.md")]
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
mod store;
pub mod ttl;

#[doc(hidden)]
pub mod __private;

pub use builder::CacheBuilder;
pub use cache::Cache;
pub use error::{Error, KeyError};
pub use health::{Health, L2Status};
pub use invalidation::Invalidation;
pub use key::{Hashed, Key, KeyArg, Pattern, PatternConfig};
pub use metrics::{Counters, Stats};
pub use store::circuit::CircuitState;
pub use ttl::TtlPolicy;

pub use cache_macros::*;

//! The two tiers: L1 in process ([`memory`]), L2 in Redis ([`redis`]), and the circuit breaker
//! that keeps a failing Redis off the request path ([`circuit`]).

pub(crate) mod circuit;
pub(crate) mod memory;
pub(crate) mod redis;

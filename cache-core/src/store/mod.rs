//! The two tiers: L1 in process ([`memory`]), L2 in Redis ([`redis`]), and the circuit breaker
//! that keeps a failing Redis off the request path ([`circuit`]), and the backplane's transport
//! ([`backplane`]: the stream that carries invalidations to the other instances).
//!
//! The tiers know entries (a key, bytes or a decoded value, a stamp, tags, a pattern id) and
//! nothing of key patterns, invalidation rules or statistics per pattern: nothing in `store/`
//! imports `key`, `engine` or the facade.

pub(crate) mod backplane;
pub(crate) mod circuit;
pub(crate) mod memory;
pub(crate) mod redis;

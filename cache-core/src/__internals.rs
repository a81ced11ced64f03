//! Entry points into crate-private pure functions, for the fuzz targets (`fuzz/`) and the
//! property tests of `tests/`. Not a public API: it may change in any release.
//!
//! Owns nothing: each function forwards to the module that owns the behaviour.

use crate::codec::{self, CodecError};

/// The in-process glob matcher (`key/glob.rs`): whether `SCAN MATCH ns:k:<pattern>` matches the
/// key `ns:k:<text>`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    crate::key::glob::glob_match(pattern, text)
}

/// What reading `bytes` from Redis does before the payload's type is known: parses the envelope
/// and estimates the payload's decoded size. Returns the tag count and the estimate.
pub fn decode_envelope(bytes: &[u8]) -> Result<(usize, usize), CodecError> {
    let envelope = codec::decode(bytes)?;
    let estimate = envelope.payload.map_or(0, codec::decoded_size_estimate);
    Ok((envelope.tags.len(), estimate))
}

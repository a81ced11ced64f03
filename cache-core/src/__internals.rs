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

/// Encodes `value` (`None`: a cached absence) in the L2 envelope with the given stamp times
/// (microseconds since the epoch) and tags, as a write does.
pub fn encode_envelope<V: serde::Serialize>(
    value: Option<&V>,
    times: [u64; 3],
    tags: &[std::sync::Arc<str>],
) -> Result<Vec<u8>, CodecError> {
    use crate::clock::Timestamp;
    let stamp = codec::Stamp {
        written_at: Timestamp::from_micros(times[0]),
        fresh_until: Timestamp::from_micros(times[1]),
        stale_until: Timestamp::from_micros(times[2]),
    };
    Ok(codec::encode(value, stamp, tags)?.0)
}

/// The parts of an envelope: its stamp times, its tags and its payload (`None`: an absence).
pub type EnvelopeParts = ([u64; 3], Vec<String>, Option<Vec<u8>>);

/// Parses an envelope into owned parts (for round-trip properties).
pub fn envelope_parts(bytes: &[u8]) -> Result<EnvelopeParts, CodecError> {
    let envelope = codec::decode(bytes)?;
    let s = envelope.stamp;
    Ok((
        [
            s.written_at.as_micros(),
            s.fresh_until.as_micros(),
            s.stale_until.as_micros(),
        ],
        envelope.tags.iter().map(|t| (*t).to_owned()).collect(),
        envelope.payload.map(<[u8]>::to_vec),
    ))
}

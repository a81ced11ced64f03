//! The value format in L2: a small binary envelope around a MessagePack (rmp-serde) payload.
//!
//! ```text
//! magic "tc" | format version u8 | flags u8 | written_at u64 | fresh_until u64 | stale_until u64
//!            | tag count u16 | (tag length u16, tag bytes)* | payload (MessagePack, named fields)
//! ```
//! Integers are big-endian; times are microseconds since the Unix epoch. `written_at` is when the
//! load that produced the value *started*, so that an invalidation issued during a load also
//! invalidates its result. Anything that does not parse, or has another format version, is a
//! [`CodecError`]; the cache treats it as a miss, deletes it and reloads.
//!
//! Owns the byte format only: never touches the tiers, keys or the engine.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::Timestamp;

const MAGIC: [u8; 2] = *b"tc";
/// The envelope format version written by this library.
pub const FORMAT_VERSION: u8 = 1;
const FLAG_ABSENT: u8 = 1;
const HEADER_LEN: usize = 2 + 1 + 1 + 8 * 3 + 2;

/// Why bytes are not a value of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// Too short, wrong magic, or a truncated tag list.
    #[error("not a tiercache envelope")]
    Foreign,
    /// Written by another format version.
    #[error("envelope format version {0}, expected {FORMAT_VERSION}")]
    Version(u8),
    /// The payload does not decode as the requested type.
    #[error("payload does not decode: {0}")]
    Payload(String),
    /// The value does not serialize.
    #[error("value does not serialize: {0}")]
    Serialize(String),
    /// The stamp cannot have been written by a cache with this one's settings: written after
    /// the present (beyond [`STAMP_CLOCK_TOLERANCE`]), out of order, or living longer than the
    /// maximum entry lifetime. Trusting it would let an entry outlive every invalidation.
    #[error("implausible stamp: {0}")]
    Stamp(&'static str),
}

/// How far ahead of this process's clock a stamp's `written_at` may be (clock skew between
/// instances sharing a Redis) before the entry is treated as invalid.
pub const STAMP_CLOCK_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(60);

/// The times of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// When the load that produced the value started (a write-through: when the write started).
    pub(crate) written_at: Timestamp,
    /// Served as a hit until then.
    pub(crate) fresh_until: Timestamp,
    /// Kept until then, served only when a load fails (fail-safe).
    pub(crate) stale_until: Timestamp,
}

impl Stamp {
    /// Checks a stamp read from Redis against the present: `written_at` at most
    /// [`STAMP_CLOCK_TOLERANCE`] ahead of `now`, the times in order, and `stale_until` within
    /// `max_lifetime` (plus the tolerance) of `written_at`.
    pub(crate) fn check_plausible(
        &self,
        now: Timestamp,
        max_lifetime: std::time::Duration,
    ) -> Result<(), CodecError> {
        if self.written_at > now.saturating_add(STAMP_CLOCK_TOLERANCE) {
            return Err(CodecError::Stamp("written in the future"));
        }
        if self.fresh_until < self.written_at || self.stale_until < self.fresh_until {
            return Err(CodecError::Stamp("times out of order"));
        }
        let latest = self
            .written_at
            .saturating_add(max_lifetime)
            .saturating_add(STAMP_CLOCK_TOLERANCE);
        if self.stale_until > latest {
            return Err(CodecError::Stamp(
                "lives longer than the maximum entry lifetime",
            ));
        }
        Ok(())
    }
}

/// A parsed envelope borrowing from the bytes read.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub(crate) stamp: Stamp,
    pub(crate) tags: Vec<&'a str>,
    /// `None` for a cached absence.
    pub(crate) payload: Option<&'a [u8]>,
}

/// Serializes a value as the payload (MessagePack with field names, so that adding a field with
/// `#[serde(default)]` keeps old entries readable).
pub fn encode_value<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value<V: Serialize + ?Sized>(out: &mut Vec<u8>, value: &V) -> Result<(), CodecError> {
    value
        .serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
        .map_err(|e| CodecError::Serialize(e.to_string()))
}

/// Deserializes a payload written by [`encode_value`].
pub fn decode_value<V: DeserializeOwned>(payload: &[u8]) -> Result<V, CodecError> {
    rmp_serde::from_slice(payload).map_err(|e| CodecError::Payload(e.to_string()))
}

/// Bytes charged per string, byte string, array, map or extension of a payload: each decodes to
/// a value with a buffer of its own (a `String`, `Vec` or map: a 24-byte header and an allocation).
const DECODED_BUFFER_OVERHEAD: usize = 32;
/// Bytes charged per map entry: a map's node slot (a struct's fields are maps in the payload too,
/// whose names are in the payload but not in memory: the two roughly cancel).
const DECODED_MAP_ENTRY_OVERHEAD: usize = 16;

/// An estimate of the memory a payload takes once decoded, for weighing L1 entries against the
/// L1 budget: its length, plus [`DECODED_BUFFER_OVERHEAD`] per string, byte string, array, map or
/// extension, plus [`DECODED_MAP_ENTRY_OVERHEAD`] per map entry. One linear pass over the
/// MessagePack markers; what does not parse ends the count.
pub(crate) fn decoded_size_estimate(payload: &[u8]) -> usize {
    let (mut buffers, mut map_entries) = (0usize, 0usize);
    let mut at = 0usize;
    let be = |from: usize, n: usize| -> Option<usize> {
        let bytes = payload.get(from..from + n)?;
        Some(
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
        )
    };
    while let Some(&marker) = payload.get(at) {
        // (header bytes after the marker, data bytes, a buffer?, map entries)
        let (header, data, buffer, entries) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0, false, 0),
            0x80..=0x8f => (0, 0, true, usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, 0, true, 0),
            0xa0..=0xbf => (0, usize::from(marker & 0x1f), true, 0),
            0xc4 | 0xd9 => (1, be(at + 1, 1).unwrap_or(0), true, 0),
            0xc5 | 0xda => (2, be(at + 1, 2).unwrap_or(0), true, 0),
            0xc6 | 0xdb => (4, be(at + 1, 4).unwrap_or(0), true, 0),
            0xc7 => (2, be(at + 1, 1).unwrap_or(0), true, 0),
            0xc8 => (3, be(at + 1, 2).unwrap_or(0), true, 0),
            0xc9 => (5, be(at + 1, 4).unwrap_or(0), true, 0),
            0xca | 0xce | 0xd2 => (0, 4, false, 0),
            0xcb | 0xcf | 0xd3 => (0, 8, false, 0),
            0xcc | 0xd0 => (0, 1, false, 0),
            0xcd | 0xd1 => (0, 2, false, 0),
            0xd4..=0xd8 => (1, 1 << (marker - 0xd4), false, 0),
            0xdc => (2, 0, true, 0),
            0xdd => (4, 0, true, 0),
            0xde => (2, 0, true, be(at + 1, 2).unwrap_or(0)),
            0xdf => (4, 0, true, be(at + 1, 4).unwrap_or(0)),
            0xc1 => break, // never used by MessagePack
        };
        buffers += usize::from(buffer);
        map_entries = map_entries.saturating_add(entries);
        at = at.saturating_add(1 + header).saturating_add(data);
    }
    payload
        .len()
        .saturating_add(buffers.saturating_mul(DECODED_BUFFER_OVERHEAD))
        .saturating_add(map_entries.saturating_mul(DECODED_MAP_ENTRY_OVERHEAD))
}

/// Builds an envelope for `value` (`None`: a cached absence). Returns the envelope and where its
/// payload starts.
pub(crate) fn encode<V: Serialize + ?Sized>(
    value: Option<&V>,
    stamp: Stamp,
    tags: &[std::sync::Arc<str>],
) -> Result<(Vec<u8>, usize), CodecError> {
    let tag_bytes: usize = tags.iter().map(|t| 2 + t.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + tag_bytes + 256);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(if value.is_none() { FLAG_ABSENT } else { 0 });
    for t in [stamp.written_at, stamp.fresh_until, stamp.stale_until] {
        out.extend_from_slice(&t.as_micros().to_be_bytes());
    }
    let count = u16::try_from(tags.len())
        .map_err(|_| CodecError::Serialize("more than 65535 tags".into()))?;
    out.extend_from_slice(&count.to_be_bytes());
    for tag in tags {
        let len = u16::try_from(tag.len())
            .map_err(|_| CodecError::Serialize("tag longer than 65535 bytes".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(tag.as_bytes());
    }
    let payload_start = out.len();
    if let Some(value) = value {
        write_value(&mut out, value)?;
    }
    Ok((out, payload_start))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Foreign);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn timestamp(&mut self) -> Result<Timestamp, CodecError> {
        let b = self.take(8)?;
        Ok(Timestamp::from_micros(u64::from_be_bytes(
            b.try_into().map_err(|_| CodecError::Foreign)?,
        )))
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Parses the envelope; the payload is decoded separately, by type.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope<'_>, CodecError> {
    let mut r = Reader(bytes);
    if r.take(2)? != MAGIC {
        return Err(CodecError::Foreign);
    }
    let version = r.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(CodecError::Version(version));
    }
    let flags = r.take(1)?[0];
    let stamp = Stamp {
        written_at: r.timestamp()?,
        fresh_until: r.timestamp()?,
        stale_until: r.timestamp()?,
    };
    let count = r.u16()?;
    // Each tag takes at least its 2-byte length: never reserve more than the bytes can hold (a
    // 34-byte value claiming 65,535 tags must not reserve 1 MiB).
    let mut tags = Vec::with_capacity(usize::from(count).min(r.0.len() / 2));
    for _ in 0..count {
        let len = r.u16()?;
        tags.push(std::str::from_utf8(r.take(usize::from(len))?).map_err(|_| CodecError::Foreign)?);
    }
    let payload = if flags & FLAG_ABSENT != 0 {
        if !r.0.is_empty() {
            return Err(CodecError::Foreign);
        }
        None
    } else {
        Some(r.0)
    };
    Ok(Envelope {
        stamp,
        tags,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_size_counts_buffers_and_map_entries() {
        // "abc": one string.
        assert_eq!(decoded_size_estimate(&[0xa3, b'a', b'b', b'c']), 4 + 32);
        // {"a": 1}: a map, a string key, one entry.
        assert_eq!(
            decoded_size_estimate(&[0x81, 0xa1, b'a', 0x01]),
            4 + 32 + 32 + 16
        );
        // [1.5, 7]: an array of a float64 and a fixint.
        let array = [0x92, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x07];
        assert_eq!(decoded_size_estimate(&array), array.len() + 32);
        // A bin8 of 3 bytes followed by a str8 of 2.
        let bins = [0xc4, 3, 1, 2, 3, 0xd9, 2, b'x', b'y'];
        assert_eq!(decoded_size_estimate(&bins), bins.len() + 2 * 32);
        // What the encoder writes for a struct: never less than the payload itself.
        let payload = encode_value(&("name", vec![1u64, 2, 3], 4.5f64)).unwrap();
        assert!(decoded_size_estimate(&payload) > payload.len());
    }

    #[test]
    fn decoded_size_of_bytes_that_do_not_parse_never_panics() {
        for bytes in [
            &[0xdb, 0xff, 0xff, 0xff, 0xff][..], // str32 claiming 4 GiB
            &[0xdf, 0xff][..],                   // truncated map32 header
            &[0xc1, 0xa3][..],                   // never-used marker
            &[][..],
        ] {
            assert!(decoded_size_estimate(bytes) >= bytes.len());
        }
    }
    use std::sync::Arc;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Product {
        id: u64,
        name: String,
    }

    const STAMP: Stamp = Stamp {
        written_at: Timestamp::from_micros(1),
        fresh_until: Timestamp::from_micros(2),
        stale_until: Timestamp::from_micros(3),
    };

    #[test]
    fn round_trips_values_absences_and_tags() {
        let p = Product {
            id: 7,
            name: "Lamp".into(),
        };
        let tags: Vec<Arc<str>> = vec!["search".into(), "cat:3".into()];
        let (bytes, payload_start) = encode(Some(&p), STAMP, &tags).unwrap();
        let env = decode(&bytes).unwrap();
        assert_eq!(env.payload, Some(&bytes[payload_start..]));
        assert_eq!(env.stamp, STAMP);
        assert_eq!(env.tags, ["search", "cat:3"]);
        assert_eq!(decode_value::<Product>(env.payload.unwrap()).unwrap(), p);
        let (bytes, payload_start) = encode::<Product>(None, STAMP, &[]).unwrap();
        assert!(decode(&bytes).unwrap().payload.is_none());
        assert_eq!(payload_start, bytes.len());
    }

    #[test]
    fn a_huge_tag_count_is_foreign_not_a_reservation() {
        // 34 bytes: the 30-byte header claiming 65,535 tags, then two empty tags. The decoder
        // reserves room for at most 2 (the remaining bytes / 2), and fails at the third tag.
        // (tests/codec_bounds.rs measures the allocation through a cache read.)
        let (mut bytes, _) = encode::<u8>(None, STAMP, &[]).unwrap();
        let count_at = bytes.len() - 2;
        bytes[count_at..].copy_from_slice(&u16::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(bytes.len(), 34);
        assert_eq!(decode(&bytes).unwrap_err(), CodecError::Foreign);
        bytes[count_at..count_at + 2].copy_from_slice(&2u16.to_be_bytes());
        let env = decode(&bytes).unwrap();
        assert_eq!(env.tags, ["", ""]);
        assert_eq!(env.tags.capacity(), 2);
    }

    #[test]
    fn stamps_from_the_future_or_out_of_order_are_implausible() {
        let now = Timestamp::from_micros(1_000_000_000_000_000);
        let lifetime = std::time::Duration::from_secs(3600);
        let secs = |s: u64| std::time::Duration::from_secs(s);
        let stamp = |w: Timestamp, f: Timestamp, s: Timestamp| Stamp {
            written_at: w,
            fresh_until: f,
            stale_until: s,
        };
        let ok = stamp(
            now,
            now.saturating_add(secs(60)),
            now.saturating_add(secs(120)),
        );
        assert_eq!(ok.check_plausible(now, lifetime), Ok(()));
        // Skewed a little ahead: accepted.
        let skewed = now.saturating_add(secs(30));
        assert_eq!(
            stamp(skewed, skewed, skewed).check_plausible(now, lifetime),
            Ok(())
        );
        let future = now.saturating_add(secs(3600));
        assert_eq!(
            stamp(future, future, future).check_plausible(now, lifetime),
            Err(CodecError::Stamp("written in the future"))
        );
        let far = Timestamp::from_micros(u64::MAX);
        assert!(stamp(far, far, far).check_plausible(now, lifetime).is_err());
        assert_eq!(
            stamp(now, now.saturating_add(secs(9)), now).check_plausible(now, lifetime),
            Err(CodecError::Stamp("times out of order"))
        );
        assert_eq!(
            stamp(now, now, far).check_plausible(now, lifetime),
            Err(CodecError::Stamp(
                "lives longer than the maximum entry lifetime"
            ))
        );
    }

    #[test]
    fn rejects_foreign_and_other_versions() {
        assert_eq!(decode(b"hello world").unwrap_err(), CodecError::Foreign);
        assert_eq!(decode(b"").unwrap_err(), CodecError::Foreign);
        let (mut bytes, _) = encode(Some(&1u8), STAMP, &[]).unwrap();
        bytes[2] = 9;
        assert_eq!(decode(&bytes).unwrap_err(), CodecError::Version(9));
        let (bytes, _) = encode(Some(&"text"), STAMP, &["t".into()]).unwrap();
        for cut in 0..bytes.len() - 5 {
            let _ = decode(&bytes[..cut]); // never panics on truncation
        }
        let env = decode(&bytes).unwrap();
        assert!(decode_value::<Product>(env.payload.unwrap()).is_err());
    }
}

//! [`CachedBody`]: what a response needs to send, cached as one value: its bytes, content type and
//! strong `ETag`, computed once when the entry is filled, so that a hit costs its bytes (no
//! clone of an owned value, no serialisation, no hashing).
//!
//! Plain data with no HTTP dependency: the `http` feature ([`crate::http`] there) answers
//! requests with it (`If-None-Match`, `Cache-Control`, `X-Cache`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// A response body as cached: bytes, content type, strong `ETag` (from the bytes, computed once at
/// fill time) and the fill time. Cache it like any value (`Cache::get_or_load::<CachedBody>`):
/// its entries carry their pattern's tags and are invalidated like any other.
///
/// ```
/// use cache_core::CachedBody;
/// let body = CachedBody::new("application/json", br#"{"id":7}"#.to_vec());
/// assert_eq!(body.bytes(), br#"{"id":7}"#);
/// assert_eq!(body.etag(), CachedBody::new("text/plain", br#"{"id":7}"#.to_vec()).etag());
/// assert!(body.etag().starts_with('"') && body.etag().ends_with('"'));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBody {
    #[serde(with = "as_bytes")]
    bytes: Vec<u8>,
    content_type: String,
    etag: String,
    /// Milliseconds since the Unix epoch when the body was made (shared by every instance that
    /// reads the entry from L2).
    filled_at_ms: u64,
}

impl CachedBody {
    /// A body of `bytes` with its content type; computes its strong `ETag` (the MD5 of the bytes,
    /// quoted) and records the fill time.
    pub fn new(content_type: impl Into<String>, bytes: Vec<u8>) -> CachedBody {
        let digest = Md5::digest(&bytes);
        let mut etag = String::with_capacity(34);
        etag.push('"');
        for byte in digest {
            etag.push(char::from(HEX[usize::from(byte >> 4)]));
            etag.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        etag.push('"');
        let filled_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        CachedBody {
            bytes,
            content_type: content_type.into(),
            etag,
            filled_at_ms,
        }
    }

    /// The bytes to send.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The content type (`Content-Type`).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The strong entity tag, quoted (`"0f3c…"`), as the `ETag` header carries it. Equal bytes give
    /// equal tags, on every instance.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// How long ago the body was made (zero if the clock went back).
    pub fn age(&self) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Duration::from_millis(now.saturating_sub(self.filled_at_ms))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl AsRef<[u8]> for CachedBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for CachedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedBody")
            .field("len", &self.bytes.len())
            .field("content_type", &self.content_type)
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

/// The bytes as one binary string in the envelope (MessagePack `bin`), not an array of numbers.
mod as_bytes {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            Ok(v.as_bytes().to_vec())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(byte) = seq.next_element()? {
                out.push(byte);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_the_quoted_md5_of_the_bytes() {
        let body = CachedBody::new("text/plain", b"abc".to_vec());
        assert_eq!(body.etag(), "\"900150983cd24fb0d6963f7d28e17f72\"");
        assert_ne!(
            body.etag(),
            CachedBody::new("text/plain", b"abd".to_vec()).etag()
        );
    }

    #[test]
    fn a_body_round_trips_through_the_codec_as_a_binary_string() {
        let body = CachedBody::new("application/json", br#"{"a":[1,2,3]}"#.to_vec());
        let packed = rmp_serde::to_vec(&body).expect("encodes");
        // `bin` (0xc4 + length), not an array of 13 integers.
        assert!(packed.windows(2).any(|w| w == [0xc4, 13]), "{packed:?}");
        let back: CachedBody = rmp_serde::from_slice(&packed).expect("decodes");
        assert_eq!(back, body);
        assert!(back.age() < Duration::from_secs(60));
    }
}

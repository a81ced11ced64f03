//! The text a cache look-up renders its key into ([`KeyBuf`]): on the stack up to
//! [`KeyBuf::INLINE`] bytes, so that an L1 hit renders its key without allocating.
//!
//! Owns that buffer only: what is written into it (literals, escaped values) is `key/mod.rs`'s and
//! `pattern.rs`'s. A push is one length check and one copy (no per-push representation checks,
//! as an inline string that may also be static or on the heap needs); reading the text back
//! validates nothing (it is built from `&str`s only). Longer keys move to a `String` once.

use std::fmt;

use arrayvec::ArrayString;

/// A key rendered for a look-up. Not a public API: what [`KeyArg`](super::KeyArg) renders into
/// for the hit path of a cache call.
#[doc(hidden)]
#[derive(Clone)]
pub struct KeyBuf(Repr);

#[derive(Clone)]
enum Repr {
    Inline(ArrayString<{ KeyBuf::INLINE }>),
    Heap(String),
}

impl KeyBuf {
    /// The longest key kept inline, bytes.
    pub const INLINE: usize = 40;

    /// An empty key.
    #[inline]
    pub(crate) fn new() -> Self {
        KeyBuf(Repr::Inline(ArrayString::new()))
    }

    /// Appends `text`.
    #[inline]
    pub fn push_str(&mut self, text: &str) {
        match &mut self.0 {
            Repr::Inline(inline) => {
                if inline.try_push_str(text).is_err() {
                    self.spill(text);
                }
            }
            Repr::Heap(heap) => heap.push_str(text),
        }
    }

    /// Moves the text to the heap, with `text` appended.
    #[cold]
    fn spill(&mut self, text: &str) {
        let mut heap = String::with_capacity(self.as_str().len() + text.len() + 16);
        heap.push_str(self.as_str());
        heap.push_str(text);
        self.0 = Repr::Heap(heap);
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(inline) => inline.as_str(),
            Repr::Heap(heap) => heap,
        }
    }
}

impl std::ops::Deref for KeyBuf {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Write for KeyBuf {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_longer_than_the_inline_buffer_moves_to_the_heap_intact() {
        let mut key = KeyBuf::new();
        let mut expected = String::new();
        for i in 0..40 {
            let part = format!("seg{i}:");
            key.push_str(&part);
            expected.push_str(&part);
            assert_eq!(key.as_str(), expected);
        }
        assert!(expected.len() > KeyBuf::INLINE);
    }

    #[test]
    fn a_short_key_stays_inline() {
        let mut key = KeyBuf::new();
        key.push_str("prod:");
        key.push_str("42");
        assert!(matches!(key.0, Repr::Inline(_)));
        assert_eq!(&*key, "prod:42");
        assert_eq!(format!("{key:?}"), "\"prod:42\"");
    }
}

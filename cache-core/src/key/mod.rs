//! Keys: templates, rendering of arguments into keys, the registry of patterns, the bindings of
//! macro call sites (`site.rs`), glob matching (`glob.rs`) and the buffer a look-up renders its
//! key into (`text.rs`).
//!
//! A key is always rendered from a registered [`Pattern`], so that statistics are kept per pattern
//! and two different argument tuples never render the same key: every placeholder value is
//! percent-encoded outside `[A-Za-z0-9_.~-]`, and [`template`] rejects patterns whose placeholders
//! are not separated by a delimiter. A value can therefore never contain `:` or a glob character,
//! and can never widen a pattern invalidation.
//!
//! This file owns [`Key`], [`KeyArg`] and escaping. Nothing in `key/` touches a tier, the engine
//! or the facade.

pub(crate) mod glob;
pub(crate) mod pattern;
pub(crate) mod registry;
pub(crate) mod site;
pub mod template;
mod text;

use std::fmt::{self, Write as _};
use std::sync::Arc;

use compact_str::CompactString;
use md5::{Digest, Md5};
use serde::Serialize;

pub use pattern::Pattern;
pub use registry::PatternConfig;
#[doc(hidden)]
pub use text::KeyBuf;

use crate::error::KeyError;

/// A value that can fill a placeholder of a key template.
///
/// Every `T: Display` is a `KeyArg` (rendered with `Display`, then escaped). Wrap a value in
/// [`Hashed`] for a `<name:hash>` placeholder.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot fill a key placeholder: it does not implement `Display`",
    note = "use `<name:hash>` in the template for a `Serialize` value, or a field path `<name.field>`"
)]
pub trait KeyArg {
    /// Appends the rendered, escaped value to `out`.
    fn write_key_value(&self, out: &mut String) -> Result<(), KeyError>;

    /// The same, into the buffer a cache look-up renders its key into (no allocation for keys of
    /// up to [`KeyBuf::INLINE`] bytes). The default goes through [`write_key_value`](Self::write_key_value).
    #[doc(hidden)]
    fn write_key_value_inline(&self, out: &mut KeyBuf) -> Result<(), KeyError> {
        let mut text = String::new();
        self.write_key_value(&mut text)?;
        out.push_str(&text);
        Ok(())
    }

    /// `true` for [`Hashed`] values, which fill `:hash` placeholders.
    fn is_hashed(&self) -> bool {
        false
    }
}

impl<T: fmt::Display + ?Sized> KeyArg for T {
    fn write_key_value(&self, out: &mut String) -> Result<(), KeyError> {
        write_escaped(out, self)
    }

    fn write_key_value_inline(&self, out: &mut KeyBuf) -> Result<(), KeyError> {
        write_escaped(out, self)
    }
}

fn write_escaped<W: KeyText>(
    out: &mut W,
    value: &(impl fmt::Display + ?Sized),
) -> Result<(), KeyError> {
    write!(Escaping(out), "{value}").map_err(|_| KeyError::Display)
}

/// A primitive integer argument, rendered without `core::fmt` (what `#[cached]` passes for a
/// parameter declared as one). Renders exactly as its `Display` does: digits and `-` need no
/// escaping.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Int<T>(pub T);

impl<T: itoa::Integer + Copy> KeyArg for Int<T> {
    fn write_key_value(&self, out: &mut String) -> Result<(), KeyError> {
        out.push_str(itoa::Buffer::new().format(self.0));
        Ok(())
    }

    #[inline]
    fn write_key_value_inline(&self, out: &mut KeyBuf) -> Result<(), KeyError> {
        out.push_str(itoa::Buffer::new().format(self.0));
        Ok(())
    }
}

/// What keys are rendered into: a `String`, or the buffer of a cache look-up.
pub(crate) trait KeyText {
    fn push_text(&mut self, text: &str);

    /// Appends `arg`, rendered and escaped.
    fn push_arg(&mut self, arg: &dyn KeyArg) -> Result<(), KeyError>;
}

impl KeyText for String {
    fn push_text(&mut self, text: &str) {
        self.push_str(text);
    }

    fn push_arg(&mut self, arg: &dyn KeyArg) -> Result<(), KeyError> {
        arg.write_key_value(self)
    }
}

impl KeyText for KeyBuf {
    #[inline]
    fn push_text(&mut self, text: &str) {
        self.push_str(text);
    }

    #[inline]
    fn push_arg(&mut self, arg: &dyn KeyArg) -> Result<(), KeyError> {
        arg.write_key_value_inline(self)
    }
}

/// An argument rendered as the MD5 (hex) of its MessagePack serialization, for `<name:hash>`
/// placeholders: large or structured arguments such as search queries.
///
/// The serialization follows field order; use `BTreeMap` rather than `HashMap` inside hashed
/// values, since a `HashMap`'s iteration order (and so its hash) differs between processes.
///
/// ```
/// use cache_core::key::{Hashed, KeyArg};
/// #[derive(serde::Serialize)]
/// struct Query { text: String, page: u32 }
/// let mut out = String::new();
/// Hashed(&Query { text: "red shoes".into(), page: 2 }).write_key_value(&mut out).unwrap();
/// assert_eq!(out.len(), 32);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Hashed<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> KeyArg for Hashed<'_, T> {
    fn write_key_value(&self, out: &mut String) -> Result<(), KeyError> {
        self.write_hex(out)
    }

    fn write_key_value_inline(&self, out: &mut KeyBuf) -> Result<(), KeyError> {
        self.write_hex(out)
    }

    fn is_hashed(&self) -> bool {
        true
    }
}

impl<T: Serialize + ?Sized> Hashed<'_, T> {
    fn write_hex(&self, out: &mut impl fmt::Write) -> Result<(), KeyError> {
        let bytes = rmp_serde::to_vec(self.0).map_err(|e| KeyError::Serialize(e.to_string()))?;
        let digest = Md5::digest(&bytes);
        for b in digest {
            write!(out, "{b:02x}").map_err(|_| KeyError::Display)?;
        }
        Ok(())
    }
}

/// Renders an invalidation glob template such as `prods:cat:<id>:*` for
/// [`Cache::invalidate_pattern`](crate::Cache::invalidate_pattern). Arguments are escaped like
/// key values, so a value full of glob characters matches only itself.
///
/// ```
/// use cache_core::key::render_glob;
/// assert_eq!(render_glob("prods:cat:<id>:*", &[&7]).unwrap(), "prods:cat:7:*");
/// assert_eq!(render_glob("prods:cat:<id>:*", &[&"*"]).unwrap(), "prods:cat:%2A:*");
/// ```
pub fn render_glob(template: &str, args: &[&dyn KeyArg]) -> Result<String, KeyError> {
    let parsed =
        template::Template::parse(template, template::TemplateKind::Glob).map_err(|source| {
            KeyError::Template {
                template: template.to_owned(),
                source,
            }
        })?;
    pattern::BoundTemplate::own(parsed).render(args)
}

/// Percent-encodes everything outside the plain value alphabet while writing.
struct Escaping<'a, W>(&'a mut W);

impl<W: KeyText> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Runs of plain bytes (ASCII) are copied whole; the common value (an id) is one run.
        let mut rest = s;
        while let Some(at) = rest.bytes().position(|b| !template::is_plain_value_byte(b)) {
            self.0.push_text(&rest[..at]);
            // Escape the whole character that starts at `at` (every byte of a non-ASCII one).
            let width = rest[at..].chars().next().map_or(1, char::len_utf8);
            for &b in &rest.as_bytes()[at..at + width] {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                let escaped = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
                self.0
                    .push_text(std::str::from_utf8(&escaped).map_err(|_| fmt::Error)?);
            }
            rest = &rest[at + width..];
        }
        self.0.push_text(rest);
        Ok(())
    }
}

/// Tags carried by an entry: shared, so that cloning them on the hot path is one atomic increment.
pub(crate) type Tags = Arc<[Arc<str>]>;

/// A rendered key: the text (without the namespace), its pattern and its rendered tags.
///
/// Build one with [`Pattern::key`].
#[derive(Clone, Debug)]
pub struct Key {
    /// Inline up to 24 bytes: a key rendered for one call (`get_or_load` on an L1 hit) then
    /// allocates nothing.
    text: CompactString,
    pattern: Pattern,
    tags: Tags,
}

impl Key {
    /// The rendered key, without the namespace prefix.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern the key was rendered from.
    #[inline]
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// The rendered tags the entry will carry.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|t| &**t)
    }

    /// The rendered tags, shared (a clone is one reference count).
    #[inline]
    pub(crate) fn shared_tags(&self) -> &Tags {
        &self.tags
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(v: &dyn KeyArg) -> String {
        let mut s = String::new();
        v.write_key_value(&mut s).unwrap();
        s
    }

    #[test]
    fn escapes_delimiters_globs_and_non_ascii() {
        assert_eq!(
            render(&"a:b*c?[d]\\e f\n%"),
            "a%3Ab%2Ac%3F%5Bd%5D%5Ce%20f%0A%25"
        );
        assert_eq!(render(&"été"), "%C3%A9t%C3%A9");
        assert_eq!(render(&42u64), "42");
        assert_eq!(render(&"SKU-1.2_x~"), "SKU-1.2_x~");
    }

    #[test]
    fn integers_render_as_their_display_form_inline_or_not() {
        fn both(v: &dyn KeyArg) -> (String, String) {
            let mut inline = KeyBuf::new();
            v.write_key_value_inline(&mut inline).unwrap();
            (render(v), inline.as_str().to_owned())
        }
        let cases: [(&dyn KeyArg, &dyn KeyArg); 6] = [
            (&Int(0u64), &0u64),
            (&Int(u64::MAX), &u64::MAX),
            (&Int(i64::MIN), &i64::MIN),
            (&Int(-7i32), &-7i32),
            (&Int(u128::MAX), &u128::MAX),
            (&Int(255u8), &255u8),
        ];
        for (int, display) in cases {
            let (a, b) = both(int);
            let (c, d) = both(display);
            assert_eq!((&a, &b, &c), (&d, &d, &d));
        }
        assert_eq!(both(&"a:b").1, "a%3Ab", "escaped inline too");
    }

    #[test]
    fn hashes_the_serialized_form() {
        let a = render(&Hashed(&("red", 1)));
        let b = render(&Hashed(&("red", 2)));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(a, render(&Hashed(&("red", 1))));
    }
}

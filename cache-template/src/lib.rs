//! The parser of tiercache's key templates: `prod:<id>`, `cat:<id>:children`,
//! `search:<query:hash>`, `prods:cat:<category_id>:*`.
//!
//! A template is literal text with placeholders naming arguments: `<id>` (a value),
//! `<product.id>` (a field path) and `<query:hash>` (the MD5 of a serialized value). This crate
//! only *parses*: it splits a template into [`Segment`]s, checks that literals and placeholders are
//! well formed for the template's [`TemplateKind`], and reports a mistake with its byte range
//! ([`TemplateError`]), so that the caller can point at it. It renders nothing and knows no
//! argument values: escaping and rendering belong to `cache-core`.
//!
//! It depends on `std` only, and is shared on purpose: `cache-macros` validates a template with it
//! at compile time (errors on the string literal of the attribute), and `cache-core` parses the
//! same template with it at run time (patterns registered by hand, and the macro sites), so both
//! agree on what is valid. It must never grow a dependency, nor a rule only one side applies.
//!
//! ```
//! use cache_template::{Template, TemplateKind};
//!
//! let template = Template::parse("cat:<id>:children", TemplateKind::Key)?;
//! let names: Vec<String> = template.placeholders().map(|p| p.spec()).collect();
//! assert_eq!(names, ["id"]);
//! assert_eq!(template.shape(), "cat:<>:children");
//!
//! // Glob characters belong to invalidation patterns only.
//! let error = Template::parse("prod:*", TemplateKind::Key).unwrap_err();
//! assert_eq!((error.offset, error.len), (5, 1));
//! assert!(Template::parse("prods:cat:<id>:*", TemplateKind::Glob).is_ok());
//! # Ok::<(), cache_template::TemplateError>(())
//! ```

use std::fmt;

/// Characters that a rendered placeholder value may contain unescaped. Every other byte of a value
/// is percent-encoded, so a value can never contain a delimiter (`:`), a glob character
/// (`*`, `?`, `[`, `]`, `\`), the escape character (`%`), white space or non-ASCII.
pub fn is_plain_value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~')
}

/// Glob characters that Redis' `SCAN MATCH` interprets.
pub fn is_glob_byte(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b']' | b'\\')
}

/// What a template is used for; it decides which literal characters are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// A cache key pattern (`prod:<id>`): literals may not contain glob characters.
    Key,
    /// A tag (`cat:<category_id>`): same rules as a key.
    Tag,
    /// An invalidation glob (`prods:cat:<category_id>:*`): literals may contain glob characters;
    /// placeholder values are still escaped, so they can never widen the match.
    Glob,
}

/// A placeholder: `<name>`, `<arg.field.sub>` or `<name:hash>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Placeholder {
    /// The argument path, e.g. `id` or `product.id`.
    pub path: String,
    /// `true` for `<name:hash>`: the value is rendered as the MD5 of its serialized form.
    pub hash: bool,
    /// Byte offset of the placeholder (its `<`) in the template.
    pub offset: usize,
    /// Byte length of the placeholder, `<` to `>` inclusive.
    pub len: usize,
}

impl Placeholder {
    /// The root argument name: `product` for `product.id`.
    pub fn root(&self) -> &str {
        self.path.split('.').next().unwrap_or(&self.path)
    }

    /// The spelling used to identify an argument slot: `id`, `product.id` or `query:hash`.
    pub fn spec(&self) -> String {
        if self.hash {
            format!("{}:hash", self.path)
        } else {
            self.path.clone()
        }
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// A value supplied at render time.
    Placeholder(Placeholder),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Template {
    source: String,
    kind: TemplateKind,
    segments: Vec<Segment>,
}

/// A template that does not parse, with the byte range of the mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// What is wrong, in words.
    pub message: String,
    /// Byte offset of the mistake in the template.
    pub offset: usize,
    /// Byte length of the mistake (at least 1 unless the template is empty).
    pub len: usize,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for TemplateError {}

fn err(message: impl Into<String>, offset: usize, len: usize) -> TemplateError {
    TemplateError {
        message: message.into(),
        offset,
        len: len.max(1),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn check_path(path: &str, at: usize) -> Result<(), TemplateError> {
    if path.is_empty() {
        return Err(err("empty placeholder: expected `<name>`", at, 2));
    }
    let mut pos = at + 1;
    for part in path.split('.') {
        let mut chars = part.chars();
        match chars.next() {
            Some(c) if is_ident_start(c) && chars.all(is_ident_continue) => {}
            _ => {
                return Err(err(
                    format!("`{part}` is not a valid argument name in placeholder `<{path}>`"),
                    pos,
                    part.len(),
                ));
            }
        }
        pos += part.len() + 1;
    }
    Ok(())
}

/// The state of [`Template::parse`]: the segments so far and the literal text being collected.
struct Parser<'a> {
    source: &'a str,
    segments: Vec<Segment>,
    literal: String,
}

impl Parser<'_> {
    /// Parses the placeholder whose `<` is at byte `at`, after the literal text before it; returns
    /// the byte offset just past its `>`.
    fn placeholder(&mut self, at: usize) -> Result<usize, TemplateError> {
        let source = self.source;
        let close = source[at + 1..].find(['>', '<']);
        let end = match close {
            Some(rel) if source.as_bytes()[at + 1 + rel] == b'>' => at + 1 + rel,
            _ => {
                return Err(err(
                    "unclosed placeholder: expected `>`",
                    at,
                    close.map_or(source.len() - at, |rel| rel + 1),
                ));
            }
        };
        let inner = &source[at + 1..end];
        let (path, hash) = match inner.split_once(':') {
            None => (inner, false),
            Some((path, "hash")) => (path, true),
            Some((_, modifier)) => {
                return Err(err(
                    format!("unknown placeholder modifier `{modifier}`: only `:hash` exists"),
                    end - modifier.len(),
                    modifier.len(),
                ));
            }
        };
        check_path(path, at)?;
        self.end_literal(inner, at, end)?;
        self.segments.push(Segment::Placeholder(Placeholder {
            path: path.to_owned(),
            hash,
            offset: at,
            len: end + 1 - at,
        }));
        Ok(end + 1)
    }

    /// Ends the literal text before the placeholder `<inner>` (bytes `at..=end`), which must
    /// separate it from a previous placeholder by a delimiter.
    fn end_literal(&mut self, inner: &str, at: usize, end: usize) -> Result<(), TemplateError> {
        let after_placeholder = matches!(self.segments.last(), Some(Segment::Placeholder(_)));
        if let Some(Segment::Placeholder(prev)) = self.segments.last()
            && self.literal.is_empty()
        {
            return Err(err(
                format!(
                    "placeholders `<{}>` and `<{inner}>` must be separated by a delimiter such as `:`",
                    prev.spec()
                ),
                at,
                end + 1 - at,
            ));
        }
        if self.literal.is_empty() {
            return Ok(());
        }
        let text = std::mem::take(&mut self.literal);
        if after_placeholder && text.bytes().all(is_plain_value_byte) {
            // `<a>x<b>`: values may contain `x`, so "a=1x2,b=3" and "a=1,b=2x3" collide.
            return Err(err(
                format!(
                    "the text `{text}` between two placeholders must contain a delimiter such as `:`"
                ),
                at - text.len(),
                text.len(),
            ));
        }
        self.segments.push(Segment::Literal(text));
        Ok(())
    }
}

impl Template {
    /// Parses `source` as a template of the given kind.
    pub fn parse(source: &str, kind: TemplateKind) -> Result<Template, TemplateError> {
        if source.is_empty() {
            // The documented exception to a range of at least one byte (`err` would make it 1,
            // past the end of the template).
            return Err(TemplateError {
                message: "empty template".into(),
                offset: 0,
                len: 0,
            });
        }
        let mut parser = Parser {
            source,
            segments: Vec::new(),
            literal: String::new(),
        };
        // The byte after the last placeholder: its characters are not literal text.
        let mut resume = 0;
        for (i, c) in source.char_indices() {
            if i < resume {
                continue;
            }
            match c {
                '<' => resume = parser.placeholder(i)?,
                '>' => return Err(err("`>` without a matching `<`", i, 1)),
                c if c.is_whitespace() || c.is_control() => {
                    return Err(err(
                        "white space and control characters are not allowed in a template",
                        i,
                        c.len_utf8(),
                    ));
                }
                c if kind != TemplateKind::Glob && c.is_ascii() && is_glob_byte(c as u8) => {
                    return Err(err(
                        format!(
                            "`{c}` is a glob character; it is only allowed in invalidation patterns"
                        ),
                        i,
                        1,
                    ));
                }
                c => parser.literal.push(c),
            }
        }
        let Parser {
            mut segments,
            literal,
            ..
        } = parser;
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            source: source.to_owned(),
            kind,
            segments,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the template is used for.
    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// The literal and placeholder segments in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The placeholders in order of appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Placeholder(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// The template with placeholder names erased (`prod:<>`, `search:<#>`): two templates with
    /// the same shape render the same keys from the same values, so they are one pattern.
    pub fn shape(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        for s in &self.segments {
            match s {
                Segment::Literal(text) => out.push_str(text),
                Segment::Placeholder(p) => out.push_str(if p.hash { "<#>" } else { "<>" }),
            }
        }
        out
    }

    /// `true` when the template has no placeholder.
    pub fn is_literal(&self) -> bool {
        self.placeholders().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Template, TemplateError> {
        Template::parse(s, TemplateKind::Key)
    }

    #[test]
    fn parses_literals_and_placeholders() {
        let t = parse("cat:<id>:children").unwrap();
        assert_eq!(t.segments().len(), 3);
        let p: Vec<_> = t.placeholders().map(Placeholder::spec).collect();
        assert_eq!(p, ["id"]);
        let t = parse("search:<query:hash>").unwrap();
        assert!(t.placeholders().next().unwrap().hash);
        let t = parse("prod:<product.id>").unwrap();
        assert_eq!(t.placeholders().next().unwrap().root(), "product");
        assert!(parse("cat:tree").unwrap().is_literal());
    }

    #[test]
    fn reports_the_position_of_mistakes() {
        let e = parse("prod:<id").unwrap_err();
        assert_eq!((e.offset, e.message.contains("unclosed")), (5, true));
        let e = parse("prod:<id:hsah>").unwrap_err();
        assert_eq!(e.offset, 9);
        assert_eq!(e.len, 4);
        let e = parse("prod:<1d>").unwrap_err();
        assert_eq!(e.offset, 6);
        let e = parse("prod:<>").unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(parse("prod:*").is_err());
        assert!(Template::parse("prod:*", TemplateKind::Glob).is_ok());
        assert!(parse("a b").is_err());
        assert!(parse("").is_err());
        assert!(parse("x>").is_err());
    }

    #[test]
    fn adjacent_placeholders_need_a_delimiter() {
        assert!(parse("<a><b>").is_err());
        assert!(parse("<a>x<b>").is_err());
        assert!(parse("<a>:<b>").is_ok());
        assert!(parse("<a>-x:<b>").is_ok());
        assert!(parse("<a>suffix").is_ok());
    }

    #[test]
    fn names_the_mistake_between_placeholders() {
        let e = parse("p:<a><b:hash>").unwrap_err();
        assert_eq!(
            e.message,
            "placeholders `<a>` and `<b:hash>` must be separated by a delimiter such as `:`"
        );
        assert_eq!((e.offset, e.len), (5, 8));
        let e = parse("p:<a>x.y<b>").unwrap_err();
        assert_eq!(
            e.message,
            "the text `x.y` between two placeholders must contain a delimiter such as `:`"
        );
        assert_eq!((e.offset, e.len), (5, 3));
        let e = parse("p:<a:md5>").unwrap_err();
        assert_eq!(
            e.message,
            "unknown placeholder modifier `md5`: only `:hash` exists"
        );
        assert_eq!((e.offset, e.len), (5, 3));
        let e = parse("p:<a<b>").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 2));
    }

    #[test]
    fn keeps_segments_and_shape() {
        let t = parse("a:<x>:<y.z>:b").unwrap();
        let segments = [
            Segment::Literal("a:".into()),
            Segment::Placeholder(Placeholder {
                path: "x".into(),
                hash: false,
                offset: 2,
                len: 3,
            }),
            Segment::Literal(":".into()),
            Segment::Placeholder(Placeholder {
                path: "y.z".into(),
                hash: false,
                offset: 6,
                len: 5,
            }),
            Segment::Literal(":b".into()),
        ];
        assert_eq!(t.segments(), segments);
        assert_eq!(t.shape(), "a:<>:<>:b");
        assert_eq!(parse("s:<q:hash>").unwrap().shape(), "s:<#>");
        assert_eq!(parse("é:<id>").unwrap().segments().len(), 2);
        let e = parse("é <id>").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 1));
    }
}

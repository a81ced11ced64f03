//! Parsing of key templates such as `prod:<id>`, `cat:<id>:children` or `search:<query:hash>`.
//!
//! This file depends on `std` only: `cache-macros` compiles the very same file (via `#[path]`), so a
//! template is validated by one parser at compile time (in the macro) and at run time (in the
//! registry), and both agree on what is valid.

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

impl Template {
    /// Parses `source` as a template of the given kind.
    pub fn parse(source: &str, kind: TemplateKind) -> Result<Template, TemplateError> {
        if source.is_empty() {
            return Err(err("empty template", 0, 0));
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut iter = source.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            match c {
                '<' => {
                    let close = source[i + 1..].find(['>', '<']);
                    let end = match close {
                        Some(rel) if source.as_bytes()[i + 1 + rel] == b'>' => i + 1 + rel,
                        _ => {
                            return Err(err(
                                "unclosed placeholder: expected `>`",
                                i,
                                close.map_or(source.len() - i, |rel| rel + 1),
                            ));
                        }
                    };
                    let inner = &source[i + 1..end];
                    let (path, hash) = match inner.split_once(':') {
                        None => (inner, false),
                        Some((path, "hash")) => (path, true),
                        Some((_, modifier)) => {
                            let at = i + 1 + inner.len() - modifier.len();
                            return Err(err(
                                format!(
                                    "unknown placeholder modifier `{modifier}`: only `:hash` exists"
                                ),
                                at,
                                modifier.len(),
                            ));
                        }
                    };
                    check_path(path, i)?;
                    if let Some(Segment::Placeholder(prev)) = segments.last()
                        && literal.is_empty()
                    {
                        return Err(err(
                            format!(
                                "placeholders `<{}>` and `<{inner}>` must be separated by a delimiter such as `:`",
                                prev.spec()
                            ),
                            i,
                            end + 1 - i,
                        ));
                    }
                    if !literal.is_empty() {
                        let text = std::mem::take(&mut literal);
                        if let Some(Segment::Placeholder(_)) = segments.last()
                            && text.bytes().all(is_plain_value_byte)
                        {
                            // `<a>x<b>`: values may contain `x`, so "a=1x2,b=3" and "a=1,b=2x3" collide.
                            return Err(err(
                                format!(
                                    "the text `{text}` between two placeholders must contain a delimiter such as `:`"
                                ),
                                i - text.len(),
                                text.len(),
                            ));
                        }
                        segments.push(Segment::Literal(text));
                    }
                    segments.push(Segment::Placeholder(Placeholder {
                        path: path.to_owned(),
                        hash,
                        offset: i,
                        len: end + 1 - i,
                    }));
                    while let Some(&(j, _)) = iter.peek() {
                        if j > end {
                            break;
                        }
                        iter.next();
                    }
                }
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
                c => literal.push(c),
            }
        }
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
}

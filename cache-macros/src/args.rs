//! Parsing of the attribute arguments: `key = "prod:<id>", ttl = 1800, tags = ["search"], ..`,
//! into [`Args`], one typed field per option.
//!
//! Owns the option table, [`OPTIONS`]: each option's keyword, the attributes that take it and how
//! its value parses, spelled once. The checks that need only the option itself happen here, spanned
//! on its keyword or value: an unknown keyword (with a suggestion), an option the attribute does
//! not take, an option given twice, a malformed value. Never judges what options mean together or
//! for the function (that is `validate.rs`), and never generates code.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitFloat, LitInt, LitStr, Token, bracketed};

use crate::suggest::is_similar;

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MacroKind {
    Cached,
    Put,
    Evict,
}

impl MacroKind {
    const ALL: [MacroKind; 3] = [MacroKind::Cached, MacroKind::Put, MacroKind::Evict];

    /// The attribute as the user spells it, for messages: `#[cached]`.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            MacroKind::Cached => "#[cached]",
            MacroKind::Put => "#[cache_put]",
            MacroKind::Evict => "#[cache_evict]",
        }
    }

    /// The options this attribute accepts, in the order of [`OPTIONS`] (the documentation's).
    fn options(self) -> impl Iterator<Item = &'static OptionSpec> {
        OPTIONS.iter().filter(move |o| o.takers.contains(&self))
    }

    /// `` `key`, `ttl`, .. ``: the options this attribute accepts, for messages.
    fn option_list(self) -> String {
        let names: Vec<String> = self.options().map(|o| format!("`{}`", o.keyword)).collect();
        names.join(", ")
    }
}

/// One option: its keyword, the attributes that take it, and how its value parses into [`Args`].
struct OptionSpec {
    keyword: &'static str,
    takers: &'static [MacroKind],
    /// Parses `= value` and stores it in its field of [`Args`], with the keyword's span.
    parse: fn(&mut Args, ParseStream<'_>, Span) -> syn::Result<()>,
}

/// A row of [`OPTIONS`]: the option spelled like its field of [`Args`], whose type says how its
/// value parses.
macro_rules! option {
    ($field:ident, $takers:expr) => {
        OptionSpec {
            keyword: stringify!($field),
            takers: $takers,
            parse: |args, input, kw| store(&mut args.$field, input, kw),
        }
    };
}

const ALL: &[MacroKind] = &MacroKind::ALL;
const CACHED: &[MacroKind] = &[MacroKind::Cached];
const WRITES: &[MacroKind] = &[MacroKind::Cached, MacroKind::Put];
const EVICT: &[MacroKind] = &[MacroKind::Evict];

/// Every option of every attribute, once, in the order the documentation lists them.
const OPTIONS: [OptionSpec; 16] = [
    option!(key, ALL),
    option!(ttl, WRITES),
    option!(l1_ttl, WRITES),
    option!(stale, WRITES),
    option!(none_ttl, CACHED),
    option!(lease, CACHED),
    option!(refresh_ahead, CACHED),
    option!(soft_timeout_ms, CACHED),
    option!(hard_timeout_ms, CACHED),
    option!(max_size, WRITES),
    option!(tags, ALL),
    option!(pattern, EVICT),
    option!(all, EVICT),
    option!(before, EVICT),
    option!(cache, ALL),
    option!(unless, WRITES),
];

/// `= value`, into `slot`.
fn store<T: Parse>(slot: &mut Option<Opt<T>>, input: ParseStream<'_>, kw: Span) -> syn::Result<()> {
    input.parse::<Token![=]>()?;
    *slot = Some(Opt {
        kw,
        value: input.parse()?,
    });
    Ok(())
}

/// An option as written: the span of its keyword and its value.
#[derive(Clone, Debug)]
pub(crate) struct Opt<T> {
    pub(crate) kw: Span,
    pub(crate) value: T,
}

/// A duration in seconds: an integer literal (checked here) or a const expression of type `u64`
/// (checked by the compiler where it is used).
#[derive(Clone, Debug)]
pub(crate) enum Seconds {
    Literal(LitInt, u64),
    Const(Box<Expr>),
}

impl Seconds {
    pub(crate) fn literal(&self) -> Option<u64> {
        match self {
            Seconds::Literal(_, n) => Some(*n),
            Seconds::Const(_) => None,
        }
    }

    pub(crate) fn span(&self) -> Span {
        match self {
            Seconds::Literal(lit, _) => lit.span(),
            Seconds::Const(expr) => expr.span(),
        }
    }
}

impl Parse for Seconds {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Seconds::parse_in(input, "seconds", "a second")
    }
}

impl Seconds {
    /// A whole number of `unit`s (`seconds`; `a second` names its fraction).
    fn parse_in(input: ParseStream<'_>, unit: &str, one: &str) -> syn::Result<Self> {
        let expected = format!(
            "expected a number of {unit}: an integer literal or a const expression of type `u64`"
        );
        let expr: Expr = input.parse()?;
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => {
                if !matches!(lit.suffix(), "" | "u64") {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("{expected}, found a `{}` literal", lit.suffix()),
                    ));
                }
                let n = lit.base10_parse::<u64>()?;
                Ok(Seconds::Literal(lit, n))
            }
            Expr::Lit(ExprLit {
                lit: Lit::Float(lit),
                ..
            }) => Err(syn::Error::new(
                lit.span(),
                format!("{expected}; fractions of {one} are not supported"),
            )),
            Expr::Lit(ExprLit { lit, .. }) => Err(syn::Error::new(lit.span(), expected)),
            expr => Ok(Seconds::Const(Box::new(expr))),
        }
    }
}

/// A duration in milliseconds, written like [`Seconds`] (`soft_timeout_ms = 50`).
#[derive(Clone, Debug)]
pub(crate) struct Millis(pub(crate) Seconds);

impl Parse for Millis {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Seconds::parse_in(input, "milliseconds", "a millisecond").map(Millis)
    }
}

/// A fraction strictly between 0 and 1, as a float literal (`refresh_ahead = 0.8`).
#[derive(Clone, Debug)]
pub(crate) struct Fraction {
    pub(crate) lit: LitFloat,
}

impl Parse for Fraction {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        const EXPECTED: &str = "expected a fraction of the TTL strictly between 0 and 1, as a float literal, e.g. `0.8`";
        let lit = match input.parse::<Lit>() {
            Ok(Lit::Float(lit)) if matches!(lit.suffix(), "" | "f64") => lit,
            Ok(Lit::Int(lit)) => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("{EXPECTED}, not `{lit}`"),
                ));
            }
            Ok(other) => return Err(syn::Error::new(other.span(), EXPECTED)),
            Err(e) => return Err(syn::Error::new(e.span(), EXPECTED)),
        };
        let value = lit.base10_parse::<f64>()?;
        if !(value > 0.0 && value < 1.0) {
            return Err(syn::Error::new(
                lit.span(),
                format!("{EXPECTED}, not `{lit}`"),
            ));
        }
        Ok(Fraction { lit })
    }
}

/// A size in bytes: a positive integer literal (`max_size = 65536`).
#[derive(Clone, Debug)]
pub(crate) struct ByteSize {
    pub(crate) lit: LitInt,
}

impl Parse for ByteSize {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        const EXPECTED: &str = "expected a size in bytes: a positive integer literal, e.g. `65536`";
        let lit = match input.parse::<Lit>() {
            Ok(Lit::Int(lit)) => lit,
            Ok(other) => return Err(syn::Error::new(other.span(), EXPECTED)),
            Err(e) => return Err(syn::Error::new(e.span(), EXPECTED)),
        };
        if !matches!(lit.suffix(), "" | "u64" | "usize") {
            return Err(syn::Error::new(lit.span(), EXPECTED));
        }
        if lit.base10_parse::<u64>()? == 0 {
            return Err(syn::Error::new(
                lit.span(),
                "`max_size = 0` would cache nothing; remove the attribute instead",
            ));
        }
        Ok(ByteSize { lit })
    }
}

/// `["search", "cat:<category_id>"]`
#[derive(Clone, Debug)]
pub(crate) struct TagList {
    pub(crate) bracket: Span,
    pub(crate) tags: Vec<LitStr>,
}

impl Parse for TagList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !input.peek(syn::token::Bracket) {
            return Err(input.error(
                "expected a list of tag templates: `tags = [\"search\", \"cat:<category_id>\"]`",
            ));
        }
        let content;
        let bracket = bracketed!(content in input);
        let tags = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
        Ok(TagList {
            bracket: bracket.span.join(),
            tags: tags.into_iter().collect(),
        })
    }
}

/// The parsed arguments of one attribute.
#[derive(Clone, Debug, Default)]
pub(crate) struct Args {
    pub(crate) key: Option<Opt<LitStr>>,
    pub(crate) ttl: Option<Opt<Seconds>>,
    pub(crate) l1_ttl: Option<Opt<Seconds>>,
    pub(crate) stale: Option<Opt<Seconds>>,
    pub(crate) none_ttl: Option<Opt<Seconds>>,
    pub(crate) lease: Option<Opt<LitBool>>,
    pub(crate) refresh_ahead: Option<Opt<Fraction>>,
    pub(crate) soft_timeout_ms: Option<Opt<Millis>>,
    pub(crate) hard_timeout_ms: Option<Opt<Millis>>,
    pub(crate) max_size: Option<Opt<ByteSize>>,
    pub(crate) tags: Option<Opt<TagList>>,
    pub(crate) pattern: Option<Opt<LitStr>>,
    pub(crate) all: Option<Opt<LitBool>>,
    pub(crate) before: Option<Opt<LitBool>>,
    pub(crate) cache: Option<Opt<Expr>>,
    pub(crate) unless: Option<Opt<Expr>>,
}

impl Args {
    /// Parses the arguments of `kind`'s attribute.
    pub(crate) fn parse(input: ParseStream<'_>, kind: MacroKind) -> syn::Result<Args> {
        let mut args = Args::default();
        let mut given: Vec<&'static str> = Vec::new();
        while !input.is_empty() {
            let (option, kw) = keyword(input, kind)?;
            if given.contains(&option.keyword) {
                return Err(syn::Error::new(
                    kw,
                    format!("`{}` is specified more than once", option.keyword),
                ));
            }
            given.push(option.keyword);
            (option.parse)(&mut args, input, kw)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// The next option keyword: the single place that rejects a token that is no option, an unknown
/// option and an option the attribute does not take, each spanned on the keyword.
fn keyword(input: ParseStream<'_>, kind: MacroKind) -> syn::Result<(&'static OptionSpec, Span)> {
    if !input.peek(Ident::peek_any) {
        return Err(input.error(format!(
            "expected an option: {} takes {}",
            kind.attr(),
            kind.option_list()
        )));
    }
    let ident = Ident::parse_any(input)?;
    let name = ident.to_string();
    let Some(option) = OPTIONS.iter().find(|o| o.keyword == name) else {
        let suggestion = kind
            .options()
            .find(|o| is_similar(&name, o.keyword))
            .map(|o| format!(" (did you mean `{}`?)", o.keyword))
            .unwrap_or_default();
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "unknown option `{name}`{suggestion}; {} takes {}",
                kind.attr(),
                kind.option_list()
            ),
        ));
    };
    if !option.takers.contains(&kind) {
        let takers: Vec<&str> = option.takers.iter().map(|k| k.attr()).collect();
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "{} does not take `{}` (an option of {}); it takes {}",
                kind.attr(),
                option.keyword,
                takers.join(" and "),
                kind.option_list()
            ),
        ));
    }
    Ok((option, ident.span()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse::Parser;

    fn parse(kind: MacroKind, src: &str) -> syn::Result<Args> {
        let tokens: proc_macro2::TokenStream = src.parse().expect("tokens");
        (|input: ParseStream<'_>| Args::parse(input, kind)).parse2(tokens)
    }

    fn err(kind: MacroKind, src: &str) -> String {
        match parse(kind, src) {
            Ok(_) => panic!("`{src}` parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_every_option() {
        let args = parse(
            MacroKind::Cached,
            r#"key = "prod:<id>", ttl = 1800, l1_ttl = TTL / 2, stale = 60u64, none_ttl = 5,
               tags = ["search", "cat:<c>",], cache = self.cache(), unless = |p| p.draft,"#,
        )
        .expect("parses");
        assert_eq!(args.key.expect("key").value.value(), "prod:<id>");
        assert_eq!(args.ttl.expect("ttl").value.literal(), Some(1800));
        assert!(matches!(args.l1_ttl.expect("l1").value, Seconds::Const(_)));
        assert_eq!(args.stale.expect("stale").value.literal(), Some(60));
        assert_eq!(args.tags.expect("tags").value.tags.len(), 2);
        assert!(args.cache.is_some() && args.unless.is_some());
        let args = parse(
            MacroKind::Evict,
            r#"pattern = "p:*", all = true, before = false"#,
        )
        .expect("parses");
        assert!(args.all.expect("all").value.value);
        assert!(!args.before.expect("before").value.value);
        assert!(parse(MacroKind::Cached, "").expect("empty").key.is_none());
    }

    #[test]
    fn rejects_duplicates_unknown_and_misplaced_options() {
        assert_eq!(
            err(MacroKind::Cached, r#"key = "a", key = "b""#),
            "`key` is specified more than once"
        );
        let e = err(MacroKind::Cached, "tll = 5");
        assert!(
            e.starts_with("unknown option `tll` (did you mean `ttl`?); #[cached] takes `key`"),
            "{e}"
        );
        let e = err(MacroKind::Cached, "before = true");
        assert!(
            e.starts_with("#[cached] does not take `before` (an option of #[cache_evict])"),
            "{e}"
        );
        let e = err(MacroKind::Put, "none_ttl = 5");
        assert!(e.contains("(an option of #[cached])"), "{e}");
    }

    #[test]
    fn each_attribute_takes_the_options_its_documentation_lists() {
        assert_eq!(
            MacroKind::Cached.option_list(),
            "`key`, `ttl`, `l1_ttl`, `stale`, `none_ttl`, `lease`, `refresh_ahead`, `soft_timeout_ms`, \
             `hard_timeout_ms`, `max_size`, `tags`, `cache`, `unless`"
        );
        assert_eq!(
            MacroKind::Put.option_list(),
            "`key`, `ttl`, `l1_ttl`, `stale`, `max_size`, `tags`, `cache`, `unless`"
        );
        assert_eq!(
            MacroKind::Evict.option_list(),
            "`key`, `tags`, `pattern`, `all`, `before`, `cache`"
        );
        let e = err(MacroKind::Evict, "ttl = 5");
        assert!(
            e.starts_with(
                "#[cache_evict] does not take `ttl` (an option of #[cached] and #[cache_put])"
            ),
            "{e}"
        );
    }

    #[test]
    fn judges_the_keyword_before_its_value() {
        // The keyword is the mistake: its value is not even looked at.
        let e = err(MacroKind::Cached, "pattern = 5");
        assert!(e.starts_with("#[cached] does not take `pattern`"), "{e}");
        assert_eq!(
            err(MacroKind::Cached, "ttl = 5, ttl = x y"),
            "`ttl` is specified more than once"
        );
        assert_eq!(
            err(MacroKind::Evict, r#""p:*""#),
            "expected an option: #[cache_evict] takes `key`, `tags`, `pattern`, `all`, `before`, `cache`"
        );
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(err(MacroKind::Cached, r#"ttl = "5""#).starts_with("expected a number of seconds"));
        assert!(err(MacroKind::Cached, "ttl = 1.5").contains("fractions"));
        assert!(err(MacroKind::Cached, "ttl = 5u32").contains("found a `u32` literal"));
        assert!(err(MacroKind::Cached, "key = prod").contains("expected string literal"));
        assert!(
            err(MacroKind::Cached, r#"tags = "a""#).contains("expected a list of tag templates")
        );
        assert!(err(MacroKind::Evict, "all = 1").contains("expected boolean literal"));
        for bad in ["0.0", "1.0", "1", "1.5", "-0.5", "x"] {
            let e = err(MacroKind::Cached, &format!("refresh_ahead = {bad}"));
            assert!(
                e.starts_with("expected a fraction of the TTL strictly between 0 and 1"),
                "{bad}: {e}"
            );
        }
        assert!(
            err(MacroKind::Cached, "soft_timeout_ms = 1.5")
                .contains("fractions of a millisecond are not supported")
        );
        assert!(err(MacroKind::Cached, r#"key = "a" ttl = 5"#).contains("expected `,`"));
    }
}

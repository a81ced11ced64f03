//! Parsing of the attribute arguments: `key = "prod:<id>", ttl = 1800, tags = ["search"], ..`.
//!
//! Every option is a keyword declared with `syn::custom_keyword!` and parses into a typed field of
//! [`Args`]. Which options a macro accepts, and that none is given twice, is checked in one place
//! ([`Args::set`]); what the values mean together is checked in `validate.rs`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitInt, LitStr, Token, bracketed};

mod kw {
    syn::custom_keyword!(key);
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(l1_ttl);
    syn::custom_keyword!(stale);
    syn::custom_keyword!(none_ttl);
    syn::custom_keyword!(tags);
    syn::custom_keyword!(pattern);
    syn::custom_keyword!(all);
    syn::custom_keyword!(before);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(unless);
}

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MacroKind {
    Cached,
    Put,
    Evict,
}

impl MacroKind {
    /// The attribute as the user spells it, for messages: `#[cached]`.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            MacroKind::Cached => "#[cached]",
            MacroKind::Put => "#[cache_put]",
            MacroKind::Evict => "#[cache_evict]",
        }
    }

    /// The options this attribute accepts, in the order the documentation lists them.
    fn options(self) -> &'static [OptionName] {
        use OptionName::*;
        match self {
            MacroKind::Cached => &[Key, Ttl, L1Ttl, Stale, NoneTtl, Tags, Cache, Unless],
            MacroKind::Put => &[Key, Ttl, L1Ttl, Stale, Tags, Cache, Unless],
            MacroKind::Evict => &[Key, Tags, Pattern, All, Before, Cache],
        }
    }
}

/// Every option any of the attributes knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OptionName {
    Key,
    Ttl,
    L1Ttl,
    Stale,
    NoneTtl,
    Tags,
    Pattern,
    All,
    Before,
    Cache,
    Unless,
}

impl OptionName {
    const ALL: [OptionName; 11] = [
        OptionName::Key,
        OptionName::Ttl,
        OptionName::L1Ttl,
        OptionName::Stale,
        OptionName::NoneTtl,
        OptionName::Tags,
        OptionName::Pattern,
        OptionName::All,
        OptionName::Before,
        OptionName::Cache,
        OptionName::Unless,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OptionName::Key => "key",
            OptionName::Ttl => "ttl",
            OptionName::L1Ttl => "l1_ttl",
            OptionName::Stale => "stale",
            OptionName::NoneTtl => "none_ttl",
            OptionName::Tags => "tags",
            OptionName::Pattern => "pattern",
            OptionName::All => "all",
            OptionName::Before => "before",
            OptionName::Cache => "cache",
            OptionName::Unless => "unless",
        }
    }
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
        const EXPECTED: &str =
            "expected a number of seconds: an integer literal or a const expression of type `u64`";
        let expr: Expr = input.parse()?;
        match expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => {
                if !matches!(lit.suffix(), "" | "u64") {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("{EXPECTED}, found a `{}` literal", lit.suffix()),
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
                format!("{EXPECTED}; fractions of a second are not supported"),
            )),
            Expr::Lit(ExprLit { lit, .. }) => Err(syn::Error::new(lit.span(), EXPECTED)),
            expr => Ok(Seconds::Const(Box::new(expr))),
        }
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
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::key) {
                let kw = input.parse::<kw::key>()?.span;
                Args::set(kind, OptionName::Key, &mut args.key, kw, value(input)?)?;
            } else if lookahead.peek(kw::ttl) {
                let kw = input.parse::<kw::ttl>()?.span;
                Args::set(kind, OptionName::Ttl, &mut args.ttl, kw, value(input)?)?;
            } else if lookahead.peek(kw::l1_ttl) {
                let kw = input.parse::<kw::l1_ttl>()?.span;
                Args::set(kind, OptionName::L1Ttl, &mut args.l1_ttl, kw, value(input)?)?;
            } else if lookahead.peek(kw::stale) {
                let kw = input.parse::<kw::stale>()?.span;
                Args::set(kind, OptionName::Stale, &mut args.stale, kw, value(input)?)?;
            } else if lookahead.peek(kw::none_ttl) {
                let kw = input.parse::<kw::none_ttl>()?.span;
                Args::set(
                    kind,
                    OptionName::NoneTtl,
                    &mut args.none_ttl,
                    kw,
                    value(input)?,
                )?;
            } else if lookahead.peek(kw::tags) {
                let kw = input.parse::<kw::tags>()?.span;
                Args::set(kind, OptionName::Tags, &mut args.tags, kw, value(input)?)?;
            } else if lookahead.peek(kw::pattern) {
                let kw = input.parse::<kw::pattern>()?.span;
                Args::set(
                    kind,
                    OptionName::Pattern,
                    &mut args.pattern,
                    kw,
                    value(input)?,
                )?;
            } else if lookahead.peek(kw::all) {
                let kw = input.parse::<kw::all>()?.span;
                Args::set(kind, OptionName::All, &mut args.all, kw, value(input)?)?;
            } else if lookahead.peek(kw::before) {
                let kw = input.parse::<kw::before>()?.span;
                Args::set(
                    kind,
                    OptionName::Before,
                    &mut args.before,
                    kw,
                    value(input)?,
                )?;
            } else if lookahead.peek(kw::cache) {
                let kw = input.parse::<kw::cache>()?.span;
                Args::set(kind, OptionName::Cache, &mut args.cache, kw, value(input)?)?;
            } else if lookahead.peek(kw::unless) {
                let kw = input.parse::<kw::unless>()?.span;
                Args::set(
                    kind,
                    OptionName::Unless,
                    &mut args.unless,
                    kw,
                    value(input)?,
                )?;
            } else if input.peek(Ident::peek_any) {
                return Err(unknown_option(input, kind));
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }

    /// Stores one option: the single place that rejects an option the attribute does not take,
    /// and an option given twice. Both errors are spanned on the offending keyword.
    fn set<T>(
        kind: MacroKind,
        name: OptionName,
        slot: &mut Option<Opt<T>>,
        kw: Span,
        value: T,
    ) -> syn::Result<()> {
        if !kind.options().contains(&name) {
            let takers: Vec<&str> = [MacroKind::Cached, MacroKind::Put, MacroKind::Evict]
                .into_iter()
                .filter(|k| k.options().contains(&name))
                .map(MacroKind::attr)
                .collect();
            return Err(syn::Error::new(
                kw,
                format!(
                    "{} does not take `{}` (an option of {}); it takes {}",
                    kind.attr(),
                    name.as_str(),
                    takers.join(" and "),
                    option_list(kind)
                ),
            ));
        }
        if slot.is_some() {
            return Err(syn::Error::new(
                kw,
                format!("`{}` is specified more than once", name.as_str()),
            ));
        }
        *slot = Some(Opt { kw, value });
        Ok(())
    }
}

/// `= value`
fn value<T: Parse>(input: ParseStream<'_>) -> syn::Result<T> {
    input.parse::<Token![=]>()?;
    input.parse()
}

fn option_list(kind: MacroKind) -> String {
    let names: Vec<String> = kind
        .options()
        .iter()
        .map(|o| format!("`{}`", o.as_str()))
        .collect();
    names.join(", ")
}

/// The error for an identifier that is no option at all.
fn unknown_option(input: ParseStream<'_>, kind: MacroKind) -> syn::Error {
    let span = input.span();
    let name = input
        .cursor()
        .ident()
        .map(|(ident, _)| ident.to_string())
        .unwrap_or_default();
    let suggestion = OptionName::ALL
        .into_iter()
        .filter(|o| kind.options().contains(o))
        .find(|o| crate::validate::is_similar(&name, o.as_str()))
        .map(|o| format!(" (did you mean `{}`?)", o.as_str()))
        .unwrap_or_default();
    syn::Error::new(
        span,
        format!(
            "unknown option `{name}`{suggestion}; {} takes {}",
            kind.attr(),
            option_list(kind)
        ),
    )
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
    fn rejects_malformed_values() {
        assert!(err(MacroKind::Cached, r#"ttl = "5""#).starts_with("expected a number of seconds"));
        assert!(err(MacroKind::Cached, "ttl = 1.5").contains("fractions"));
        assert!(err(MacroKind::Cached, "ttl = 5u32").contains("found a `u32` literal"));
        assert!(err(MacroKind::Cached, "key = prod").contains("expected string literal"));
        assert!(
            err(MacroKind::Cached, r#"tags = "a""#).contains("expected a list of tag templates")
        );
        assert!(err(MacroKind::Evict, "all = 1").contains("expected boolean literal"));
        assert!(err(MacroKind::Cached, r#"key = "a" ttl = 5"#).contains("expected `,`"));
    }
}

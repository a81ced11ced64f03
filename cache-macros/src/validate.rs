//! Checks the options against each other and against the function, and resolves every
//! placeholder to a parameter. The result, a [`Site`], holds one validated type per attribute
//! ([`CachedSite`], [`PutSite`], [`EvictSite`]): a site has exactly the settings its attribute
//! takes, so `expand/` never meets an option that cannot apply.
//!
//! Every error is spanned on the user's mistake: a template error on its string literal (with the
//! position of the mistake shown in the message), an option error on its keyword or value, a
//! missing option on the attribute. All problems are reported at once, in a fixed order. This file
//! never parses tokens (that is `args.rs` and `function.rs`) and never generates code.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Type};

use cache_template::{Template, TemplateError, TemplateKind};

use crate::args::{Args, ByteSize, MacroKind, Opt, Seconds};
use crate::function::{Function, Receiver, Shape};
use crate::suggest::is_similar;

mod loads;

use loads::LoadArgs;
pub(crate) use loads::Loads;

/// A validated attribute: what every kind has (the cache handle, the argument slots its templates
/// name), and what its kind has.
pub(crate) struct Site {
    pub(crate) cache: CacheHandle,
    /// The argument slots referenced by key, tags and pattern, deduplicated, in order of appearance.
    pub(crate) slots: Vec<Slot>,
    pub(crate) kind: SiteKind,
}

pub(crate) enum SiteKind {
    Cached(CachedSite),
    Put(PutSite),
    Evict(EvictSite),
}

/// `#[cached]`: the entry it reads, loading it with the body on a miss.
pub(crate) struct CachedSite {
    pub(crate) entry: Entry,
    /// The load options; only with a TTL policy in the attribute.
    pub(crate) loads: Option<Loads>,
}

/// `#[cache_put]`: the entry the body's successful value is written to.
pub(crate) struct PutSite {
    pub(crate) entry: Entry,
}

/// What `#[cached]` and `#[cache_put]` share: the entry they read or write.
pub(crate) struct Entry {
    pub(crate) key: LitStr,
    /// `None`: the policy registered for the key (or the cache's default) applies.
    pub(crate) policy: Option<Policy>,
    pub(crate) tags: Vec<LitStr>,
    /// `true` means "do not cache this value".
    pub(crate) unless: Option<Expr>,
}

/// The TTL policy written in the attribute.
pub(crate) struct Policy {
    pub(crate) ttl: Seconds,
    pub(crate) l1_ttl: Option<Seconds>,
    pub(crate) stale: Option<Seconds>,
    /// The largest encoded value cached, in bytes.
    pub(crate) max_size: Option<ByteSize>,
}

/// `#[cache_evict]`: what it invalidates, and when.
pub(crate) struct EvictSite {
    pub(crate) targets: Targets,
    /// `before = true`: invalidate before the body runs, whatever it then does; otherwise after it
    /// succeeded.
    pub(crate) before: bool,
}

/// What `#[cache_evict]` invalidates.
pub(crate) enum Targets {
    /// `all = true`: the cache's whole namespace.
    All,
    /// At least one of a key, tags and a glob pattern.
    Entries {
        key: Option<LitStr>,
        tags: Vec<LitStr>,
        pattern: Option<LitStr>,
    },
}

/// One argument slot: `id`, `product.id` or `query:hash`.
pub(crate) struct Slot {
    /// `Placeholder::spec()`: how cache-core identifies the slot.
    pub(crate) spec: String,
    /// The parameter (or `self`) and the fields below it, spanned on the template literal.
    pub(crate) root: Ident,
    pub(crate) fields: Vec<Ident>,
    pub(crate) hash: bool,
    /// For a parameter declared as a primitive integer (`id: u64`, `id: &u64`), the number of
    /// references to strip: such a value is rendered without `core::fmt`.
    pub(crate) integer: Option<usize>,
    /// The literal of the first template that mentions the slot.
    pub(crate) span: Span,
}

/// Where the `Cache` comes from.
pub(crate) enum CacheHandle {
    /// `cache = <expr>`
    Expr(Expr),
    /// The default, `self.cache`.
    SelfField(Receiver),
}

/// Validates `args` for `func`, reporting every problem found (not only the first): the one that
/// leaves no site to build (a missing key, nothing to invalidate) first, then the options, the
/// templates, and the cache handle last.
pub(crate) fn validate(kind: MacroKind, mut args: Args, func: &Function) -> syn::Result<Site> {
    let mut errors = Errors::default();
    let templates = Templates::of(&args);
    let cache = args.cache.take();
    let site = match kind {
        MacroKind::Cached => {
            let loads = LoadArgs::take(&mut args);
            entry(kind, args, Some(&loads), func, &mut errors).map(|entry| {
                let loads =
                    (entry.policy.as_ref()).map(|policy| loads.validate(policy, func, &mut errors));
                SiteKind::Cached(CachedSite { entry, loads })
            })
        }
        MacroKind::Put => {
            entry(kind, args, None, func, &mut errors).map(|entry| SiteKind::Put(PutSite { entry }))
        }
        MacroKind::Evict => evict_site(args).map(SiteKind::Evict),
    };
    let slots = templates.resolve(func, &mut errors);
    let cache = cache_handle(kind, cache, func);
    let ((kind, ()), cache) = both(both(site, errors.finish()), cache)?;
    Ok(Site { cache, slots, kind })
}

/// The entry of a `#[cached]` or `#[cache_put]` site (whose load options, if any, are given
/// apart): an error when the key is missing; other problems go to `errors`.
fn entry(
    kind: MacroKind,
    args: Args,
    loads: Option<&LoadArgs>,
    func: &Function,
    errors: &mut Errors,
) -> syn::Result<Entry> {
    let key = args.key.map(|k| k.value).ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            format!(
                "{} needs a key template, e.g. `key = \"prod:<id>\"`",
                kind.attr()
            ),
        )
    });
    check_return_type(kind, func, errors);
    if let Some(loads) = loads {
        loads.check_none_ttl(func, errors);
    }
    let policy = policy(
        PolicyArgs {
            ttl: args.ttl,
            l1_ttl: args.l1_ttl,
            stale: args.stale,
            max_size: args.max_size,
        },
        loads.map(LoadArgs::given).unwrap_or_default(),
        errors,
    );
    Ok(Entry {
        key: key?,
        policy,
        tags: args.tags.map(|t| t.value.tags).unwrap_or_default(),
        unless: args.unless.map(|u| u.value),
    })
}

/// The TTL policy of the attribute, if it has a `ttl`; durations that make no sense go to
/// `errors`, and so do `l1_ttl`, `stale`, `max_size` and the load options (`loads`, by keyword)
/// without a `ttl`.
fn policy(
    args: PolicyArgs,
    loads: Vec<(&'static str, Span)>,
    errors: &mut Errors,
) -> Option<Policy> {
    let PolicyArgs {
        ttl,
        l1_ttl,
        stale,
        max_size,
    } = args;
    for (name, opt) in [("ttl", &ttl), ("l1_ttl", &l1_ttl)] {
        if let Some(opt) = opt
            && opt.value.literal() == Some(0)
        {
            errors.push(syn::Error::new(
                opt.value.span(),
                format!("`{name} = 0` would expire entries at once; remove the attribute instead"),
            ));
        }
    }
    let Some(ttl) = ttl else {
        // Without `ttl` the site uses the policy registered for its key (or the default one)
        // as a whole; a partial policy would be silently ignored.
        let partial = [
            ("l1_ttl", l1_ttl.as_ref().map(|o| o.kw)),
            ("stale", stale.as_ref().map(|o| o.kw)),
        ]
        .into_iter()
        .filter_map(|(name, kw)| kw.map(|kw| (name, kw)))
        .chain(loads)
        .chain(max_size.as_ref().map(|o| ("max_size", o.kw)));
        for (name, kw) in partial {
            errors.push(syn::Error::new(
                kw,
                format!(
                    "`{name}` needs `ttl` in the same attribute: without `ttl`, the policy \
                     registered for this key with `Cache::register` (or the cache's default) applies as a whole"
                ),
            ));
        }
        return None;
    };
    if let Some(l1) = &l1_ttl
        && let (Some(t), Some(l)) = (ttl.value.literal(), l1.value.literal())
        && l > t
    {
        errors.push(syn::Error::new(
            l1.value.span(),
            format!("`l1_ttl = {l}` is longer than `ttl = {t}`: the in-process copy would outlive the entry"),
        ));
    }
    Some(Policy {
        ttl: ttl.value,
        l1_ttl: l1_ttl.map(|o| o.value),
        stale: stale.map(|o| o.value),
        max_size: max_size.map(|o| o.value),
    })
}

/// The options of an attribute that make up its policy.
struct PolicyArgs {
    ttl: Option<Opt<Seconds>>,
    l1_ttl: Option<Opt<Seconds>>,
    stale: Option<Opt<Seconds>>,
    max_size: Option<Opt<ByteSize>>,
}

/// The targets of a `#[cache_evict]` site: an error when there is nothing to invalidate, or
/// `all = true` beside something more specific.
fn evict_site(args: Args) -> syn::Result<EvictSite> {
    let all = args.all.as_ref().filter(|a| a.value.value);
    let specific = args.key.is_some() || args.tags.is_some() || args.pattern.is_some();
    let targets = match (all, specific) {
        (None, false) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[cache_evict] needs something to invalidate: `key = \"..\"`, `tags = [..]`, \
                 `pattern = \"..\"` or `all = true`",
            ));
        }
        (Some(all), true) => {
            return Err(syn::Error::new(
                all.kw,
                "`all = true` invalidates the whole namespace; `key`, `tags` and `pattern` would add nothing",
            ));
        }
        (Some(_), false) => Targets::All,
        (None, true) => Targets::Entries {
            key: args.key.map(|k| k.value),
            tags: args.tags.map(|t| t.value.tags).unwrap_or_default(),
            pattern: args.pattern.map(|p| p.value),
        },
    };
    Ok(EvictSite {
        targets,
        before: args.before.is_some_and(|b| b.value.value),
    })
}

/// The cache handle: `cache = <expr>`, or `self.cache` when there is a `self`.
fn cache_handle(
    kind: MacroKind,
    cache: Option<Opt<Expr>>,
    func: &Function,
) -> syn::Result<CacheHandle> {
    match (cache, func.receiver) {
        (Some(Opt { value, .. }), _) => Ok(CacheHandle::Expr(value)),
        (None, Some(receiver)) => Ok(CacheHandle::SelfField(receiver)),
        (None, None) => Err(syn::Error::new(
            Span::call_site(),
            format!(
                "`{}` has no `self`, so {} cannot use the default `self.cache`; \
                 name the cache with `cache = <expr>`, e.g. `cache = &*CACHE` or `cache = cache`",
                func.sig().ident,
                kind.attr()
            ),
        )),
    }
}

/// The templates of an attribute, in the order their slots are numbered: key, tags, pattern.
struct Templates {
    list: Vec<(LitStr, TemplateKind)>,
    /// The brackets of `tags = []`.
    empty_tags: Option<Span>,
}

impl Templates {
    fn of(args: &Args) -> Templates {
        let key = args
            .key
            .iter()
            .map(|k| (k.value.clone(), TemplateKind::Key));
        let tags = args.tags.iter().flat_map(|t| &t.value.tags);
        let tags = tags.map(|t| (t.clone(), TemplateKind::Tag));
        let pattern = args.pattern.iter();
        let pattern = pattern.map(|p| (p.value.clone(), TemplateKind::Glob));
        Templates {
            list: key.chain(tags).chain(pattern).collect(),
            empty_tags: args
                .tags
                .as_ref()
                .filter(|t| t.value.tags.is_empty())
                .map(|t| t.value.bracket),
        }
    }

    /// Parses every template and resolves its placeholders to argument slots.
    fn resolve(&self, func: &Function, errors: &mut Errors) -> Vec<Slot> {
        if let Some(bracket) = self.empty_tags {
            errors.push(syn::Error::new(
                bracket,
                "`tags` is empty; list at least one tag or remove it",
            ));
        }
        let mut slots = Vec::new();
        for (lit, kind) in &self.list {
            match Template::parse(&lit.value(), *kind) {
                Ok(template) => resolve_placeholders(lit, &template, func, &mut slots, errors),
                Err(e) => errors.push(template_error(lit, *kind, &e)),
            }
        }
        slots
    }
}

/// The value a `#[cached]`/`#[cache_put]` function produces must be something to cache.
fn check_return_type(kind: MacroKind, func: &Function, errors: &mut Errors) {
    let shape = &func.output.shape;
    let Some(value) = shape.value() else {
        errors.push(syn::Error::new(
            func.output.span(),
            format!(
                "`{}` returns nothing, so {} has nothing to cache",
                func.sig().ident,
                kind.attr()
            ),
        ));
        return;
    };
    for ty in [Some(value), shape.error()].into_iter().flatten() {
        if let Type::ImplTrait(_) = ty {
            errors.push(syn::Error::new(
                ty.span(),
                format!(
                    "{} needs a nameable type here, not `impl Trait`",
                    kind.attr()
                ),
            ));
        }
    }
    if let (Shape::Value(_) | Shape::Result(..), MacroKind::Cached) = (shape, kind)
        && let Type::Tuple(t) = value
        && t.elems.is_empty()
    {
        errors.push(syn::Error::new(
            value.span(),
            "#[cached] on a function whose result is `()` caches nothing",
        ));
    }
}

/// Checks that every placeholder of `template` names a parameter (or `self`), and records the new
/// argument slots.
fn resolve_placeholders(
    lit: &LitStr,
    template: &Template,
    func: &Function,
    slots: &mut Vec<Slot>,
    errors: &mut Errors,
) {
    for placeholder in template.placeholders() {
        let spec = placeholder.spec();
        if slots.iter().any(|s| s.spec == spec) {
            continue;
        }
        let root = placeholder.root();
        let known = if root == "self" {
            func.receiver.is_some()
        } else {
            func.params.iter().any(|p| p == root)
        };
        if !known {
            errors.push(error_at(
                lit,
                &unknown_placeholder(&spec, root, func),
                placeholder.offset,
                placeholder.len,
            ));
            continue;
        }
        let mut parts = placeholder
            .path
            .split('.')
            .map(|part| Ident::new(part, lit.span()));
        let Some(root) = parts.next() else { continue };
        let fields: Vec<Ident> = parts.collect();
        let integer = if fields.is_empty() && !placeholder.hash {
            func.integer_param(&root)
        } else {
            None
        };
        slots.push(Slot {
            spec,
            root,
            fields,
            hash: placeholder.hash,
            integer,
            span: lit.span(),
        });
    }
}

fn unknown_placeholder(spec: &str, root: &str, func: &Function) -> String {
    let mut names: Vec<String> = func.params.iter().map(|p| p.to_string()).collect();
    if func.receiver.is_some() {
        names.insert(0, "self".to_owned());
    }
    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let mut message = format!(
        "placeholder `<{spec}>` names no parameter of `{}`",
        func.sig().ident
    );
    if let Some(similar) = names.iter().find(|n| is_similar(root, n)) {
        message.push_str(&format!("; did you mean `{similar}`?"));
    } else if listed.is_empty() {
        message.push_str(" (it has no parameters)");
    } else {
        message.push_str(&format!(" (parameters: {})", listed.join(", ")));
    }
    message
}

/// `invalid key template: unclosed placeholder: expected `>``, with the template and a caret line.
fn template_error(lit: &LitStr, kind: TemplateKind, e: &TemplateError) -> syn::Error {
    let what = match kind {
        TemplateKind::Key => "key template",
        TemplateKind::Tag => "tag template",
        TemplateKind::Glob => "invalidation pattern",
    };
    error_at(
        lit,
        &format!("invalid {what}: {}", e.message),
        e.offset,
        e.len,
    )
}

/// An error on the template literal `lit` (stable proc macros cannot span inside a string), whose
/// message shows the template with a caret line under bytes `offset..offset + len`.
fn error_at(lit: &LitStr, message: &str, offset: usize, len: usize) -> syn::Error {
    let source = lit.value();
    let start = source.get(..offset).map_or(offset, |s| s.chars().count());
    let width = source
        .get(offset..offset + len)
        .map_or(1, |s| s.chars().count().max(1));
    syn::Error::new(
        lit.span(),
        format!(
            "{message}\n  |\n  | {source}\n  | {}{}",
            " ".repeat(start),
            "^".repeat(width)
        ),
    )
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Both values, or the errors of both (`a`'s first).
fn both<A, B>(a: syn::Result<A>, b: syn::Result<B>) -> syn::Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            Err(a)
        }
    }
}

//! Checks the options against each other and against the function, and resolves every
//! placeholder to a parameter. The result, [`Site`], is what `expand.rs` turns into code.
//!
//! Every error is spanned on the user's mistake: a template error on its string literal (with the
//! position of the mistake shown in the message), an option error on its keyword, a missing option
//! on the attribute.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Type};

use crate::args::{Args, MacroKind, Opt, Seconds};
use crate::function::{Function, Receiver, Shape};
use cache_template::{Template, TemplateError, TemplateKind};

/// A validated call site: everything `expand.rs` needs.
pub(crate) struct Site {
    pub(crate) kind: MacroKind,
    pub(crate) key: Option<LitStr>,
    /// The argument slots referenced by key, tags and pattern, deduplicated, in order of appearance.
    pub(crate) slots: Vec<Slot>,
    pub(crate) ttl: Option<Seconds>,
    pub(crate) l1_ttl: Option<Seconds>,
    pub(crate) stale: Option<Seconds>,
    pub(crate) none_ttl: Option<Seconds>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) pattern: Option<LitStr>,
    pub(crate) all: bool,
    pub(crate) before: bool,
    pub(crate) cache: CacheHandle,
    pub(crate) unless: Option<Expr>,
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

/// Validates `args` for `func`, reporting every problem found (not only the first).
pub(crate) fn validate(kind: MacroKind, args: Args, func: &Function) -> syn::Result<Site> {
    let mut errors = Errors::default();
    let shape = &func.output.shape;

    // Required and exclusive options.
    if args.key.is_none() && kind != MacroKind::Evict {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!(
                "{} needs a key template, e.g. `key = \"prod:<id>\"`",
                kind.attr()
            ),
        ));
    }
    let all = args.all.as_ref().is_some_and(|a| a.value.value);
    if kind == MacroKind::Evict {
        let targets = [
            args.key.is_some(),
            args.tags.is_some(),
            args.pattern.is_some(),
        ];
        if !all && !targets.contains(&true) {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[cache_evict] needs something to invalidate: `key = \"..\"`, `tags = [..]`, \
                 `pattern = \"..\"` or `all = true`",
            ));
        }
        if let Some(a) = args.all.as_ref().filter(|_| all && targets.contains(&true)) {
            errors.push(syn::Error::new(
                a.kw,
                "`all = true` invalidates the whole namespace; `key`, `tags` and `pattern` would add nothing",
            ));
        }
    }

    // Return type.
    if kind != MacroKind::Evict {
        check_return_type(kind, func, &mut errors);
    }
    if let Some(none_ttl) = &args.none_ttl
        && !shape.has_option()
    {
        errors.push(syn::Error::new(
            none_ttl.kw,
            format!(
                "`none_ttl` sets how long a `None` result is cached, but `{}` never returns `None` \
                 (its return type is not `Option<T>` nor `Result<Option<T>, E>`)",
                func.sig().ident
            ),
        ));
    }

    // Durations.
    for (name, opt) in [("ttl", &args.ttl), ("l1_ttl", &args.l1_ttl)] {
        if let Some(opt) = opt
            && opt.value.literal() == Some(0)
        {
            errors.push(syn::Error::new(
                opt.value.span(),
                format!("`{name} = 0` would expire entries at once; remove the attribute instead"),
            ));
        }
    }
    if args.ttl.is_none() {
        // Without `ttl` the site uses the policy registered for its key (or the default one)
        // as a whole; a partial policy would be silently ignored.
        for (name, opt) in [
            ("l1_ttl", &args.l1_ttl),
            ("stale", &args.stale),
            ("none_ttl", &args.none_ttl),
        ] {
            if let Some(opt) = opt {
                errors.push(syn::Error::new(
                    opt.kw,
                    format!(
                        "`{name}` needs `ttl` in the same attribute: without `ttl`, the policy \
                         registered for this key with `Cache::register` (or the cache's default) applies as a whole"
                    ),
                ));
            }
        }
    }
    if let (Some(ttl), Some(l1)) = (&args.ttl, &args.l1_ttl)
        && let (Some(t), Some(l)) = (ttl.value.literal(), l1.value.literal())
        && l > t
    {
        errors.push(syn::Error::new(
            l1.value.span(),
            format!("`l1_ttl = {l}` is longer than `ttl = {t}`: the in-process copy would outlive the entry"),
        ));
    }

    // Templates and their placeholders.
    let mut slots = Vec::new();
    let mut templates: Vec<(&LitStr, TemplateKind)> = Vec::new();
    if let Some(key) = &args.key {
        templates.push((&key.value, TemplateKind::Key));
    }
    if let Some(tags) = &args.tags {
        if tags.value.tags.is_empty() {
            errors.push(syn::Error::new(
                tags.value.bracket,
                "`tags` is empty; list at least one tag or remove it",
            ));
        }
        templates.extend(tags.value.tags.iter().map(|t| (t, TemplateKind::Tag)));
    }
    if let Some(pattern) = &args.pattern {
        templates.push((&pattern.value, TemplateKind::Glob));
    }
    for (lit, template_kind) in templates {
        match Template::parse(&lit.value(), template_kind) {
            Ok(template) => resolve_placeholders(lit, &template, func, &mut slots, &mut errors),
            Err(e) => errors.push(template_error(lit, template_kind, &e)),
        }
    }

    // The cache handle.
    let cache = match (args.cache, func.receiver) {
        (Some(Opt { value, .. }), _) => Some(CacheHandle::Expr(value)),
        (None, Some(receiver)) => Some(CacheHandle::SelfField(receiver)),
        (None, None) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!(
                    "`{}` has no `self`, so {} cannot use the default `self.cache`; \
                     name the cache with `cache = <expr>`, e.g. `cache = &*CACHE` or `cache = cache`",
                    func.sig().ident,
                    kind.attr()
                ),
            ));
            None
        }
    };

    errors.finish()?;
    let Some(cache) = cache else {
        // Only reachable with an error, which `finish` returned.
        return Err(syn::Error::new(Span::call_site(), "missing `cache`"));
    };
    let value = |o: Option<Opt<Seconds>>| o.map(|o| o.value);
    Ok(Site {
        kind,
        key: args.key.map(|k| k.value),
        slots,
        ttl: value(args.ttl),
        l1_ttl: value(args.l1_ttl),
        stale: value(args.stale),
        none_ttl: value(args.none_ttl),
        tags: args.tags.map(|t| t.value.tags).unwrap_or_default(),
        pattern: args.pattern.map(|p| p.value),
        all,
        before: args.before.is_some_and(|b| b.value.value),
        cache,
        unless: args.unless.map(|u| u.value),
    })
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

/// `true` when `a` looks like a misspelling of `b` (a small edit distance).
pub(crate) fn is_similar(a: &str, b: &str) -> bool {
    if a == b || a.is_empty() {
        return false;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()] <= (b.len().max(a.len()) / 3).max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names() {
        assert!(is_similar("idd", "id"));
        assert!(is_similar("tll", "ttl"));
        assert!(is_similar("categroy_id", "category_id"));
        assert!(!is_similar("query", "id"));
        assert!(!is_similar("id", "id"));
    }
}

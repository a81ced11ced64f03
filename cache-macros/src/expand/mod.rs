//! Code generation: turns a validated [`Site`] and the [`Function`] into the function with its new
//! body. The generated code only arranges calls into `::cache_core::__private`; all behaviour
//! (rendering keys, single-flight, fail-safe, metrics, invalidation) lives in cache-core. This file
//! never rejects anything (`validate.rs` did; a shape it rejected expands to the bare body) and
//! never calls into cache-core other than through those `__private` functions.
//!
//! The generated body of
//! `#[cached(key = "prod:<id>", ttl = 1800)] async fn get(&self, id: u64) -> Result<Option<Product>, DbError> { BODY }`
//! (paths abbreviated; all are absolute, `::cache_core::__private::..` and `::core::..`):
//!
//! ```text
//! static __CACHE_SITE: Site = Site::new(SiteSpec::Cached(CachedSpec {
//!     entry: EntrySpec { key: "prod:<id>", args: &["id"], tags: &[],
//!         policy: Some(PolicySpec { ttl: 1800, l1_ttl: None, stale: None, max_size: None }) },
//!     loads: LoadSpec { none_ttl: None, lease: true, refresh_ahead: None, .. },
//! }));
//! let __cache_handle = &self.cache;               // `&mut self`/`self`: a clone of the Cache
//! let __cache_cache = cache_of(__cache_handle);
//! let __cache_key = prepare(__cache_cache, &__CACHE_SITE, &[&(id) as &dyn KeyArg]);
//! cached(__cache_cache, __cache_key, |_| false, async {
//!     if let Some(__cache_ret) = None::<Result<Option<Product>, DbError>> { return __cache_ret; }
//!     BODY
//! }).await
//! ```
//!
//! The other shapes adapt the body's type to the loader's `Result<Option<T>, E>`:
//! - `Option<T>`: `match cached(.., async { Ok::<_, Infallible>(BODY_FUTURE.await) }).await
//!   { Ok(v) => v, Err(e) => match e {} }`;
//! - `T` and `Result<T, E>`: the body future is pinned on the stack and the loader polls it,
//!   keeping a copy of its output; an `Ok(None)` answer (a `None` stored under the same key by an
//!   `Option`-returning function) returns that copy, or runs the body now if it never completed.
//!
//! `#[cache_put]`: `let out = BODY_FUTURE.await; if success { put(cache, key, &value).await } out`.
//! `#[cache_evict]`: `evict(cache, key).await; BODY` with `before = true`, else
//! `let out = BODY_FUTURE.await; if out.is_ok() { evict(cache, key).await } out`.
//!
//! The key is prepared before the body runs, since the body may move the arguments. The body
//! becomes a non-`move` `async` block: it captures what it uses the way a closure does (fields of
//! `self` separately, moved values by value), so the body and the handle can coexist.
//!
//! Spans: template arguments are spanned on their template literal (a non-`Display` value is
//! reported there); the `cached`/`put` calls on the return type (a non-cacheable type is reported
//! there, once per missing trait); `unless` on its closure.
//!
//! With `refresh_ahead` or `soft_timeout_ms` the body runs in the background too, so `#[cached]`
//! calls `cached_refresh` with a loader that owns clones of `self` and the arguments, made only on
//! a miss or a refresh (`refresh.rs`).
//!
//! Each attribute's body is in the file named after it: `cached.rs` (and `refresh.rs`, its
//! loads in the background), `put.rs`, `evict.rs`. What every body starts with is `spec.rs` (the
//! site's static) and `prepare.rs` (the cache handle, the prepared key). This file wires them and
//! holds what they share: the generated names, the body as a future, the `unless` check.

mod cached;
mod evict;
mod prepare;
mod put;
mod refresh;
mod spec;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Type};

use crate::function::{Flavor, Function};
use crate::spans::respan;
use crate::validate::{Site, SiteKind};

/// Generated local names: hygienic (`mixed_site`), so the body can neither see nor shadow them.
struct Names {
    site: syn::Ident,
    handle: syn::Ident,
    cache: syn::Ident,
    key: syn::Ident,
    body: syn::Ident,
    loaded: syn::Ident,
    result: syn::Ident,
    out: syn::Ident,
    value: syn::Ident,
    error: syn::Ident,
    make: syn::Ident,
}

impl Names {
    fn new() -> Names {
        let span = Span::mixed_site();
        let name = |s: &str| format_ident!("__cache_{}", s, span = span);
        Names {
            site: format_ident!("__CACHE_SITE", span = span),
            handle: name("handle"),
            cache: name("cache"),
            key: name("key"),
            body: name("body"),
            loaded: name("loaded"),
            result: name("result"),
            out: name("out"),
            value: name("value"),
            error: name("error"),
            make: name("make"),
        }
    }
}

/// The function with its body replaced by the generated one.
pub(crate) fn expand(site: &Site, func: &Function) -> TokenStream {
    let names = Names::new();
    let site_static = spec::site_static(site, &names);
    let handle = prepare::cache_handle(site, &names);
    let key = prepare::prepare_key(site, &names);
    let run = match &site.kind {
        SiteKind::Cached(cached) => cached::run_cached(cached, func, &names),
        SiteKind::Put(put) => put::run_put(&put.entry, func, &names),
        SiteKind::Evict(evict) => evict::run_evict(evict, func, &names),
    };
    func.with_body(quote! {
        #site_static
        #handle
        #key
        #run
    })
}

/// `::cache_core::__private`, spanned at `span` (so that an expression built with it is spanned
/// there as a whole).
fn private(span: Span) -> TokenStream {
    quote_spanned!(span=> ::cache_core::__private)
}

/// The body as a future: `async { <fake return edge> <statements> }`, yielding the declared type.
pub(super) fn body_future(func: &Function) -> TokenStream {
    let Block { brace_token, stmts } = func.body();
    let edge = fake_return_edge(func);
    quote_spanned! {brace_token.span.join()=>
        async { #edge #(#stmts)* }
    }
}

/// An unreachable `return` of the declared type, spanned at the return type, so that the body's
/// type is inferred from the signature and mismatches are reported against it. It cannot panic:
/// the pattern never matches.
pub(super) fn fake_return_edge(func: &Function) -> TokenStream {
    let ty = &func.output.ty;
    if matches!(func.flavor, Flavor::AsyncTrait) || matches!(ty, Type::ImplTrait(_)) {
        // `#[async_trait]` already put the same edge in the body.
        return TokenStream::new();
    }
    quote_spanned! {ty.span()=>
        if let ::core::option::Option::Some(__cache_ret) = ::core::option::Option::None::<#ty> {
            #[allow(unreachable_code)]
            return __cache_ret;
        }
    }
}

/// Whether the value type is spelled `Arc<..>` (`Arc`, `std::sync::Arc`, ...). Such values go
/// through `cached_arc`/`put_arc`, which cache the function's `Arc` itself: a hit then costs one
/// reference count, not an `Arc` inside an `Arc`. (A type of another crate named `Arc` gets a
/// type error at the return type.)
pub(super) fn is_arc(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    path.qself.is_none() && path.path.segments.last().is_some_and(|s| {
        s.ident == "Arc"
            && matches!(&s.arguments, syn::PathArguments::AngleBracketed(a) if a.args.len() == 1)
    })
}

/// `unless` taking `&T`, checked against `T` on its own span: `(unless, check)` where
/// `check(unless, &value)` calls it. Calling through `check` (a function pointer whose type carries
/// no bound) keeps a closure of the wrong type to one error, at the closure.
fn unless_check(unless: &syn::Expr, t: &Type) -> TokenStream {
    let span = unless.span();
    let t = respan(t, span);
    quote_spanned! {span=>
        {
            fn __cache_unless<V: ?::core::marker::Sized, F: ::core::ops::FnOnce(&V) -> bool>(
                unless: F,
            ) -> (F, fn(F, &V) -> bool) {
                fn check<V: ?::core::marker::Sized, F: ::core::ops::FnOnce(&V) -> bool>(unless: F, v: &V) -> bool {
                    unless(v)
                }
                (unless, check::<V, F>)
            }
            __cache_unless::<#t, _>(#unless)
        }
    }
}

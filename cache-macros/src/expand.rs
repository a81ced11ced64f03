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
//! static __CACHE_SITE: Site = Site::new(SiteSpec {
//!     op: Op::Cached, key: Some("prod:<id>"), args: &["id"], ttl: Some(1800), l1_ttl: None,
//!     stale: None, none_ttl: None, lease: true, tags: &[], pattern: None, all: false,
//! });
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

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Type};

use crate::args::Seconds;
use crate::function::{Flavor, Function, ReceiverKind, Shape};
use crate::spans::{TypeSpan, respan};
use crate::validate::{
    CacheHandle, CachedSite, Entry, EvictSite, Policy, Site, SiteKind, Slot, Targets,
};

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
        }
    }
}

/// The function with its body replaced by the generated one.
pub(crate) fn expand(site: &Site, func: &Function) -> TokenStream {
    let names = Names::new();
    let site_static = site_static(&Spec::of(&site.kind), &site.slots, &names);
    let handle = cache_handle(site, &names);
    let key = prepare_key(site, &names);
    let run = match &site.kind {
        SiteKind::Cached(cached) => run_cached(cached, func, &names),
        SiteKind::Put(put) => run_put(&put.entry, func, &names),
        SiteKind::Evict(evict) => run_evict(evict, func, &names),
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

/// A site as cache-core's `SiteSpec` sees it: one flat struct for every attribute, where what an
/// attribute does not have is `None` (an evict site has no TTL).
struct Spec<'a> {
    op: TokenStream,
    key: Option<&'a syn::LitStr>,
    policy: Option<&'a Policy>,
    none_ttl: Option<&'a Seconds>,
    tags: &'a [syn::LitStr],
    pattern: Option<&'a syn::LitStr>,
    all: bool,
}

impl<'a> Spec<'a> {
    fn of(kind: &'a SiteKind) -> Spec<'a> {
        let entry = |op, entry: &'a Entry, none_ttl| Spec {
            op,
            key: Some(&entry.key),
            policy: entry.policy.as_ref(),
            none_ttl,
            tags: &entry.tags,
            pattern: None,
            all: false,
        };
        match kind {
            SiteKind::Cached(c) => entry(quote!(Cached), &c.entry, c.none_ttl.as_ref()),
            SiteKind::Put(p) => entry(quote!(Put), &p.entry, None),
            SiteKind::Evict(e) => {
                let (key, tags, pattern, all) = match &e.targets {
                    Targets::All => (None, &[][..], None, true),
                    Targets::Entries { key, tags, pattern } => {
                        (key.as_ref(), &tags[..], pattern.as_ref(), false)
                    }
                };
                Spec {
                    op: quote!(Evict),
                    key,
                    policy: None,
                    none_ttl: None,
                    tags,
                    pattern,
                    all,
                }
            }
        }
    }
}

/// `Some(<literal>)` or `None`.
fn opt_str(lit: Option<&syn::LitStr>) -> TokenStream {
    match lit {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    }
}

/// `Some(<seconds>)` or `None`; a const expression is spanned on itself, so that a type error in it
/// is reported there.
fn opt_secs(seconds: Option<&Seconds>) -> TokenStream {
    match seconds {
        Some(Seconds::Literal(lit, _)) => quote!(::core::option::Option::Some(#lit)),
        Some(Seconds::Const(expr)) => {
            quote_spanned!(expr.span()=> ::core::option::Option::Some(#expr))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// `static __CACHE_SITE: Site = Site::new(SiteSpec { .. });`
fn site_static(spec: &Spec<'_>, slots: &[Slot], names: &Names) -> TokenStream {
    let p = private(Span::call_site());
    let op = &spec.op;
    let key = opt_str(spec.key);
    let pattern = opt_str(spec.pattern);
    let specs = slots.iter().map(|s| &s.spec);
    let policy = spec.policy;
    let ttl = opt_secs(policy.map(|p| &p.ttl));
    let l1_ttl = opt_secs(policy.and_then(|p| p.l1_ttl.as_ref()));
    let stale = opt_secs(policy.and_then(|p| p.stale.as_ref()));
    let none_ttl = opt_secs(spec.none_ttl);
    let lease = policy.is_none_or(|p| p.lease);
    let max_size = match policy.and_then(|p| p.max_size.as_ref()) {
        Some(size) => {
            let lit = &size.lit;
            quote!(::core::option::Option::Some(#lit))
        }
        None => quote!(::core::option::Option::None),
    };
    let tags = spec.tags;
    let all = spec.all;
    let name = &names.site;
    quote! {
        static #name: #p::Site = #p::Site::new(#p::SiteSpec {
            op: #p::Op::#op,
            key: #key,
            args: &[#(#specs),*],
            ttl: #ttl,
            l1_ttl: #l1_ttl,
            stale: #stale,
            none_ttl: #none_ttl,
            lease: #lease,
            max_size: #max_size,
            tags: &[#(#tags),*],
            pattern: #pattern,
            all: #all,
        });
    }
}

/// `let __cache = cache_of(&(<handle>));`
///
/// Through `&mut self` or an owned `self`, the default handle is a clone of the `Cache` (one
/// reference-count increment): the body may need `self` exclusively (`&mut self` methods,
/// `#[async_trait]`'s `let __self = self;`) while the cache is in use. Through `&self` it is a
/// borrow of `self.cache`.
fn cache_handle(site: &Site, names: &Names) -> TokenStream {
    let p = private(Span::call_site());
    let Names { handle, cache, .. } = names;
    match &site.cache {
        CacheHandle::Expr(expr) => quote_spanned! {expr.span()=>
            let #handle = &(#expr);
            let #cache = #p::cache_of(#handle);
        },
        CacheHandle::SelfField(receiver) => {
            let span = receiver.span;
            let this = syn::Ident::new("self", span);
            let field = syn::Ident::new("cache", span);
            match receiver.kind {
                ReceiverKind::Shared => quote_spanned! {span=>
                    let #handle = &#this.#field;
                    let #cache = #p::cache_of(#handle);
                },
                ReceiverKind::Mut | ReceiverKind::Owned => quote_spanned! {span=>
                    let #handle: #p::Cache = ::core::clone::Clone::clone(#p::cache_of(&#this.#field));
                    let #cache = &#handle;
                },
            }
        }
    }
}

/// `let __cache_key = prepare(__cache, &__CACHE_SITE, &[..]);`
///
/// Each argument is spanned on the template that names it, so that a value that is not `Display`
/// (or, for `:hash`, not `Serialize`) is reported there. A `:hash` argument goes through a generic
/// function whose only bound is `Serialize`: the error then names the missing `Serialize`, once.
fn prepare_key(site: &Site, names: &Names) -> TokenStream {
    let p = private(Span::call_site());
    let Names {
        site: site_name,
        cache,
        key,
        ..
    } = names;
    let hashed = site.slots.iter().any(|s| s.hash).then(|| {
        quote! {
            fn __cache_hashed<'a, T: #p::serde::Serialize + ?::core::marker::Sized>(
                hashed: &'a #p::Hashed<'a, T>,
            ) -> &'a (dyn #p::KeyArg + 'a) {
                hashed
            }
        }
    });
    let args = site.slots.iter().map(|slot| {
        let place = slot_place(slot);
        let p = private(slot.span);
        if slot.hash {
            quote_spanned!(slot.span=> __cache_hashed(&#p::Hashed(&#place)))
        } else if let Some(refs) = slot.integer {
            let derefs = (0..refs).map(|_| quote!(*));
            quote_spanned!(slot.span=> &#p::Int(#(#derefs)* #place) as &dyn #p::KeyArg)
        } else {
            quote_spanned!(slot.span=> &#place as &dyn #p::KeyArg)
        }
    });
    quote! {
        #hashed
        let #key = #p::prepare(#cache, &#site_name, &[#(#args),*]);
    }
}

/// `(product.id)`
fn slot_place(slot: &Slot) -> TokenStream {
    let root = &slot.root;
    let fields = &slot.fields;
    quote_spanned!(slot.span=> (#root #(.#fields)*))
}

/// The body as a future: `async { <fake return edge> <statements> }`, yielding the declared type.
fn body_future(func: &Function) -> TokenStream {
    let Block { brace_token, stmts } = func.body();
    let edge = fake_return_edge(func);
    quote_spanned! {brace_token.span.join()=>
        async { #edge #(#stmts)* }
    }
}

/// An unreachable `return` of the declared type, spanned at the return type, so that the body's
/// type is inferred from the signature and mismatches are reported against it. It cannot panic:
/// the pattern never matches.
fn fake_return_edge(func: &Function) -> TokenStream {
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

/// `#[cached]`: the body becomes the loader of `cached`.
fn run_cached(site: &CachedSite, func: &Function, names: &Names) -> TokenStream {
    let shape = &func.output.shape;
    let call = CachedCall {
        names,
        at: TypeSpan::of(&func.output.ty),
        function: match shape.value() {
            Some(t) if is_arc(t) => "cached_arc",
            _ => "cached",
        },
        unless: site.entry.unless.as_ref(),
        future: body_future(func),
    };
    match shape {
        Shape::ResultOption(..) => call.result_option(),
        Shape::Option(_) => call.option(),
        Shape::Value(t) => call.value(t, false),
        Shape::Result(t, _) => call.value(t, true),
        // Rejected by validation.
        Shape::Unit => {
            let future = &call.future;
            quote!(#future.await)
        }
    }
}

/// A call of `cached` (or `cached_arc`) in the making: what the loader of every shape needs.
/// `cached` wants a loader yielding `Result<Option<T>, E>` and an `unless` taking `&Option<T>`;
/// each shape adapts the body to that.
struct CachedCall<'a> {
    names: &'a Names,
    at: TypeSpan,
    /// `cached`, or `cached_arc` for a value type spelled `Arc<..>`.
    function: &'static str,
    unless: Option<&'a syn::Expr>,
    /// The body, as a future yielding the declared type.
    future: TokenStream,
}

impl CachedCall<'_> {
    /// `cached(cache, key, unless, loader).await`, spanned at the return type.
    fn call(&self, unless: TokenStream, loader: TokenStream) -> TokenStream {
        let Names { cache, key, .. } = self.names;
        self.at
            .call_await(self.function, quote!(#cache, #key, #unless, #loader))
    }

    /// `unless` as given: it already takes `&Option<T>`.
    fn unless_of_option(&self) -> TokenStream {
        match self.unless {
            Some(unless) => quote!(#unless),
            None => quote!(|_| false),
        }
    }

    /// `Result<Option<T>, E>`: the body is the loader.
    fn result_option(&self) -> TokenStream {
        self.call(self.unless_of_option(), self.future.clone())
    }

    /// `Option<T>`: the body's value is wrapped in an `Ok` that cannot fail.
    fn option(&self) -> TokenStream {
        let Names { value, error, .. } = self.names;
        let future = &self.future;
        let call = self.call(
            self.unless_of_option(),
            quote!(async { ::core::result::Result::Ok::<_, ::core::convert::Infallible>(#future.await) }),
        );
        quote! {
            match #call {
                ::core::result::Result::Ok(#value) => #value,
                ::core::result::Result::Err(#error) => match #error {},
            }
        }
    }

    /// `T` or `Result<T, E>`. Such a function cannot return "nothing", but `cached` may still
    /// answer `Ok(None)`: a `None` stored under the same key by an `Option`-returning function,
    /// served fresh, stale (fail-safe), or shared with a concurrent load. So the loader keeps a
    /// copy of what the body produced; if the body never completed, it runs now, uncached. Every
    /// branch has an answer; none panics.
    fn value(&self, t: &Type, result: bool) -> TokenStream {
        let Names {
            body,
            loaded,
            result: answer,
            ..
        } = self.names;
        let (out, value, error) = self.loader_bindings();
        let (load, hit, failed) = self.keep_loaded(result);
        let future = &self.future;
        let call = self.call(
            self.unless_of_value(t),
            quote! {
                async {
                    let #out = ::core::pin::Pin::as_mut(&mut #body).await;
                    #load
                }
            },
        );
        quote! {
            let mut #body = ::core::pin::pin!(#future);
            let mut #loaded = ::core::option::Option::None;
            let #answer = #call;
            match #answer {
                ::core::result::Result::Ok(::core::option::Option::Some(#value)) => #hit,
                ::core::result::Result::Ok(::core::option::Option::None) => match #loaded {
                    ::core::option::Option::Some(#out) => #out,
                    ::core::option::Option::None => #body.await,
                },
                ::core::result::Result::Err(#error) => #failed,
            }
        }
    }

    /// The loader's bindings `(out, value, error)`, spanned at the return type too, so that a
    /// failed `Clone` of one (the copy the loader keeps) is reported there, once.
    fn loader_bindings(&self) -> (syn::Ident, syn::Ident, syn::Ident) {
        let Names {
            out, value, error, ..
        } = self.names;
        (
            self.at.locate(out),
            self.at.locate(value),
            self.at.locate(error),
        )
    }

    /// `unless` taking `&T`, adapted to the `&Option<T>` that `cached` passes.
    fn unless_of_value(&self, t: &Type) -> TokenStream {
        let Some(unless) = self.unless else {
            return quote!(|_| false);
        };
        let check = unless_check(unless, t);
        quote_spanned! {unless.span()=>
            {
                let (unless, check) = #check;
                move |v: &::core::option::Option<_>| {
                    ::core::option::Option::is_some_and(::core::option::Option::as_ref(v), |v| check(unless, v))
                }
            }
        }
    }

    /// `(load, hit, failed)`: the end of the loader, which keeps a copy of the body's output in
    /// `loaded`; the answer to a hit (`value`); the answer to an error (`error`).
    fn keep_loaded(&self, result: bool) -> (TokenStream, TokenStream, TokenStream) {
        let loaded = &self.names.loaded;
        let (out, value, error) = self.loader_bindings();
        let ok = quote!(::core::result::Result::Ok);
        let err = quote!(::core::result::Result::Err);
        let some = quote!(::core::option::Option::Some);
        if !result {
            let keep_value = self.at.keep(&out);
            return (
                quote! {
                    #loaded = #some(#keep_value);
                    #ok::<_, ::core::convert::Infallible>(#some(#out))
                },
                quote!(#value),
                quote!(match #error {}),
            );
        }
        let (keep_value, keep_error) = (self.at.keep(&value), self.at.keep(&error));
        (
            quote! {
                match #out {
                    #ok(#value) => {
                        #loaded = #some(#ok(#keep_value));
                        #ok(#some(#value))
                    }
                    #err(#error) => {
                        #loaded = #some(#err(#keep_error));
                        #err(#error)
                    }
                }
            },
            quote!(#ok(#value)),
            quote!(#err(#error)),
        )
    }
}

/// Whether the value type is spelled `Arc<..>` (`Arc`, `std::sync::Arc`, ...). Such values go
/// through `cached_arc`/`put_arc`, which cache the function's `Arc` itself: a hit then costs one
/// reference count, not an `Arc` inside an `Arc`. (A type of another crate named `Arc` gets a
/// type error at the return type.)
fn is_arc(ty: &Type) -> bool {
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

/// `#[cache_put]`: run the body, then write a successful value through.
fn run_put(entry: &Entry, func: &Function, names: &Names) -> TokenStream {
    let Names {
        cache,
        key,
        out,
        value,
        ..
    } = names;
    let shape = &func.output.shape;
    let future = body_future(func);
    let some = quote!(::core::option::Option::Some);
    let none = quote!(::core::option::Option::None);
    let ok = quote!(::core::result::Result::Ok);
    let Some(t) = shape.value() else {
        // Rejected by validation.
        return quote!(#future.await);
    };
    // A `let` of its own, so that no borrow of the whole result (which would need `E: Sync`) is
    // held across the write.
    let success = match shape {
        Shape::Option(_) => quote!(::core::option::Option::as_ref(&#out)),
        Shape::Result(..) => {
            quote!(::core::result::Result::ok(::core::result::Result::as_ref(&#out)))
        }
        Shape::ResultOption(..) => {
            quote!(match &#out { #ok(#some(#value)) => #some(#value), _ => #none })
        }
        Shape::Value(_) | Shape::Unit => quote!(#some(&#out)),
    };
    let put_fn = if is_arc(t) { "put_arc" } else { "put" };
    let put = TypeSpan::of(t).call_await(put_fn, quote!(#cache, #key, #value));
    let write = match &entry.unless {
        Some(unless) => {
            let check = unless_check(unless, t);
            quote! {
                let (unless, check) = #check;
                if !check(unless, #value) {
                    #put;
                }
            }
        }
        None => quote!(#put;),
    };
    quote! {
        let #out = #future.await;
        let #value = #success;
        if let #some(#value) = #value {
            #write
        }
        #out
    }
}

/// `#[cache_evict]`: invalidate before the body, or after it succeeded.
fn run_evict(site: &EvictSite, func: &Function, names: &Names) -> TokenStream {
    let p = private(Span::call_site());
    let Names {
        cache, key, out, ..
    } = names;
    if site.before {
        let Block { stmts, .. } = func.body();
        // The body in a block of its own: its items cannot clash with the generated ones (another
        // of these attributes on the same function expands inside it).
        return quote! {
            #p::evict(#cache, #key).await;
            { #(#stmts)* }
        };
    }
    let future = body_future(func);
    let evict = quote!(#p::evict(#cache, #key).await;);
    let evict = match func.output.shape {
        Shape::Result(..) | Shape::ResultOption(..) => quote! {
            if ::core::result::Result::is_ok(&#out) {
                #evict
            }
        },
        _ => evict,
    };
    quote! {
        let #out = #future.await;
        #evict
        #out
    }
}

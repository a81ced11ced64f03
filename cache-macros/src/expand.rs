//! Code generation. The generated code only arranges calls into `::cache_core::__private`; all
//! behaviour (rendering keys, single-flight, fail-safe, metrics, invalidation) lives in cache-core.
//!
//! Shape of the generated body of `#[cached(key = "prod:<id>", ttl = 1800)]
//! async fn get(&self, id: u64) -> Result<Option<Product>, DbError> { BODY }`:
//!
//! ```text
//! static __CACHE_SITE: Site = Site::new(SiteSpec { op: Op::Cached, key: Some("prod:<id>"), args: &["id"], .. });
//! assert_cacheable::<Product>();                          // spanned at `Product`
//! __cache_assert_error::<DbError>();                      // spanned at `DbError`
//! let __cache_handle = &(self.cache);
//! let __cache = cache_of(__cache_handle);
//! let __cache_key = prepare(__cache, &__CACHE_SITE, &[&(id) as &dyn KeyArg]);
//! cached(__cache, __cache_key, |_| false, async { FAKE_RETURN_EDGE; BODY }).await
//! ```
//!
//! The body becomes a non-`move` `async` block: it captures what it uses the way a closure does
//! (fields of `self` separately, moved values by value), so `&mut self` methods can mutate fields
//! while the cache handle borrows `self.cache`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Type};

use crate::args::{MacroKind, Seconds};
use crate::function::{Flavor, Function, ReceiverKind, Shape};
use crate::validate::{CacheHandle, Site, Slot};

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
    let site_static = site_static(site, &names);
    let checks = type_checks(site, func);
    let handle = cache_handle(site, &names);
    let key = prepare_key(site, &names);
    let run = match site.kind {
        MacroKind::Cached => run_cached(site, func, &names),
        MacroKind::Put => run_put(site, func, &names),
        MacroKind::Evict => run_evict(site, func, &names),
    };
    func.with_body(quote! {
        #site_static
        #checks
        #handle
        #key
        #run
    })
}

const PRIVATE: fn() -> TokenStream = || quote!(::cache_core::__private);

/// `static __CACHE_SITE: Site = Site::new(SiteSpec { .. });`
fn site_static(site: &Site, names: &Names) -> TokenStream {
    let p = PRIVATE();
    let op = match site.kind {
        MacroKind::Cached => quote!(Cached),
        MacroKind::Put => quote!(Put),
        MacroKind::Evict => quote!(Evict),
    };
    let opt_str = |lit: &Option<syn::LitStr>| match lit {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let opt_secs = |s: &Option<Seconds>| match s {
        Some(Seconds::Literal(_, n)) => quote!(::core::option::Option::Some(#n)),
        Some(Seconds::Const(expr)) => {
            quote_spanned!(expr.span()=> ::core::option::Option::Some(#expr))
        }
        None => quote!(::core::option::Option::None),
    };
    let key = opt_str(&site.key);
    let pattern = opt_str(&site.pattern);
    let specs = site.slots.iter().map(|s| &s.spec);
    let (ttl, l1_ttl, stale, none_ttl) = (
        opt_secs(&site.ttl),
        opt_secs(&site.l1_ttl),
        opt_secs(&site.stale),
        opt_secs(&site.none_ttl),
    );
    let tags = &site.tags;
    let all = site.all;
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
            tags: &[#(#tags),*],
            pattern: #pattern,
            all: #all,
        });
    }
}

/// Type checks spanned on the user's types, so that an uncacheable return type is reported at the
/// return type rather than somewhere inside the generated code.
fn type_checks(site: &Site, func: &Function) -> TokenStream {
    if site.kind == MacroKind::Evict {
        return TokenStream::new();
    }
    let p = PRIVATE();
    let shape = &func.output.shape;
    let value = shape.value().map(|t| {
        quote_spanned! {t.span()=>
            #p::assert_cacheable::<#t>();
        }
    });
    // `cached` shares one load's error with every concurrent caller, so it clones it.
    let error = shape.error().filter(|_| site.kind == MacroKind::Cached).map(|e| {
        quote_spanned! {e.span()=>
            {
                fn __cache_assert_error<E: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static>() {}
                __cache_assert_error::<#e>();
            }
        }
    });
    quote!(#value #error)
}

/// `let __cache = cache_of(&(<handle>));`
///
/// Through `&mut self` or an owned `self`, the default handle is a clone of the `Cache` (one
/// reference-count increment): the body may need `self` exclusively (`&mut self` methods,
/// `#[async_trait]`'s `let __self = self;`) while the cache is in use. Through `&self` it is a
/// borrow of `self.cache`.
fn cache_handle(site: &Site, names: &Names) -> TokenStream {
    let p = PRIVATE();
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

/// `let __cache_key = prepare(__cache, &__CACHE_SITE, &[..]);` (after the `:hash` checks).
fn prepare_key(site: &Site, names: &Names) -> TokenStream {
    let p = PRIVATE();
    let Names {
        site: site_name,
        cache,
        key,
        ..
    } = names;
    let hash_checks = site.slots.iter().filter(|s| s.hash).map(|slot| {
        let place = slot_place(slot);
        quote_spanned!(slot.span=> #p::assert_hashable(&#place);)
    });
    let args = site.slots.iter().map(|slot| {
        let place = slot_place(slot);
        if slot.hash {
            quote_spanned!(slot.span=> &#p::Hashed(&#place) as &dyn #p::KeyArg)
        } else {
            quote_spanned!(slot.span=> &#place as &dyn #p::KeyArg)
        }
    });
    quote! {
        #(#hash_checks)*
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
fn run_cached(site: &Site, func: &Function, names: &Names) -> TokenStream {
    let p = PRIVATE();
    let Names {
        cache,
        key,
        body,
        loaded,
        result,
        out,
        value,
        error,
        ..
    } = names;
    let shape = &func.output.shape;
    let future = body_future(func);
    let ok = quote!(::core::result::Result::Ok);
    let err = quote!(::core::result::Result::Err);
    let some = quote!(::core::option::Option::Some);
    let none = quote!(::core::option::Option::None);
    let infallible = quote!(::core::convert::Infallible);

    match shape {
        Shape::ResultOption(..) | Shape::Option(_) => {
            let unless = match &site.unless {
                Some(unless) => quote!(#unless),
                None => quote!(|_| false),
            };
            if let Shape::ResultOption(..) = shape {
                quote! {
                    #p::cached(#cache, #key, #unless, #future).await
                }
            } else {
                quote! {
                    match #p::cached(#cache, #key, #unless, async {
                        #ok::<_, #infallible>(#future.await)
                    }).await {
                        #ok(#value) => #value,
                        #err(#error) => match #error {},
                    }
                }
            }
        }
        // A `T` or `Result<T, E>` function cannot return "nothing". `cached` can still answer
        // `Ok(None)` (a `None` stored under the same key by an `Option`-returning function, or
        // shared by a concurrent load of one), so the loader keeps a copy of what the body produced,
        // and if the body never completed it runs now, uncached. No branch is left unhandled.
        Shape::Value(t) | Shape::Result(t, _) => {
            let unless = match &site.unless {
                Some(unless) => quote_spanned! {unless.span()=>
                    {
                        fn __cache_unless<V, F: ::core::ops::FnOnce(&V) -> bool + ::core::marker::Send>(
                            f: F,
                        ) -> impl ::core::ops::FnOnce(&::core::option::Option<V>) -> bool + ::core::marker::Send {
                            move |v: &::core::option::Option<V>| match v {
                                ::core::option::Option::Some(v) => f(v),
                                ::core::option::Option::None => false,
                            }
                        }
                        __cache_unless::<#t, _>(#unless)
                    }
                },
                None => quote!(|_| false),
            };
            let (loaded_ok, found) = if let Shape::Value(_) = shape {
                (
                    quote!(#ok::<_, #infallible>(#some(#out))),
                    quote!(#err(#error) => match #error {},),
                )
            } else {
                (
                    quote!(::core::result::Result::map(#out, #some)),
                    quote!(#err(#error) => #err(#error),),
                )
            };
            let hit = if let Shape::Value(_) = shape {
                quote!(#value)
            } else {
                quote!(#ok(#value))
            };
            quote! {
                let mut #body = ::core::pin::pin!(#future);
                let mut #loaded = #none;
                let #result = #p::cached(#cache, #key, #unless, async {
                    let #out = ::core::pin::Pin::as_mut(&mut #body).await;
                    #loaded = #some(::core::clone::Clone::clone(&#out));
                    #loaded_ok
                }).await;
                match #result {
                    #ok(#some(#value)) => #hit,
                    #ok(#none) => match #loaded {
                        #some(#out) => #out,
                        #none => #body.await,
                    },
                    #found
                }
            }
        }
        // Rejected by validation.
        Shape::Unit => quote!(#future.await),
    }
}

/// `#[cache_put]`: run the body, then write a successful value through.
fn run_put(site: &Site, func: &Function, names: &Names) -> TokenStream {
    let p = PRIVATE();
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
    // A `let` of its own, so that no borrow of the whole result (which needs `E: Sync`) is held
    // across the write.
    let success = match shape {
        Shape::Value(_) => quote!(#some(&#out)),
        Shape::Option(_) => quote!(::core::option::Option::as_ref(&#out)),
        Shape::Result(..) => {
            quote!(::core::result::Result::ok(::core::result::Result::as_ref(&#out)))
        }
        Shape::ResultOption(..) => {
            quote!(match &#out { #ok(#some(#value)) => #some(#value), _ => #none })
        }
        Shape::Unit => quote!(#none::<&()>),
    };
    let write = match (&site.unless, shape.value()) {
        (Some(unless), Some(t)) => quote_spanned! {unless.span()=>
            {
                fn __cache_unless<V: ?::core::marker::Sized, F: ::core::ops::FnOnce(&V) -> bool>(f: F) -> F { f }
                if !(__cache_unless::<#t, _>(#unless))(#value) {
                    #p::put(#cache, #key, #value).await;
                }
            }
        },
        _ => quote!(#p::put(#cache, #key, #value).await;),
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
fn run_evict(site: &Site, func: &Function, names: &Names) -> TokenStream {
    let p = PRIVATE();
    let Names {
        cache, key, out, ..
    } = names;
    if site.before {
        let Block { stmts, .. } = func.body();
        return quote! {
            #p::evict(#cache, #key).await;
            #(#stmts)*
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

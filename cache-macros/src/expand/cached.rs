//! `#[cached]` without background loads: the body, borrowing what it uses, becomes the loader of
//! `__private::cached` (or `cached_arc`), adapted to the loader's `Result<Option<T>, E>` by shape.
//! A site with `refresh_ahead` or `soft_timeout_ms` is handed to `refresh.rs`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use super::{Names, body_future, is_arc, unless_check};
use crate::function::{Function, Shape};
use crate::spans::TypeSpan;
use crate::validate::CachedSite;

/// `#[cached]`: the body becomes the loader of `cached`.
pub(super) fn run_cached(site: &CachedSite, func: &Function, names: &Names) -> TokenStream {
    if let Some(background) = site.loads.as_ref().and_then(|l| l.background) {
        return super::refresh::run_refresh(site, background, func, names);
    }
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

    fn unless_of_option(&self) -> TokenStream {
        unless_of_option(self.unless)
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

    fn unless_of_value(&self, t: &Type) -> TokenStream {
        unless_of_value(self.unless, t)
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

/// `unless` as given: it already takes `&Option<T>`.
pub(super) fn unless_of_option(unless: Option<&syn::Expr>) -> TokenStream {
    match unless {
        Some(unless) => quote!(#unless),
        None => quote!(|_| false),
    }
}

/// `unless` taking `&T`, adapted to the `&Option<T>` that `cached` passes.
pub(super) fn unless_of_value(unless: Option<&syn::Expr>, t: &Type) -> TokenStream {
    let Some(unless) = unless else {
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

//! `#[cached]` with `refresh_ahead` or `soft_timeout_ms`: the body may run in the background (a
//! refresh-ahead, or a load that outlives a caller served stale), so its loader owns what it uses.
//!
//! The generated body (paths abbreviated):
//!
//! ```text
//! let __cache_make = || {                      // called only on a miss or a refresh
//!     let __cache_this = owned_self(self);     // a clone of `*self`
//!     let id = owned_arg(&id);                 // a clone of each argument
//!     let query = owned_ref(query);            // `&Q` parameters: `Q::to_owned`
//!     async move {
//!         let __cache_self = &__cache_this;
//!         let query = <_ as Borrow<Q>>::borrow(&query);
//!         <fake return edge> BODY              // `self` in BODY reads `__cache_self`
//!     }
//! };
//! match cached_refresh(cache, key, || (<__cache_make() as a loader>, <unless>)).await { .. }
//! ```
//!
//! The clones are spanned on the option, so that a receiver or an argument that cannot be cloned
//! into the background (`Clone + Send + Sync + 'static` for `Self`, `Clone + Send + 'static` for an
//! argument, `ToOwned` for a borrowed one) is reported there. Owns that closure, the renaming of
//! `self` in the body, and the adaptation of each return shape; never validates.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::{FnArg, Pat, Type};

use super::cached::{unless_of_option, unless_of_value};
use super::{Names, fake_return_edge, is_arc, private};
use crate::function::{Function, Shape};
use crate::spans::TypeSpan;
use crate::validate::CachedSite;

/// `#[cached]` through `cached_refresh`; `kw` is the option that asked for it.
pub(super) fn run_refresh(
    site: &CachedSite,
    kw: Span,
    func: &Function,
    names: &Names,
) -> TokenStream {
    let Names {
        cache,
        key,
        make,
        value,
        error,
        ..
    } = names;
    let make_body = make_body(kw, func, names);
    let (ok, err) = (
        quote!(::core::result::Result::Ok),
        quote!(::core::result::Result::Err),
    );
    let (some, none) = (
        quote!(::core::option::Option::Some),
        quote!(::core::option::Option::None),
    );
    let infallible = quote!(::core::convert::Infallible);
    let unless = site.entry.unless.as_ref();
    let shape = &func.output.shape;
    let (loader, unless, answer) = match shape {
        Shape::ResultOption(..) => (quote!(#make()), unless_of_option(unless), quote!(#value)),
        Shape::Option(_) => (
            quote!({ let f = #make(); async move { #ok::<_, #infallible>(f.await) } }),
            unless_of_option(unless),
            quote!(match #value { #ok(#value) => #value, #err(#error) => match #error {} }),
        ),
        Shape::Value(t) => (
            quote!({ let f = #make(); async move { #ok::<_, #infallible>(#some(f.await)) } }),
            unless_of_value(unless, t),
            quote! {
                match #value {
                    #ok(#some(#value)) => #value,
                    #ok(#none) => #make().await,
                    #err(#error) => match #error {},
                }
            },
        ),
        Shape::Result(t, _) => (
            quote!({ let f = #make(); async move { ::core::result::Result::map(f.await, #some) } }),
            unless_of_value(unless, t),
            quote! {
                match #value {
                    #ok(#some(#value)) => #ok(#value),
                    #ok(#none) => #make().await,
                    #err(#error) => #err(#error),
                }
            },
        ),
        // Rejected by validation.
        Shape::Unit => return quote!(#make_body #make().await),
    };
    let function = match shape.value() {
        Some(t) if is_arc(t) => "cached_refresh_arc",
        _ => "cached_refresh",
    };
    let call = TypeSpan::of(&func.output.ty)
        .call_await(function, quote!(#cache, #key, || (#loader, #unless)));
    quote! {
        #make_body
        let #value = #call;
        #answer
    }
}

/// `let __cache_make = || { <owned copies>; async move { <borrows>; BODY } };`
fn make_body(kw: Span, func: &Function, names: &Names) -> TokenStream {
    let p = private(kw);
    let make = &names.make;
    let this = format_ident!("__cache_this", span = Span::mixed_site());
    let renamed = format_ident!("__cache_self", span = Span::mixed_site());
    let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
    if func.receiver.is_some() {
        let receiver = syn::Ident::new("self", kw);
        owned.push(quote_spanned!(kw=> let #this = #p::owned_self(#receiver);));
        borrowed.push(quote!(let #renamed = &#this;));
    }
    for input in &func.sig().inputs {
        let FnArg::Typed(arg) = input else { continue };
        match (&*arg.pat, &*arg.ty) {
            (Pat::Ident(pat), Type::Reference(r))
                if pat.by_ref.is_none() && pat.subpat.is_none() =>
            {
                let (name, elem) = (&pat.ident, &r.elem);
                let arg = at(name, kw);
                owned.push(quote_spanned!(kw=> let #name = #p::owned_ref(#arg);));
                borrowed.push(
                    quote!(let #name = <_ as ::core::borrow::Borrow<#elem>>::borrow(&#name);),
                );
            }
            (Pat::Ident(pat), _) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                let (name, mutability) = (&pat.ident, &pat.mutability);
                let arg = at(name, kw);
                owned.push(quote_spanned!(kw=> #[allow(unused_mut)] let #mutability #name = #p::owned_arg(&#arg);));
            }
            _ => {
                let mut bound = Vec::new();
                crate::function::bindings(&arg.pat, &mut bound);
                for name in bound {
                    let arg = at(&name, kw);
                    owned.push(quote_spanned!(kw=> #[allow(unused_mut)] let mut #name = #p::owned_arg(&#arg);));
                }
            }
        }
    }
    let edge = fake_return_edge(func);
    let stmts = &func.body().stmts;
    let body = rename_self(quote!(#(#stmts)*), &renamed);
    quote! {
        #[allow(unused_variables)]
        let #make = || {
            #(#owned)*
            async move {
                #(#borrowed)*
                #edge
                #body
            }
        };
    }
}

/// `name`, located at `span` (the option), where an error about cloning it is reported.
fn at(name: &syn::Ident, span: Span) -> syn::Ident {
    let mut name = name.clone();
    name.set_span(span);
    name
}

/// `tokens` with every `self` (but `self::` paths) reading `to`, located where `self` was.
/// Nested `impl`, `trait` and `mod` blocks, whose `self` is another, are left as they are.
fn rename_self(tokens: TokenStream, to: &syn::Ident) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        match tt {
            TokenTree::Ident(ident) if ident == "impl" || ident == "trait" || ident == "mod" => {
                out.push(TokenTree::Ident(ident));
                // Up to and including the item's block, unchanged.
                for tt in iter.by_ref() {
                    let block =
                        matches!(&tt, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace);
                    out.push(tt);
                    if block {
                        break;
                    }
                }
            }
            TokenTree::Ident(ident) if ident == "self" => {
                let path = matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if path {
                    out.push(TokenTree::Ident(ident));
                } else {
                    let span = ident.span().resolved_at(to.span());
                    out.push(TokenTree::Ident(syn::Ident::new(&to.to_string(), span)));
                }
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename_self(group.stream(), to));
                renamed.set_span(group.span());
                out.push(TokenTree::Group(renamed));
            }
            tt => out.push(tt),
        }
    }
    out.into_iter().collect()
}

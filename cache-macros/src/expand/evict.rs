//! `#[cache_evict]`: `__private::evict` before the body (`before = true`), or after it succeeded.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Block;

use super::{Names, body_future, private};
use crate::function::{Function, Shape};
use crate::validate::EvictSite;

/// `#[cache_evict]`: invalidate before the body, or after it succeeded.
pub(super) fn run_evict(site: &EvictSite, func: &Function, names: &Names) -> TokenStream {
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

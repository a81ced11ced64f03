//! `#[cache_put]`: the body runs, then its successful value is written through to both tiers
//! with `__private::put` (or `put_arc`), unless `unless` vetoes it.

use proc_macro2::TokenStream;
use quote::quote;

use super::{Names, body_future, is_arc, unless_check};
use crate::function::{Function, Shape};
use crate::spans::TypeSpan;
use crate::validate::Entry;

/// `#[cache_put]`: run the body, then write a successful value through.
pub(super) fn run_put(entry: &Entry, func: &Function, names: &Names) -> TokenStream {
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

//! What every generated body starts with, after the site's static: the cache handle and the
//! call's prepared key (`__private::prepare`, its arguments spanned on the templates naming them).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{Names, private};
use crate::function::ReceiverKind;
use crate::validate::{CacheHandle, Site, Slot};

/// `let __cache = cache_of(&(<handle>));`
///
/// Through `&mut self` or an owned `self`, the default handle is a clone of the `Cache` (one
/// reference-count increment): the body may need `self` exclusively (`&mut self` methods,
/// `#[async_trait]`'s `let __self = self;`) while the cache is in use. Through `&self` it is a
/// borrow of `self.cache`.
pub(super) fn cache_handle(site: &Site, names: &Names) -> TokenStream {
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
pub(super) fn prepare_key(site: &Site, names: &Names) -> TokenStream {
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

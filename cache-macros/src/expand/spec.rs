//! The site's static description: `static __CACHE_SITE: Site = Site::new(SiteSpec::..(..));`,
//! cache-core's `SiteSpec` of the attribute's kind (`CachedSpec`, `PutSpec`, `EvictSpec`), built
//! from the validated [`Site`]. Owns only that static; the calls that use it are the other files'.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{Names, private};
use crate::args::{Millis, Seconds};
use crate::validate::{CachedSite, Entry, EvictSite, Loads, Site, SiteKind, Targets};

/// `static __CACHE_SITE: Site = Site::new(SiteSpec::..);`
pub(super) fn site_static(site: &Site, names: &Names) -> TokenStream {
    let p = private(Span::call_site());
    let args = site.slots.iter().map(|s| &s.spec);
    let args = quote!(&[#(#args),*]);
    let spec = match &site.kind {
        SiteKind::Cached(cached) => cached_spec(cached, &args),
        SiteKind::Put(put) => {
            let entry = entry_spec(&put.entry, &args);
            quote!(#p::SiteSpec::Put(#p::PutSpec { entry: #entry }))
        }
        SiteKind::Evict(evict) => evict_spec(evict, &args),
    };
    let name = &names.site;
    quote! {
        static #name: #p::Site = #p::Site::new(#spec);
    }
}

/// `SiteSpec::Cached(CachedSpec { entry, loads })`
fn cached_spec(cached: &CachedSite, args: &TokenStream) -> TokenStream {
    let p = private(Span::call_site());
    let entry = entry_spec(&cached.entry, args);
    let loads = match &cached.loads {
        None => quote!(#p::LoadSpec::DEFAULT),
        Some(loads) => load_spec(loads),
    };
    quote!(#p::SiteSpec::Cached(#p::CachedSpec { entry: #entry, loads: #loads }))
}

/// `LoadSpec { none_ttl, lease, refresh_ahead, soft_timeout_ms, hard_timeout_ms }`
fn load_spec(loads: &Loads) -> TokenStream {
    let p = private(Span::call_site());
    let none_ttl = opt_secs(loads.none_ttl.as_ref());
    let lease = loads.lease;
    let refresh_ahead = match &loads.refresh_ahead {
        Some(fraction) => {
            let lit = &fraction.lit;
            quote!(::core::option::Option::Some(#lit))
        }
        None => quote!(::core::option::Option::None),
    };
    let soft = opt_millis(loads.soft_timeout.as_ref());
    let hard = opt_millis(loads.hard_timeout.as_ref());
    quote! {
        #p::LoadSpec {
            none_ttl: #none_ttl,
            lease: #lease,
            refresh_ahead: #refresh_ahead,
            soft_timeout_ms: #soft,
            hard_timeout_ms: #hard,
        }
    }
}

/// `EntrySpec { key, args, tags, policy }`
fn entry_spec(entry: &Entry, args: &TokenStream) -> TokenStream {
    let p = private(Span::call_site());
    let key = &entry.key;
    let tags = &entry.tags;
    let policy = match &entry.policy {
        None => quote!(::core::option::Option::None),
        Some(policy) => {
            let ttl = secs(&policy.ttl);
            let l1_ttl = opt_secs(policy.l1_ttl.as_ref());
            let stale = opt_secs(policy.stale.as_ref());
            let max_size = match &policy.max_size {
                Some(size) => {
                    let lit = &size.lit;
                    quote!(::core::option::Option::Some(#lit))
                }
                None => quote!(::core::option::Option::None),
            };
            quote! {
                ::core::option::Option::Some(#p::PolicySpec {
                    ttl: #ttl,
                    l1_ttl: #l1_ttl,
                    stale: #stale,
                    max_size: #max_size,
                })
            }
        }
    };
    quote! {
        #p::EntrySpec {
            key: #key,
            args: #args,
            tags: &[#(#tags),*],
            policy: #policy,
        }
    }
}

/// `SiteSpec::Evict(EvictSpec { args, targets })`
fn evict_spec(evict: &EvictSite, args: &TokenStream) -> TokenStream {
    let p = private(Span::call_site());
    let targets = match &evict.targets {
        Targets::All => quote!(#p::EvictTargets::All),
        Targets::Entries { key, tags, pattern } => {
            let key = opt_str(key.as_ref());
            let pattern = opt_str(pattern.as_ref());
            quote! {
                #p::EvictTargets::Entries { key: #key, tags: &[#(#tags),*], pattern: #pattern }
            }
        }
    };
    quote!(#p::SiteSpec::Evict(#p::EvictSpec { args: #args, targets: #targets }))
}

/// `Some(<literal>)` or `None`.
fn opt_str(lit: Option<&syn::LitStr>) -> TokenStream {
    match lit {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    }
}

/// A number of seconds; a const expression is spanned on itself, so that a type error in it is
/// reported there.
fn secs(seconds: &Seconds) -> TokenStream {
    match seconds {
        Seconds::Literal(lit, _) => quote!(#lit),
        Seconds::Const(expr) => quote_spanned!(expr.span()=> #expr),
    }
}

/// `Some(<seconds>)` or `None`.
fn opt_secs(seconds: Option<&Seconds>) -> TokenStream {
    match seconds {
        Some(seconds) => {
            let secs = secs(seconds);
            quote!(::core::option::Option::Some(#secs))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// `Some(<milliseconds>)` or `None`.
fn opt_millis(millis: Option<&Millis>) -> TokenStream {
    opt_secs(millis.map(|m| &m.0))
}

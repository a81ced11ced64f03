//! Attribute macros for cache-core. Use them through `cache_core::{cached, cache_put, cache_evict}`.

#![forbid(unsafe_code)]

mod args;
mod expand;
mod function;
#[allow(dead_code)]
#[path = "../../cache-core/src/key/template.rs"]
mod template;
mod validate;

use proc_macro::TokenStream;
use syn::parse::Parser;

use crate::args::{Args, MacroKind};
use crate::function::Function;

#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(MacroKind::Cached, args, item)
}

#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(MacroKind::Put, args, item)
}

#[proc_macro_attribute]
pub fn cache_evict(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(MacroKind::Evict, args, item)
}

/// Parse, validate, expand; on error, the errors followed by the function unchanged (so that the
/// rest of the crate still type-checks against it and no unrelated errors follow).
fn entry(kind: MacroKind, args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let result = (|input: syn::parse::ParseStream<'_>| Args::parse(input, kind))
        .parse(args)
        .and_then(|args| {
            let func = Function::parse(item.clone(), kind)?;
            let site = validate::validate(kind, args, &func)?;
            Ok(expand::expand(&site, &func))
        });
    match result {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(item);
            tokens.into()
        }
    }
}

//! Attribute macros for `cache-core`: [`macro@cached`],
//! [`macro@cache_put`] and [`macro@cache_evict`]. Use them through `cache_core`:
//! `use cache_core::{cached, cache_put, cache_evict, Cache};`.
//!
//! The macros only arrange calls: rendering keys, the two tiers, single-flight loading,
//! fail-safe, statistics and invalidation all live in cache-core. Each attribute validates its
//! options and templates at compile time, with errors spanned on the mistake; none panics.
//!
//! # Key and tag templates
//!
//! A template is text with placeholders naming the function's parameters:
//!
//! | placeholder          | renders                                                          |
//! |----------------------|------------------------------------------------------------------|
//! | `<id>`               | the parameter with [`Display`](std::fmt::Display)                |
//! | `<product.id>`       | a field (or a field of a field) of a parameter                    |
//! | `<self.tenant>`      | a field of `self`                                                |
//! | `<query:hash>`       | the MD5 of the parameter's serialized form (needs `Serialize`)    |
//!
//! Values are escaped by cache-core, so a value can never contain the `:` delimiter or a glob
//! character. Placeholders must be separated by a delimiter (`<a>:<b>`, not `<a><b>`). Keys and
//! tags may not contain glob characters; `pattern` (of `#[cache_evict]`) may.
//!
//! # Return types
//!
//! The shape is read from the signature, by the last path segment: `T`, `Option<T>`,
//! `Result<T, E>` and `Result<Option<T>, E>`. `T` must be
//! `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`. `Err` is never cached.
//!
//! - **Type aliases are plain values.** `type DbResult<T> = Result<T, DbError>` is not seen as a
//!   `Result`: `-> DbResult<Product>` caches the whole `Result`, errors included (and needs
//!   `DbError: Serialize`); `#[cache_evict]` then evicts even after an error. Spell out
//!   `Result<T, E>` and `Option<T>`. A one-parameter `Result<T>` (like `io::Result`) is rejected.
//! - **`#[cached]` needs `E: Clone + Send + Sync + 'static`**: concurrent callers of one key share
//!   one load, and so one error. Wrap a non-`Clone` error in an `Arc`.
//! - **Return `Arc<T>` for the fastest hits.** A function returning an owned `T` clones it out of
//!   the cache on every hit (for a struct of strings and maps, that clone costs more than the
//!   lookup). A value type spelled `Arc<T>` is cached as the `Arc` itself: a hit is one reference
//!   count, and the entries are shared with the sites of the same pattern that return `T`.
//!
//! # The cache handle
//!
//! By default the cache is `self.cache`, a `Cache` or an `Arc<Cache>` field. Elsewhere name it
//! with `cache = <expr>`, any expression whose value (or a reference to it) is a `Cache`,
//! `Arc<Cache>` or a reference to one: `cache = self.inner.cache`, `cache = self.cache()`,
//! `cache = cache` (a parameter), `cache = &*CACHE` (a `LazyLock`). Functions without `self`
//! must say `cache = ..`.
//!
//! Through `&mut self` (or an owned `self`) the default handle is a clone of the `Cache` (an
//! `Arc` increment), so that the body may use `self` freely. Through `&self` it is borrowed. A
//! `cache = <expr>` that borrows `self` in a `&mut self` method conflicts with a body that needs
//! `self` exclusively; write `cache = self.cache.clone()` there.
//!
//! # Where the attributes go
//!
//! On any `async fn` with a body: inherent methods (`&self`, `&mut self`, `self`), free and
//! generic functions, trait methods with a native `async fn` (including default methods, with
//! `cache = self.some_getter()`), and methods of an `#[async_trait]` impl: `#[async_trait]` runs
//! first and turns the method into `fn ..(..) -> Pin<Box<dyn Future<..>>> { Box::pin(async move
//! { .. }) }`, which the attributes recognise and work inside.
//!
//! The future stays `Send` when the body's is (`#[cached]` requires it: its loader may be shared
//! by concurrent callers). The key is rendered from the arguments before the body runs (the body
//! may move them); the body is the same code, in an `async` block, so `?` and `return` work as
//! written. Attributes can be stacked (`#[cache_put(..)] #[cache_evict(..)]`): each wraps the
//! other.
//!
//! # Durations
//!
//! `ttl`, `l1_ttl`, `stale` and `none_ttl` are whole seconds, `soft_timeout_ms` and
//! `hard_timeout_ms` whole milliseconds: an integer literal, or a const expression of type `u64`
//! (`ttl = 30 * 60`, `ttl = PRODUCT_TTL`). The expression initialises a
//! `static`, so it cannot mention `Self` or generic parameters. Without `ttl`, the policy
//! registered for the key template with `Cache::register` applies (or the cache's default TTL,
//! with a warning); the other durations, `lease`, `refresh_ahead` and `max_size` then may not be
//! given. `refresh_ahead` is a fraction of the TTL, a float literal strictly between 0 and 1.

#![forbid(unsafe_code)]

// Parse, validate, expand (thiserror's shape): `args.rs` parses the options (one table of them),
// `function.rs` the annotated function; `validate.rs` checks them together and yields one typed
// site per attribute; `expand/` generates the calls into `cache_core::__private`, with
// `spans.rs` placing type errors on the user's code. `suggest.rs` spells "did you mean". Key
// templates are parsed by the `cache-template` crate, the very parser cache-core uses. This file
// only wires the three steps together and turns an error into `compile_error!`; it never panics.

mod args;
mod expand;
mod function;
mod spans;
mod suggest;
mod validate;

use proc_macro::TokenStream;
use syn::parse::Parser;

use crate::args::{Args, MacroKind};
use crate::function::Function;

/// Caches the result of an `async fn` in both tiers: the body becomes the loader of cache-core's
/// `get_or_load` (one load per key at a time across concurrent callers, fail-safe, statistics),
/// or of `get_or_refresh` with `refresh_ahead` or `soft_timeout_ms`.
///
/// # Options
///
/// | option                | meaning                                                             |
/// |-----------------------|---------------------------------------------------------------------|
/// | `key = "prod:<id>"`   | **required**: the key template                                      |
/// | `ttl = 1800`          | L2 lifetime in seconds (default: the registered policy)              |
/// | `l1_ttl = 60`         | in-process lifetime, at most `ttl` (default: `ttl / 2`, at most 60 s) |
/// | `stale = 300`         | fail-safe window: serve an expired value this long if loading fails |
/// | `none_ttl = 30`       | cache a `None` result this long (`Option` returns; default: not)    |
/// | `lease = false`       | no fleet lease on a miss: every instance may load (default: one loads while the others wait; needs `ttl`) |
/// | `refresh_ahead = 0.8` | a hit in the last 20% of the entry's TTL returns at once and reloads it in the background, once in the fleet (needs `ttl`; see below) |
/// | `soft_timeout_ms = 50` | a load holding a stale value that runs longer answers stale and fills the cache in the background (needs `ttl`, `stale`; see below) |
/// | `hard_timeout_ms = 2000` | a load holding a stale value that runs longer is abandoned for the stale value (needs `ttl`, `stale`; longer than `soft_timeout_ms`) |
/// | `max_size = 65536`    | largest encoded value cached, bytes (larger: served, not cached; default: the cache's `max_value_size`, 1 MiB) |
/// | `tags = ["search", "cat:<category_id>"]` | tag templates, for `Cache::invalidate_tag` and `#[cache_evict(tags = ..)]` |
/// | `cache = <expr>`      | the cache handle (default `self.cache`)                             |
/// | `unless = <closure>`  | `true` means "do not cache this value"                              |
///
/// `unless` gets a reference to the successful value: `&T` for `T` and `Result<T, E>` functions,
/// `&Option<T>` for `Option<T>` and `Result<Option<T>, E>` functions. The value is still returned.
///
/// # Loads in the background
///
/// With `refresh_ahead` or `soft_timeout_ms` the body may run on a task of its own (cache-core's
/// `Cache::get_or_refresh`), so it runs from copies of what it uses: a clone of `self` (the method
/// takes `&self`, and `Self: Clone + Send + Sync + 'static`: a repository of `Arc`s and pools
/// clones cheaply), a clone of each argument passed by value (`Clone + Send + 'static`) and an
/// owned copy of each one passed by reference (`ToOwned`: `&str` becomes a `String`, `&T` a
/// clone), which the body borrows back. The copies are made on a miss or a due refresh, never on a
/// hit. A type that cannot be copied so is a compile error at the option; `&mut self`, `self` by
/// value, `&mut` arguments and methods rewritten by `#[async_trait]` are rejected there. `unless`
/// must then be `Send + 'static` too. `hard_timeout_ms` alone drops the load's future and needs no
/// copies.
///
/// # Example
///
/// ```
/// use cache_core::{cached, Cache};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Product { id: u64, name: String, draft: bool }
/// #[derive(Clone, Serialize, Deserialize)]
/// struct SearchQuery { text: String, page: u32 }
/// #[derive(Clone, Debug)]
/// struct DbError;
///
/// struct ProductRepo { cache: Cache }
///
/// impl ProductRepo {
///     #[cached(key = "prod:<id>", ttl = 1800, none_ttl = 30)]
///     async fn get_product(&self, id: u64) -> Result<Option<Product>, DbError> {
///         Ok(None) // query the database
///     }
///
///     #[cached(key = "search:<query:hash>", ttl = 600, tags = ["search"], unless = |page: &Vec<Product>| page.is_empty())]
///     async fn search(&self, query: &SearchQuery) -> Result<Vec<Product>, DbError> {
///         Ok(Vec::new()) // query the database
///     }
/// }
///
/// // Without `self`, name the cache.
/// #[cached(key = "rate:<from>:<to>", ttl = 60, cache = cache)]
/// async fn exchange_rate(cache: &Cache, from: &str, to: &str) -> f64 {
///     1.0 // call the rates service
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let repo = ProductRepo { cache: Cache::builder().namespace("shop").build().await? };
/// let product = repo.get_product(42).await; // loads, then served from the cache
/// let rate = exchange_rate(&repo.cache, "EUR", "USD").await;
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(MacroKind::Cached, args, item)
}

/// Writes the successful result of an `async fn` through to both tiers under its key, after the
/// body ran. The key is rendered from the arguments before the body runs (the body may move
/// them). Nothing is written for an `Err` or a `None`.
///
/// Options: `key` (required), `ttl`, `l1_ttl`, `stale`, `tags`, `cache` and `unless`, as for
/// [`macro@cached`]; `unless` gets `&T` (the value about to be written) whatever the shape. Use the
/// same key template (and TTL) as the `#[cached]` function that reads the value.
///
/// # Example
///
/// ```
/// use cache_core::{cache_put, cached, Cache};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Product { id: u64, name: String, draft: bool }
/// #[derive(Clone, Debug)]
/// struct DbError;
///
/// struct ProductRepo { cache: Cache }
///
/// impl ProductRepo {
///     #[cached(key = "prod:<id>", ttl = 1800)]
///     async fn get_product(&self, id: u64) -> Result<Option<Product>, DbError> {
///         Ok(None) // query the database
///     }
///
///     #[cache_put(key = "prod:<product.id>", ttl = 1800, unless = |p: &Product| p.draft)]
///     async fn save_product(&self, product: Product) -> Result<Product, DbError> {
///         Ok(product) // write to the database
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let repo = ProductRepo { cache: Cache::builder().namespace("shop").build().await? };
/// let saved = repo.save_product(Product { id: 1, name: "Shoe".into(), draft: false }).await;
/// let served = repo.get_product(1).await; // from the cache: the write went through
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(MacroKind::Put, args, item)
}

/// Invalidates cache entries when an `async fn` succeeds: after the body, if it returned `Ok` (any
/// value counts as success for a non-`Result` return type), or before the body with
/// `before = true` (whatever the body then does).
///
/// # Options
///
/// | option                          | invalidates                                             |
/// |---------------------------------|---------------------------------------------------------|
/// | `key = "prod:<id>"`             | one key                                                 |
/// | `tags = ["search", "cat:<c>"]`  | every entry carrying one of the tags                     |
/// | `pattern = "prods:cat:<c>:*"`   | every key matching the glob (placeholder values escaped) |
/// | `all = true`                    | the cache's whole namespace                             |
/// | `before = true`                 | (invalidate before the body instead of after success)   |
/// | `cache = <expr>`                | (the cache handle, default `self.cache`)                |
///
/// At least one of `key`, `tags`, `pattern` or `all = true` is required; they combine.
///
/// # Example
///
/// ```
/// use cache_core::{cache_evict, Cache};
///
/// #[derive(Clone, Debug)]
/// struct DbError;
///
/// struct ProductRepo { cache: Cache }
///
/// impl ProductRepo {
///     #[cache_evict(key = "prod:<id>", tags = ["search", "cat:<category_id>"])]
///     async fn delete_product(&self, id: u64, category_id: u64) -> Result<(), DbError> {
///         Ok(()) // delete from the database
///     }
///
///     #[cache_evict(pattern = "prods:cat:<category_id>:*", before = true)]
///     async fn reindex_category(&self, category_id: u64) -> Result<(), DbError> {
///         Ok(())
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let repo = ProductRepo { cache: Cache::builder().namespace("shop").build().await? };
/// repo.delete_product(1, 7).await.ok();
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn cache_evict(args: TokenStream, item: TokenStream) -> TokenStream {
    entry(MacroKind::Evict, args, item)
}

/// Parse, validate, expand; on error, the errors followed by the function unchanged (so that the
/// rest of the crate still type-checks against it and no unrelated errors follow).
fn entry(kind: MacroKind, args: TokenStream, item: TokenStream) -> TokenStream {
    expand_attribute(kind, args.into(), item.into()).into()
}

fn expand_attribute(
    kind: MacroKind,
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let result = (|input: syn::parse::ParseStream<'_>| Args::parse(input, kind))
        .parse2(args)
        .and_then(|args| {
            let func = Function::parse(item.clone(), kind)?;
            let site = validate::validate(kind, args, &func)?;
            Ok(expand::expand(&site, &func))
        });
    match result {
        Ok(tokens) => tokens,
        Err(error) => {
            let mut tokens = error.into_compile_error();
            tokens.extend(item);
            tokens
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints an expansion: `CACHE_MACROS_EXPAND='cached|key = "p:<id>"|async fn f(&self, id: u64) -> u64 { id }'`.
    #[test]
    fn print_expansion() {
        let Ok(spec) = std::env::var("CACHE_MACROS_EXPAND") else {
            return;
        };
        let mut parts = spec.splitn(3, '|');
        let kind = match parts.next() {
            Some("cache_put") => MacroKind::Put,
            Some("cache_evict") => MacroKind::Evict,
            _ => MacroKind::Cached,
        };
        let args = parts.next().unwrap_or_default().parse().expect("args");
        let item = parts.next().unwrap_or_default().parse().expect("item");
        println!("{}", expand_attribute(kind, args, item));
    }
}

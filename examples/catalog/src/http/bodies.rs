//! The read endpoints' response bodies, cached as bytes ([`CachedBody`]: serialised once, with
//! its `ETag`) so that a hit costs its bytes: no clone of an owned value, no JSON serialisation.
//! Answered with HTTP caching (`ETag`, `304`, `Cache-Control`, `X-Cache`) by
//! [`cache_core::http::HttpCaching`].
//!
//! Each body pattern mirrors the value it serialises (the repository's `#[cached]` read): same
//! TTLs, same tags, so that every write that invalidates the value invalidates its body too.
//! Product details and recommendations, which writes evict by key, carry the tag `product:<id>`
//! as well ([`tags::product`]), invalidated beside those evictions.

use std::future::Future;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;
use cache_core::http::HttpCaching;
use cache_core::{Cache, CachedBody, Hashed, Key, Pattern, PatternConfig, TtlPolicy};
use serde::Serialize;

use super::error::ApiError;
use crate::db::DbError;
use crate::domain::{ListQuery, SearchQuery};
use crate::repo::tags;

/// What every body pattern's template starts with (what tells a body's counters from its value's).
pub const BODY_PREFIX: &str = "body:";

/// The body patterns and the HTTP caching policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bodies {
    caching: HttpCaching,
    product: Pattern,
    listing: Pattern,
    search: Pattern,
    autocomplete: Pattern,
    recommendations: Pattern,
    categories: Pattern,
    category_tree: Pattern,
}

/// Which cached body a request reads.
#[derive(Debug)]
pub enum Read<'a> {
    Product(i64),
    Listing(i64, &'a ListQuery),
    Search(&'a SearchQuery),
    Autocomplete(&'a str),
    Recommendations(i64),
    Categories,
    CategoryTree,
}

fn pattern(
    cache: &Cache,
    template: &str,
    ttl: u64,
    none_ttl: Option<u64>,
    tags: &[&str],
) -> Result<Pattern, cache_core::Error> {
    debug_assert!(template.starts_with(BODY_PREFIX), "{template}");
    let mut policy = TtlPolicy::new(Duration::from_secs(ttl));
    if let Some(none) = none_ttl {
        policy = policy.negative_ttl(Duration::from_secs(none));
    }
    let config = tags
        .iter()
        .fold(PatternConfig::new(template, policy), |c, t| c.tag(*t));
    cache.register(config)
}

impl Bodies {
    /// Registers the body patterns on `cache`; `Cache-Control: max-age` at most `max_age`.
    pub fn register(cache: &Cache, max_age: Duration) -> Result<Bodies, cache_core::Error> {
        let p =
            |template, ttl, none_ttl, tags: &[&str]| pattern(cache, template, ttl, none_ttl, tags);
        Ok(Bodies {
            caching: HttpCaching::new(max_age),
            product: p(
                "body:prod:<id>",
                1800,
                Some(60),
                &[tags::PRODUCTS, tags::PRODUCT_TEMPLATE],
            )?,
            listing: p(
                "body:prods:cat:<cat>:<query:hash>",
                600,
                None,
                &[tags::PRODUCTS, "listing:<cat>"],
            )?,
            search: p(
                "body:search:<query:hash>",
                600,
                None,
                &[tags::PRODUCTS, tags::SEARCH],
            )?,
            autocomplete: p(
                "body:ac:<prefix>",
                600,
                None,
                &[tags::PRODUCTS, tags::SEARCH],
            )?,
            recommendations: p(
                "body:recs:<id>",
                1200,
                Some(60),
                &[tags::PRODUCTS, tags::RECS, tags::PRODUCT_TEMPLATE],
            )?,
            categories: p("body:cat:all", 1800, None, &[tags::CATEGORIES])?,
            category_tree: p("body:cat:tree", 1800, None, &[tags::CATEGORIES])?,
        })
    }

    fn key(&self, read: &Read<'_>) -> Result<Key, DbError> {
        let key = match read {
            Read::Product(id) => self.product.key(&[id]),
            Read::Listing(cat, query) => self.listing.key(&[cat, &Hashed(*query)]),
            Read::Search(query) => self.search.key(&[&Hashed(*query)]),
            Read::Autocomplete(prefix) => self.autocomplete.key(&[prefix]),
            Read::Recommendations(id) => self.recommendations.key(&[id]),
            Read::Categories => self.categories.key(&[]),
            Read::CategoryTree => self.category_tree.key(&[]),
        };
        key.map_err(|e| DbError::Internal(format!("body key: {e}")))
    }

    /// Answers `request` with the cached body of `read`, else with what `load` returns,
    /// serialised once and cached (`None`: not found, cached with the pattern's negative TTL).
    pub async fn respond<T, F, Fut>(
        &self,
        cache: &Cache,
        read: Read<'_>,
        request: &HeaderMap,
        load: F,
    ) -> Result<Option<Response>, ApiError>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, DbError>>,
    {
        let key = self.key(&read)?;
        Ok(self
            .caching
            .respond(cache, &key, request, || serialised(load))
            .await?)
    }

    /// Reads the body of `read` through `cache` exactly as [`respond`](Self::respond) does (same
    /// key, same loader, single flight), without a request to answer: what warmup fills, so that
    /// the first request of a warmed read is a hit of its body, not only of the value behind it.
    /// True when there is a body (`false`: not found, cached as such).
    pub async fn warm<T, F, Fut>(
        &self,
        cache: &Cache,
        read: Read<'_>,
        load: F,
    ) -> Result<bool, DbError>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, DbError>>,
    {
        let key = self.key(&read)?;
        let (body, _) = cache
            .get_or_load_optional_with_source::<CachedBody, DbError, _, _>(&key, || {
                serialised(load)
            })
            .await?;
        Ok(body.is_some())
    }
}

impl Bodies {
    /// [`warm`](Self::warm) for many reads at once: one L1 pass and one Redis round trip for all
    /// of `reads`, then one call of `load` with the indices (into `reads`) of those still missing,
    /// which returns their values in that order (`None`: not found). The number of bodies there.
    pub async fn warm_many<T, F, Fut>(
        &self,
        cache: &Cache,
        reads: &[Read<'_>],
        load: F,
    ) -> Result<usize, DbError>
    where
        T: Serialize,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<T>>, DbError>>,
    {
        let keys = reads
            .iter()
            .map(|read| self.key(read))
            .collect::<Result<Vec<_>, _>>()?;
        let bodies = cache
            .get_many_or_load::<CachedBody, DbError, _, _>(&keys, |missing| async move {
                load(missing)
                    .await?
                    .iter()
                    .map(|value| value.as_ref().map(body).transpose())
                    .collect()
            })
            .await?;
        Ok(bodies.iter().flatten().count())
    }
}

/// `value` serialised once into a [`CachedBody`].
fn body<T: Serialize>(value: &T) -> Result<CachedBody, DbError> {
    CachedBody::json(value).map_err(|e| DbError::Internal(format!("serialising a response: {e}")))
}

/// What `load` returns, serialised once into a [`CachedBody`]: the loader of a body.
async fn serialised<T, F, Fut>(load: F) -> Result<Option<CachedBody>, DbError>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<T>, DbError>>,
{
    load().await?.as_ref().map(body).transpose()
}

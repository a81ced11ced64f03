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

    /// The same patterns with another `max-age` bound.
    pub fn with_max_age(mut self, max_age: Duration) -> Bodies {
        self.caching = HttpCaching::new(max_age);
        self
    }

    fn key(&self, read: &Read<'_>) -> Result<Key, ApiError> {
        let key = match read {
            Read::Product(id) => self.product.key(&[id]),
            Read::Listing(cat, query) => self.listing.key(&[cat, &Hashed(*query)]),
            Read::Search(query) => self.search.key(&[&Hashed(*query)]),
            Read::Autocomplete(prefix) => self.autocomplete.key(&[prefix]),
            Read::Recommendations(id) => self.recommendations.key(&[id]),
            Read::Categories => self.categories.key(&[]),
            Read::CategoryTree => self.category_tree.key(&[]),
        };
        key.map_err(|e| ApiError::from(DbError::Internal(format!("body key: {e}"))))
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
        let loader = || async move {
            match load().await? {
                Some(value) => CachedBody::json(&value)
                    .map(Some)
                    .map_err(|e| DbError::Internal(format!("serialising a response: {e}"))),
                None => Ok(None),
            }
        };
        Ok(self.caching.respond(cache, &key, request, loader).await?)
    }
}

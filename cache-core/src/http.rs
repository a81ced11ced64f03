//! HTTP caching over cached response bodies (feature `http`): answer a request from a
//! [`CachedBody`] read through the [`Cache`] (so its pattern's tags and invalidation apply), with
//! a strong `ETag`, `304 Not Modified` on a matching `If-None-Match`, `Cache-Control: max-age`
//! from the entry's remaining TTL (bounded), and `X-Cache` saying which tier served it.
//!
//! A hit costs its bytes: the response body shares the cached bytes (no copy, no serialisation,
//! no hashing). Compression is the server's business (`tower-http`'s `CompressionLayer` after
//! this).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::body::CachedBody;
use crate::cache::Cache;
use crate::key::Key;
use crate::source::Source;

/// `X-Cache`: `hit-l1`, `hit-l2`, `miss` or `stale` ([`Source::x_cache`]).
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// How responses are answered from cached bodies: the bound of `Cache-Control: max-age`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_core::Error> {
/// use cache_core::http::HttpCaching;
/// use cache_core::{Cache, CachedBody, PatternConfig, TtlPolicy};
/// use http::{HeaderMap, StatusCode, header};
/// use std::time::Duration;
///
/// let cache = Cache::builder().build().await?; // L1 only; the same with .redis_url(..)
/// let pages = cache.register(PatternConfig::new("body:prod:<id>", TtlPolicy::new(Duration::from_secs(600))))?;
/// let caching = HttpCaching::new(Duration::from_secs(60));
/// let key = pages.key(&[&7u64])?;
/// let load = || async { Ok::<_, String>(Some(CachedBody::new("application/json", b"{}".to_vec()))) };
///
/// let first = caching.respond(&cache, &key, &HeaderMap::new(), load).await.unwrap().unwrap();
/// assert_eq!(first.headers()["x-cache"], "miss");
/// assert_eq!(first.headers()[header::CACHE_CONTROL], "max-age=60");
/// let etag = first.headers()[header::ETAG].clone();
///
/// let mut revalidate = HeaderMap::new();
/// revalidate.insert(header::IF_NONE_MATCH, etag);
/// let second = caching.respond(&cache, &key, &revalidate, load).await.unwrap().unwrap();
/// assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
/// assert_eq!(second.headers()["x-cache"], "hit-l1");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCaching {
    max_age: Duration,
}

impl HttpCaching {
    /// `Cache-Control: max-age` is the entry's remaining TTL, at most `max_age` (zero: always
    /// `max-age=0`, clients revalidate every time).
    pub fn new(max_age: Duration) -> HttpCaching {
        HttpCaching { max_age }
    }

    /// The bound of `max-age`.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Reads the body of `key` through `cache` (L1, L2, else `loader`, single-flight; `None`:
    /// nothing there, cached with the pattern's negative TTL if it has one) and answers `request`
    /// with it ([`reply`](Self::reply)); `None` when there is nothing to send.
    pub async fn respond<E, F, Fut>(
        &self,
        cache: &Cache,
        key: &Key,
        request: &HeaderMap,
        loader: F,
    ) -> Result<Option<Response>, E>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<CachedBody>, E>>,
    {
        let (body, source) = cache
            .get_or_load_optional_with_source::<CachedBody, E, F, Fut>(key, loader)
            .await?;
        let ttl = key.pattern().policy().ttl();
        Ok(body.map(|body| self.reply(request, ttl, body, source)))
    }

    /// The response to `request` from `body`, cached with `ttl` and read from `source`: `304 Not
    /// Modified` (no body) if `If-None-Match` matches its `ETag`, else `200` with the bytes
    /// (shared, not copied). Both carry `ETag`, `Cache-Control: max-age` (the remaining TTL, at
    /// most the bound; `0` for a stale body) and `X-Cache`.
    pub fn reply(
        &self,
        request: &HeaderMap,
        ttl: Duration,
        body: Arc<CachedBody>,
        source: Source,
    ) -> Response {
        let max_age = if source == Source::Stale {
            Duration::ZERO
        } else {
            ttl.saturating_sub(body.age()).min(self.max_age)
        };
        let not_modified = if_none_match(request, body.etag());
        let mut response = if not_modified {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = Response::new(Body::empty());
            if let Some(ct) = content_type(body.content_type()) {
                r.headers_mut().insert(CONTENT_TYPE, ct);
            }
            r
        };
        let headers = response.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(body.etag()) {
            headers.insert(ETAG, etag);
        }
        headers.insert(CACHE_CONTROL, cache_control(max_age));
        headers.insert(X_CACHE, HeaderValue::from_static(source.x_cache()));
        if !not_modified {
            *response.body_mut() = Body::from(Bytes::from_owner(Shared(body)));
        }
        response
    }
}

/// The cached body as the owner of the response's bytes: sent without a copy.
struct Shared(Arc<CachedBody>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

fn cache_control(max_age: Duration) -> HeaderValue {
    const PREFIX: &[u8] = b"max-age=";
    let mut digits = itoa::Buffer::new();
    let secs = digits.format(max_age.as_secs()).as_bytes();
    // Written on the stack: the header value is the one allocation.
    let mut value = [0u8; PREFIX.len() + 20];
    value[..PREFIX.len()].copy_from_slice(PREFIX);
    value[PREFIX.len()..PREFIX.len() + secs.len()].copy_from_slice(secs);
    HeaderValue::from_bytes(&value[..PREFIX.len() + secs.len()])
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
}

/// The `Content-Type` header of a body: JSON's without an allocation, any other copied.
fn content_type(ct: &str) -> Option<HeaderValue> {
    const JSON: &str = "application/json";
    if ct == JSON {
        Some(HeaderValue::from_static(JSON))
    } else {
        HeaderValue::from_str(ct).ok()
    }
}

/// Whether `If-None-Match` of `request` matches `etag` (RFC 9110 §13.1.2: `*`, or any listed
/// tag equal to it by the weak comparison, a `W/` prefix ignored).
pub fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

impl CachedBody {
    /// A JSON body: `value` serialised once, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<CachedBody, serde_json::Error> {
        Ok(CachedBody::new(
            "application/json",
            serde_json::to_vec(value)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(inm: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(inm).expect("header"));
        h
    }

    #[test]
    fn if_none_match_compares_weakly_across_lists_and_star() {
        let etag = "\"abc\"";
        assert!(if_none_match(&headers("\"abc\""), etag));
        assert!(if_none_match(&headers("W/\"abc\""), etag));
        assert!(if_none_match(&headers("\"x\", \"abc\""), etag));
        assert!(if_none_match(&headers("*"), etag));
        assert!(!if_none_match(&headers("\"abcd\""), etag));
        assert!(!if_none_match(&HeaderMap::new(), etag));
    }

    #[test]
    fn max_age_is_the_remaining_ttl_bounded_and_zero_when_stale() {
        let body = Arc::new(CachedBody::new("text/plain", b"x".to_vec()));
        let caching = HttpCaching::new(Duration::from_secs(60));
        let age = |ttl: u64, source: Source| {
            caching
                .reply(
                    &HeaderMap::new(),
                    Duration::from_secs(ttl),
                    Arc::clone(&body),
                    source,
                )
                .headers()[CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        assert_eq!(age(600, Source::L1), "max-age=60");
        // Just filled: 30 s left of a 30 s TTL (rounded down: 29 or 30).
        let short = age(30, Source::L2);
        assert!(short == "max-age=30" || short == "max-age=29", "{short}");
        assert_eq!(age(600, Source::Stale), "max-age=0");
        let response = caching.reply(
            &HeaderMap::new(),
            Duration::from_secs(600),
            Arc::clone(&body),
            Source::L2,
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[X_CACHE], "hit-l2");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
    }
}

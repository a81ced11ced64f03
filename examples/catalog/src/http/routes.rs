//! The routes and their handlers: thin, validating input and calling the repository.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::batch::ProductsRequest;
use super::bodies::Read;
use super::error::{ApiError, Body, Ids, Params, PathParams};
use crate::domain::{
    AutocompleteQuery, CategoryInput, FiltersQuery, ProductInput, SearchQuery, StockChange,
    check_id,
};

type Result<T> = std::result::Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/categories", get(categories).post(create_category))
        .route("/categories/tree", get(category_tree))
        .route(
            "/categories/{id}",
            get(category)
                .post(create_category_with_id)
                .put(update_category)
                .delete(delete_category),
        )
        .route("/categories/{id}/children", get(children))
        .route("/categories/{id}/attributes", get(category_attributes))
        .route("/colors", get(colours))
        .route("/products", get(list_products).post(create_product))
        .route("/products/top-sellers", get(top_sellers))
        .route("/products/new-arrivals", get(new_arrivals))
        .route("/products/popular", get(most_popular))
        .route("/products/sku/{sku}", get(product_by_sku))
        .route(
            "/products/{id}",
            get(product)
                .post(create_product_with_id)
                .put(update_product)
                .delete(delete_product),
        )
        .route("/products/{id}/variants", get(variants))
        .route("/products/{id}/recommendations", get(recommendations))
        .route("/products/{id}/variants/{vid}/stock", post(change_stock))
        .route("/filters", get(filters))
        .route("/search", get(search))
        .route("/autocomplete", get(autocomplete))
        .route("/stats", get(stats))
        .route("/stats/attributes", get(attribute_stats))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/cache/stats", get(super::cache_stats::cache_stats))
        .fallback(|| async { ApiError::not_found("no such route") })
}

fn found<T>(value: Option<T>, what: &str) -> Result<T> {
    value.ok_or_else(|| ApiError::not_found(format!("{what} not found")))
}

// ----- categories -----

async fn categories(State(s): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let repo = &s.repo;
    let reply = s
        .bodies
        .respond(&repo.cache, Read::Categories, &headers, || async {
            repo.categories().await.map(Some)
        })
        .await?;
    found(reply, "categories")
}

async fn category_tree(State(s): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let repo = &s.repo;
    let reply = s
        .bodies
        .respond(&repo.cache, Read::CategoryTree, &headers, || async {
            repo.category_tree().await.map(Some)
        })
        .await?;
    found(reply, "category tree")
}

async fn category(State(s): State<AppState>, Ids(id): Ids<i64>) -> Result<impl IntoResponse> {
    Ok(Json(found(
        s.repo.category(id).await?,
        &format!("category {id}"),
    )?))
}

async fn children(State(s): State<AppState>, Ids(id): Ids<i64>) -> Result<impl IntoResponse> {
    Ok(Json(found(
        s.repo.children(id).await?,
        &format!("category {id}"),
    )?))
}

async fn category_attributes(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
) -> Result<impl IntoResponse> {
    Ok(Json(found(
        s.repo.category_attributes(id).await?,
        &format!("category {id}"),
    )?))
}

async fn colours(State(s): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(s.repo.colours().await?))
}

async fn create_category(
    State(s): State<AppState>,
    Body(input): Body<CategoryInput>,
) -> Result<impl IntoResponse> {
    input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(s.repo.create_category(None, input).await?),
    ))
}

async fn create_category_with_id(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
    Body(input): Body<CategoryInput>,
) -> Result<impl IntoResponse> {
    input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(s.repo.create_category(Some(id), input).await?),
    ))
}

async fn update_category(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
    Body(input): Body<CategoryInput>,
) -> Result<impl IntoResponse> {
    input.validate()?;
    Ok(Json(s.repo.update_category(id, input).await?))
}

async fn delete_category(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
) -> Result<impl IntoResponse> {
    s.repo.delete_category(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- products -----

async fn product(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
    headers: HeaderMap,
) -> Result<Response> {
    let repo = &s.repo;
    let reply = s
        .bodies
        .respond(&repo.cache, Read::Product(id), &headers, || {
            repo.product(id)
        })
        .await?;
    found(reply, &format!("product {id}"))
}

async fn product_by_sku(
    State(s): State<AppState>,
    PathParams(sku): PathParams<String>,
) -> Result<impl IntoResponse> {
    if sku.is_empty() || sku.len() > 64 {
        return Err(ApiError::bad_request("sku must be 1 to 64 characters"));
    }
    Ok(Json(found(
        s.repo.product_by_sku(&sku).await?,
        &format!("product with sku {sku}"),
    )?))
}

async fn variants(State(s): State<AppState>, Ids(id): Ids<i64>) -> Result<impl IntoResponse> {
    Ok(Json(found(
        s.repo.variants(id).await?,
        &format!("product {id}"),
    )?))
}

async fn recommendations(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
    headers: HeaderMap,
) -> Result<Response> {
    let repo = &s.repo;
    let reply = s
        .bodies
        .respond(&repo.cache, Read::Recommendations(id), &headers, || {
            repo.recommendations(id)
        })
        .await?;
    found(reply, &format!("product {id}"))
}

/// `GET /products`: a listing (cached body), or with `?ids=` a batch of products (one
/// `get_many_or_load`), answered as `{"items": [..found, in the order asked..], "missing": [ids]}`.
async fn list_products(
    State(s): State<AppState>,
    request: ProductsRequest,
    headers: HeaderMap,
) -> Result<Response> {
    let query = match request {
        ProductsRequest::List(query) => query,
        ProductsRequest::Batch(ids) => {
            let found = s.repo.products_by_ids(&ids).await?;
            let mut items = Vec::with_capacity(found.len());
            let mut missing = Vec::new();
            for (id, detail) in ids.iter().zip(found) {
                match detail {
                    Some(detail) => items.push(detail),
                    None => missing.push(*id),
                }
            }
            return Ok(Json(json!({ "items": items, "missing": missing })).into_response());
        }
    };
    query.validate()?;
    // Keyed by the canonical query, so that equivalent URLs share one entry.
    let query = query.canonical();
    let repo = &s.repo;
    let cat = query.category.unwrap_or(0);
    let reply = s
        .bodies
        .respond(
            &repo.cache,
            Read::Listing(cat, &query),
            &headers,
            || async { repo.list_products(&query).await.map(Some) },
        )
        .await?;
    found(reply, "listing")
}

async fn top_sellers(State(s): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(s.repo.top_sellers().await?))
}

async fn new_arrivals(State(s): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(s.repo.new_arrivals().await?))
}

async fn most_popular(State(s): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(s.repo.most_popular().await?))
}

async fn create_product(
    State(s): State<AppState>,
    Body(input): Body<ProductInput>,
) -> Result<impl IntoResponse> {
    input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(s.repo.create_product(None, input).await?),
    ))
}

async fn create_product_with_id(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
    Body(input): Body<ProductInput>,
) -> Result<impl IntoResponse> {
    input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(s.repo.create_product(Some(id), input).await?),
    ))
}

async fn update_product(
    State(s): State<AppState>,
    Ids(id): Ids<i64>,
    Body(input): Body<ProductInput>,
) -> Result<impl IntoResponse> {
    input.validate()?;
    Ok(Json(s.repo.update_product(id, input).await?))
}

async fn delete_product(State(s): State<AppState>, Ids(id): Ids<i64>) -> Result<impl IntoResponse> {
    s.repo.delete_product(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_stock(
    State(s): State<AppState>,
    Ids((id, vid)): Ids<(i64, i64)>,
    Body(change): Body<StockChange>,
) -> Result<impl IntoResponse> {
    change.validate()?;
    Ok(Json(s.repo.change_stock(id, vid, change).await?))
}

// ----- search, filters, statistics -----

async fn filters(
    State(s): State<AppState>,
    Params(q): Params<FiltersQuery>,
) -> Result<impl IntoResponse> {
    if let Some(c) = q.category {
        check_id("category", c).map_err(ApiError::bad_request)?;
    }
    let cat = q.category.unwrap_or(0);
    Ok(Json(found(
        s.repo.filters(cat).await?,
        &format!("category {cat}"),
    )?))
}

async fn search(
    State(s): State<AppState>,
    Params(q): Params<SearchQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    q.validate()?;
    let q = q.canonical();
    let repo = &s.repo;
    let reply = s
        .bodies
        .respond(&repo.cache, Read::Search(&q), &headers, || async {
            repo.search(&q).await.map(Some)
        })
        .await?;
    found(reply, "search")
}

async fn autocomplete(
    State(s): State<AppState>,
    Params(q): Params<AutocompleteQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    q.validate()?;
    let repo = &s.repo;
    let reply = s
        .bodies
        .respond(
            &repo.cache,
            Read::Autocomplete(&q.prefix),
            &headers,
            || async { repo.autocomplete(&q.prefix).await.map(Some) },
        )
        .await?;
    found(reply, "autocomplete")
}

async fn stats(State(s): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(s.repo.stats().await?))
}

async fn attribute_stats(State(s): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(s.repo.attribute_stats().await?))
}

// ----- operations -----

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let mut report = health_report(&s.repo).await;
    if let Some(problem) = &s.startup_problem {
        report["startup_problem"] = json!(problem);
    }
    let status = if report["database"]["status"] == "up" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// Liveness: 200 while the process serves requests (restart it if this fails).
async fn live() -> impl IntoResponse {
    Json(json!({ "status": "live" }))
}

/// Readiness: 200 when the database answers and the service runs as configured; 503 (with the
/// reasons) while the database is down or a configuration problem it started with
/// (`--allow-degraded`: Redis refusing the credentials) lasts. Redis merely unreachable leaves it
/// ready: the service then serves from L1 and the database, slower but correct (`/health` says
/// `degraded`), and taking every replica out of service for it would turn an outage of the cache
/// into one of the service.
async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let mut reasons = Vec::new();
    if let Err(e) = s.repo.db.ping().await {
        reasons.push(format!("database: {e}"));
    }
    if let Some(problem) = &s.startup_problem
        && s.repo.cache.health().await.l2.status != cache_core::L2Status::Up
    {
        reasons.push(problem.clone());
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reasons": reasons })),
        )
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.http.render(&s.repo.cache).await,
    )
}

/// The database and cache health report of `/health` and `catalog stats`.
pub async fn health_report(repo: &crate::repo::Repo) -> Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let database = match repo.db.ping().await {
        Ok(latency) => json!({
            "status": "up", "latency_ms": ms(latency), "backend": repo.db.backend(), "path": repo.db.location()
        }),
        Err(e) => json!({ "status": "down", "error": e.to_string() }),
    };
    let h = repo.cache.health().await;
    let l2_status = match h.l2.status {
        cache_core::L2Status::Disabled => "disabled",
        cache_core::L2Status::Up => "up",
        cache_core::L2Status::Degraded => "degraded",
        cache_core::L2Status::Down => "down",
        _ => "unknown",
    };
    let l1 = repo.cache.stats().l1_capacity_bytes > 0;
    let mode = match (l2_status, l1) {
        ("disabled", true) => "serving from L1 and the database: no REDIS_URL configured",
        ("disabled", false) => {
            "serving from the database: no REDIS_URL configured and L1 disabled (--l1-mb 0)"
        }
        ("up", true) => "serving from L1 and L2 (Redis)",
        ("up", false) => "serving from L2 (Redis): L1 disabled (--l1-mb 0)",
        (_, true) => "serving from L1 and the database: Redis is unavailable",
        (_, false) => "serving from the database: Redis is unavailable and L1 disabled (--l1-mb 0)",
    };
    let status = if database["status"] != "up" {
        "down"
    } else if l2_status == "up" || l2_status == "disabled" {
        "ok"
    } else {
        "degraded"
    };
    let stats = repo.cache.stats();
    json!({
        "status": status,
        "mode": mode,
        "database": database,
        "warnings": h.warnings(),
        "cache": {
            "namespace": repo.cache.namespace(),
            "l2": {
                "status": l2_status,
                "circuit": h.l2.circuit.map(|c| format!("{c:?}").to_lowercase()),
                "ping_ms": h.l2.ping.map(ms),
                "redis_version": h.l2.redis_version,
                "connected_clients": h.l2.connected_clients,
                "used_memory": h.l2.used_memory,
                "maxmemory": h.l2.maxmemory,
                "maxmemory_policy": h.l2.maxmemory_policy,
                "pending_invalidations": h.l2.pending_invalidations,
                "error": h.l2.error,
            },
            "l1": {
                "entries": h.l1.entries,
                "weighted_bytes": h.l1.weighted_bytes,
                "capacity_bytes": h.l1.capacity_bytes,
            },
            "hit_ratio": stats.hit_ratio(),
            "l1_hits": stats.total.l1_hits,
            "l2_hits": stats.total.l2_hits,
            "misses": stats.total.misses,
            "loads": stats.total.loads,
        },
    })
}

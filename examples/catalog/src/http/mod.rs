//! The HTTP JSON API: routes, errors as JSON, metrics, cache statistics.

pub mod batch;
pub mod bodies;
pub mod cache_stats;
pub mod ceiling;
pub mod error;
pub mod metrics;
pub mod routes;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Limits;
use crate::repo::Repo;
use bodies::Bodies;
use error::ApiError;
use metrics::HttpMetrics;

/// What handlers share, behind one `Arc`: axum clones the state for every request, and one
/// reference count is cheaper than the dozen of its parts (a profile of the cached mix put the
/// clone and drop of the parts at 2 % of the server's CPU).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub repo: Repo,
    pub http: Arc<HttpMetrics>,
    /// The read endpoints' cached response bodies and HTTP caching policy.
    pub bodies: Bodies,
    /// A configuration problem the service started with (`--allow-degraded`).
    pub startup_problem: Option<String>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state handlers of `app` share, within `limits` (`Cache-Control: max-age` at most
    /// `limits.http_max_age`).
    pub fn of(app: &crate::App, limits: &Limits) -> AppState {
        AppState(Arc::new(Shared {
            repo: app.repo.clone(),
            http: app.http.clone(),
            bodies: Bodies::register(&app.repo.cache, limits.http_max_age)
                // The patterns are fixed and valid: only a conflicting registration of the same
                // template (none other registers `body:*`) could fail.
                .expect("the body patterns register"),
            startup_problem: app.startup_problem.clone(),
        }))
    }
}

/// The service's router, with its layers, outermost first: metrics (per route template), JSON
/// errors (every error answered is the JSON contract), compression (gzip or brotli by
/// `Accept-Encoding`), panics as 500s, the per-request timeout (503), the body limit (413).
pub fn router(state: AppState, limits: &Limits) -> Router {
    let http = state.http.clone();
    // `Router::layer` wraps what is already there: innermost first.
    routes::routes()
        .with_state(state)
        // The limit below applies to every body; axum's own (2 MB, for `Json`) would only
        // second-guess it.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes as usize))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(http, metrics::track))
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::from_status(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

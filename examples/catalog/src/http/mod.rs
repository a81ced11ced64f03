//! The HTTP JSON API: routes, errors as JSON, metrics.

pub mod ceiling;
pub mod error;
pub mod metrics;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::middleware;

use crate::repo::Repo;
use metrics::HttpMetrics;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub repo: Repo,
    pub http: Arc<HttpMetrics>,
}

/// The service's router.
pub fn router(state: AppState) -> Router {
    let http = state.http.clone();
    routes::routes()
        .with_state(state)
        .layer(middleware::from_fn_with_state(http, metrics::track))
}

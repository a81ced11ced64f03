//! `catalog --ceiling`: the load test's ceiling. The same routes answer with the same bytes, but
//! each distinct request (method and URL) is computed once (from the database, with no cache in
//! front of it) and from then on served from a copy of its response in memory: no cache library,
//! no database, no serialisation. What a server does per request here is the least any mode of
//! it can do, so its throughput is the HTTP limit of the machine for this workload.
//!
//! `GET /ceiling` answers how many distinct requests were computed (`fills`) and served from
//! memory (`hits`), so a load generator can tell how much of its run the ceiling really served.
//! This file owns the ceiling; the rest of the service knows of it only through the `--ceiling`
//! flag (`cli.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::RwLock;

use super::{AppState, router};
use crate::{Config, Limits, Server, build_app};

/// The path of the ceiling's own counters (never snapshotted).
pub const STATS_PATH: &str = "/ceiling";

/// A response, as bytes.
#[derive(Debug)]
struct Snapshot {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// Every response computed so far, by method and URL (path and query).
#[derive(Debug, Default)]
struct Snapshots {
    get: RwLock<HashMap<String, Arc<Snapshot>>>,
    other: RwLock<HashMap<(Method, String), Arc<Snapshot>>>,
    fills: AtomicU64,
    hits: AtomicU64,
}

impl Snapshots {
    fn find(&self, method: &Method, url: &str) -> Option<Arc<Snapshot>> {
        if method == Method::GET {
            self.get.read().get(url).cloned()
        } else {
            self.other
                .read()
                .get(&(method.clone(), url.to_owned()))
                .cloned()
        }
    }

    fn keep(&self, method: Method, url: String, snapshot: Arc<Snapshot>) {
        if method == Method::GET {
            self.get.write().insert(url, snapshot);
        } else {
            self.other.write().insert((method, url), snapshot);
        }
    }

    fn len(&self) -> usize {
        self.get.read().len() + self.other.read().len()
    }
}

impl Snapshot {
    fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        if let Some(ct) = &self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, ct.clone());
        }
        response
    }
}

/// Serves a request from its snapshot, or computes it through the service and keeps a copy
/// (server errors are not kept: they may be transient).
async fn serve_snapshot(State(s): State<Arc<Snapshots>>, req: Request, next: Next) -> Response {
    if req.uri().path() == STATS_PATH {
        return next.run(req).await;
    }
    let url = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |pq| pq.as_str());
    if let Some(snapshot) = s.find(req.method(), url) {
        s.hits.fetch_add(1, Ordering::Relaxed);
        return snapshot.response();
    }
    let (method, url) = (req.method().clone(), url.to_owned());
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let snapshot = Arc::new(Snapshot {
        status: parts.status,
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        body,
    });
    if !parts.status.is_server_error() {
        s.fills.fetch_add(1, Ordering::Relaxed);
        s.keep(method, url, snapshot.clone());
    }
    let mut response = Response::from_parts(parts, Body::from(snapshot.body.clone()));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// The service's router, answering from snapshots; `GET /ceiling` gives the counters.
fn ceiling_router(state: AppState, limits: &Limits) -> Router {
    let snapshots = Arc::new(Snapshots::default());
    let counters = snapshots.clone();
    router(state, limits)
        .route(
            STATS_PATH,
            get(move || {
                let s = counters.clone();
                async move {
                    axum::Json(serde_json::json!({
                        "urls": s.len(),
                        "fills": s.fills.load(Ordering::Relaxed),
                        "hits": s.hits.load(Ordering::Relaxed),
                    }))
                }
            }),
        )
        .layer(middleware::from_fn_with_state(snapshots, serve_snapshot))
}

/// Starts the ceiling server on `config.listen`: the database of `config`, no cache (no L1, no
/// Redis) behind the snapshots.
pub async fn start(config: &Config) -> anyhow::Result<Server> {
    let mut config = config.clone();
    config.redis_url = None;
    config.l1_mb = 0;
    let app = build_app(&config).await?;
    let router = ceiling_router(AppState::of(&app, &config.limits), &config.limits);
    tracing::info!("catalog ceiling: responses from memory after the first");
    Server::serve_router(app, config.listen, config.limits, router).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_keeps_status_type_and_bytes() {
        let s = Snapshots::default();
        let snapshot = Arc::new(Snapshot {
            status: StatusCode::NOT_FOUND,
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from_static(b"{\"error\":\"no\"}"),
        });
        s.keep(Method::GET, "/products/7".to_owned(), snapshot);
        assert!(s.find(&Method::GET, "/products/8").is_none());
        assert!(s.find(&Method::POST, "/products/7").is_none());
        let response = s
            .find(&Method::GET, "/products/7")
            .expect("kept")
            .response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(&body[..], b"{\"error\":\"no\"}");
        assert_eq!(s.len(), 1);
    }
}

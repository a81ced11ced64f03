//! The catalog service: an HTTP JSON API over a SQLite catalog, read through the two-tier cache
//! (`#[cached]` on the repository) and invalidated precisely by writes.
//!
//! [`Server::start`] opens (or generates) the database, builds the cache and serves on the
//! configured address; tests start it on `127.0.0.1:0` and read [`Server::addr`].

pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod ops;
pub mod repo;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use cache_core::Cache;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;
use db::Db;
use http::metrics::HttpMetrics;
use http::{AppState, router};
use repo::Repo;

/// The service without its listener: the repository (database + cache) and the HTTP metrics.
#[derive(Debug, Clone)]
pub struct App {
    pub repo: Repo,
    pub http: Arc<HttpMetrics>,
}

/// Opens the database (creating, migrating and generating the catalog on first start) and builds
/// the cache (running on L1 alone when Redis is not configured or not reachable).
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    let cfg = config.clone();
    let (db, opened) = tokio::task::spawn_blocking(move || Db::open(&cfg))
        .await
        .context("database task failed")?
        .with_context(|| format!("opening database {}", config.database.display()))?;
    if opened.generated {
        tracing::info!(path = %config.database.display(), "generated a new catalog");
    }
    let cache = build_cache(config).await?;
    Ok(App {
        repo: Repo::new(db, cache),
        http: Arc::new(HttpMetrics::default()),
    })
}

/// Like [`build_app`], but over an existing database only: an error if it is missing or empty
/// (the operations commands `warmup`, `stats`, `clear --product-id` never generate a catalog).
pub async fn open_app(config: &Config) -> anyhow::Result<App> {
    let cfg = config.clone();
    let db = tokio::task::spawn_blocking(move || Db::open_existing(&cfg))
        .await
        .context("database task failed")??;
    let cache = build_cache(config).await?;
    Ok(App {
        repo: Repo::new(db, cache),
        http: Arc::new(HttpMetrics::default()),
    })
}

/// The version of the cached values' format. Part of the cache namespace
/// ([`cache_namespace`]), so that a deploy that changes what is cached (a field added to a
/// cached type, a different meaning) never reads the bytes an older deploy wrote to the shared
/// Redis: it starts on an empty namespace, and the old one expires by its TTLs.
/// **Bump it whenever a cached type's serialized form changes.**
pub const CACHE_SCHEMA_VERSION: u32 = 1;

/// The cache namespace of a deployment: its prefix (`--namespace`, the plan's `KEY_PREFIX`) and
/// [`CACHE_SCHEMA_VERSION`], e.g. `catalog:v1`.
pub fn cache_namespace(prefix: &str) -> String {
    format!("{prefix}:v{CACHE_SCHEMA_VERSION}")
}

/// The cache alone (no database): what `catalog clear` acts on.
pub async fn build_cache(config: &Config) -> anyhow::Result<Cache> {
    let cache = Cache::builder()
        .namespace(cache_namespace(&config.namespace))
        .redis_url_opt(config.redis_url.clone())
        .l1_capacity_bytes(config.l1_capacity_bytes())
        .build()
        .await
        .context("building the cache")?;
    if !cache.has_l2() {
        tracing::info!("no REDIS_URL: serving from L1 and the database");
    }
    Ok(cache)
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    pub app: App,
}

impl Server {
    /// Builds the app and serves it on `config.listen`; with `warmup`, warms the cache in the
    /// background.
    pub async fn start(config: &Config, warmup: bool) -> anyhow::Result<Server> {
        let app = build_app(config).await?;
        let server = Server::serve(app, config.listen).await?;
        if warmup {
            let repo = server.app.repo.clone();
            tokio::spawn(async move {
                match ops::warmup(&repo, false, false).await {
                    Ok(report) => tracing::info!("background warmup: {report}"),
                    Err(e) => tracing::warn!(error = %e, "background warmup failed"),
                }
            });
        }
        Ok(server)
    }

    /// Serves `app` on `listen`.
    pub async fn serve(app: App, listen: SocketAddr) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let router = router(AppState {
            repo: app.repo.clone(),
            http: app.http.clone(),
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(%addr, "catalog service listening");
        Ok(Server {
            addr,
            shutdown: Some(tx),
            task,
            app,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight, and returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task failed")??;
        Ok(())
    }

    /// Serves until Ctrl-C, then shuts down gracefully.
    pub async fn run_until_ctrl_c(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

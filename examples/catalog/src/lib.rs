//! The catalog service: an HTTP JSON API over a SQLite or PostgreSQL catalog, read through the two-tier cache
//! (`#[cached]` on the repository) and invalidated precisely by writes.
//!
//! [`Server::start`] opens (or generates) the database, builds the cache and serves on the
//! configured address; tests start it on `127.0.0.1:0` and read [`Server::addr`].

pub mod canonical;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod flags;
pub mod http;
pub mod ops;
pub mod redis_info;
pub mod redis_url;
pub mod repo;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use cache_core::Cache;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{Config, Limits};
use db::Db;
use http::metrics::HttpMetrics;
use http::{AppState, router};
use repo::Repo;

/// The service without its listener: the repository (database + cache) and the HTTP metrics.
#[derive(Debug, Clone)]
pub struct App {
    pub repo: Repo,
    pub http: Arc<HttpMetrics>,
    /// A configuration problem the service started with anyway (`--allow-degraded`): it is not
    /// ready (`/health/ready`) until the problem is gone.
    pub startup_problem: Option<String>,
}

/// Opens the database (creating, migrating and generating the catalog on first start) and builds
/// the cache (running on L1 alone when Redis is not configured or not reachable).
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    let (db, opened) = Db::open(config)
        .await
        .with_context(|| format!("opening database {}", database_location(config)))?;
    if opened.generated {
        tracing::info!(database = %db.location(), "generated a new catalog");
    }
    let http = HttpMetrics::start()?;
    let (cache, startup_problem) = build_cache_checked(config, Some(http.recorder())).await?;
    Ok(App {
        repo: Repo::new(db, cache),
        http,
        startup_problem,
    })
}

/// Like [`build_app`], but over an existing database only: an error if it is missing or empty
/// (the operations commands `warmup`, `stats`, `clear --product-id` never generate a catalog).
pub async fn open_app(config: &Config) -> anyhow::Result<App> {
    let db = Db::open_existing(config)
        .await
        .with_context(|| format!("opening database {}", database_location(config)))?;
    let http = HttpMetrics::start()?;
    let (cache, startup_problem) = build_cache_checked(config, Some(http.recorder())).await?;
    Ok(App {
        repo: Repo::new(db, cache),
        http,
        startup_problem,
    })
}

/// The database of `config` for messages: the file, or the URL without its password.
fn database_location(config: &Config) -> String {
    db::Location::of(&config.database).display()
}

/// The version of the cached values' format. Part of the cache namespace
/// ([`cache_namespace`]), so that a deploy that changes what is cached (a field added to a
/// cached type, a different meaning) never reads the bytes an older deploy wrote to the shared
/// Redis: it starts on an empty namespace, and the old one expires by its TTLs.
/// **Bump it whenever a cached type's serialized form changes.**
pub const CACHE_SCHEMA_VERSION: u32 = 1;

/// The cache namespace of a deployment: its prefix (`--namespace`, the plan's `KEY_PREFIX`) and
/// [`CACHE_SCHEMA_VERSION`], e.g. `catalog.v1` (a namespace has no `:`: see
/// [`cache_core::validate_namespace`]).
pub fn cache_namespace(prefix: &str) -> String {
    format!("{prefix}.v{CACHE_SCHEMA_VERSION}")
}

/// The cache alone (no database): what `catalog clear` acts on. Fails if Redis refuses the
/// credentials of `REDIS_URL`, unless `--allow-degraded` (see [`build_cache_checked`]).
pub async fn build_cache(config: &Config) -> anyhow::Result<Cache> {
    Ok(build_cache_checked(config, None).await?.0)
}

/// Builds the cache after checking that Redis accepts the credentials of `REDIS_URL`: a refusal
/// is a configuration error (the message names the user and the redacted URL, never the
/// password), or with `--allow-degraded` a warning, returned as the problem the service starts
/// with. Redis merely unreachable is no such error: the service runs on L1 until it answers.
/// The cache reports its statistics to `recorder` (the instance's `/metrics`), if given.
pub async fn build_cache_checked(
    config: &Config,
    recorder: Option<Arc<dyn metrics::Recorder + Send + Sync>>,
) -> anyhow::Result<(Cache, Option<String>)> {
    let mut problem = None;
    if let Some(url) = &config.redis_url
        && let Some(wrong) = config::redis_url_problem(url)
    {
        anyhow::bail!("{wrong}");
    }
    if let Some(url) = &config.redis_url
        && let Some(refused) = ops::redis_credentials_refused(url).await
    {
        if !config.allow_degraded {
            anyhow::bail!(
                "{refused}. Fix REDIS_URL (or --redis-url), or pass --allow-degraded \
                 (CATALOG_ALLOW_DEGRADED=1) to serve from L1 and the database without Redis"
            );
        }
        tracing::warn!(
            "{refused}; starting degraded (--allow-degraded): serving from L1 and the database, \
             /health/ready answers 503 until Redis accepts the credentials"
        );
        problem = Some(refused);
    }
    let builder = config
        .redis_target(
            Cache::builder()
                .namespace(cache_namespace(&config.namespace))
                .l1_capacity_bytes(config.l1_capacity_bytes()),
        )?
        .metrics_prefix(http::metrics::CACHE_PREFIX);
    let builder = match recorder {
        Some(recorder) => builder.metrics_recorder(recorder),
        None => builder,
    };
    // What the check above cannot see (a TLS handshake that fails, credentials refused over
    // TLS, an ACL that denies the namespace) the build reports: an error, or with
    // --allow-degraded the problem the service starts with.
    let cache = match builder.clone().build().await {
        Err(cache_core::Error::Config(e))
            if config.allow_degraded
                && matches!(
                    e.kind(),
                    cache_core::error::ConfigErrorKind::Auth
                        | cache_core::error::ConfigErrorKind::Tls
                ) =>
        {
            if problem.is_none() {
                tracing::warn!(
                    "{e}; starting degraded (--allow-degraded): serving from L1 and the \
                     database, /health/ready answers 503 until Redis accepts the cache"
                );
                problem = Some(e.message().to_owned());
            }
            builder.start_degraded_if_refused(true).build().await
        }
        built => built,
    }
    .context("building the cache")?;
    if !cache.has_l2() {
        tracing::info!(
            "no Redis (REDIS_URL, REDIS_SENTINEL or REDIS_CLUSTER): serving from L1 and the database"
        );
    }
    Ok((cache, problem))
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
        let server = Server::serve_with_limits(app, config.listen, config.limits).await?;
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

    /// Serves `app` on `listen` with the default [`Limits`].
    pub async fn serve(app: App, listen: SocketAddr) -> anyhow::Result<Server> {
        Server::serve_with_limits(app, listen, Limits::DEFAULT).await
    }

    /// Serves `app` on `listen` within `limits` (see [`server`]).
    pub async fn serve_with_limits(
        app: App,
        listen: SocketAddr,
        limits: Limits,
    ) -> anyhow::Result<Server> {
        let router = router(AppState::of(&app, &limits), &limits);
        Server::serve_router(app, listen, limits, router).await
    }

    /// Serves `router` (built over `app`) on `listen` within `limits`: the one server loop of the
    /// service and of its ceiling mode.
    pub(crate) async fn serve_router(
        app: App,
        listen: SocketAddr,
        limits: Limits,
        router: axum::Router,
    ) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let metrics = app.http.clone();
        let task = tokio::spawn(server::serve(listener, router, limits, metrics, async {
            let _ = rx.await;
        }));
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

    /// Serves until one of `signals` (Ctrl-C, SIGTERM), then shuts down gracefully: stops
    /// accepting, lets the requests in progress finish (for `--shutdown-timeout` at most), and
    /// returns.
    pub async fn run_until_signal(self, mut signals: ShutdownSignals) -> anyhow::Result<()> {
        let signal = signals.recv().await?;
        tracing::info!(signal, "shutting down");
        self.shutdown().await
    }
}

/// The signals that stop the server: Ctrl-C (SIGINT) and, on Unix, SIGTERM (what `kill`,
/// systemd and container runtimes send). Listened to from [`ShutdownSignals::listen`] on, so
/// that a signal sent as soon as the server says it is up is not missed (nor kills the process
/// by the default action).
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Starts listening (needs a tokio runtime).
    pub fn listen() -> anyhow::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignals {})
        }
    }

    /// Waits for one; its name.
    pub async fn recv(&mut self) -> anyhow::Result<&'static str> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Ok("SIGINT"),
                _ = self.terminate.recv() => Ok("SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .context("listening for Ctrl-C")?;
            Ok("Ctrl-C")
        }
    }
}

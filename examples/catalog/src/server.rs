//! The HTTP server loop: accepts connections up to a limit and serves each with hyper, bounded in
//! time ([`Limits`]); stops gracefully.
//!
//! What bounds what:
//! - connections: a semaphore of `max_connections` permits around `accept`; a connection over
//!   the limit is closed at once (so a new client is refused fast rather than left waiting
//!   behind idle sockets), and counted in `/metrics`;
//! - a slow or silent client: hyper's `header_read_timeout` closes a connection whose request
//!   head is not complete in time (from its opening, or from the end of the previous response);
//! - an idle kept-alive connection: closed after `idle_timeout` with no request in progress
//!   (hyper's graceful shutdown of the connection);
//! - a request: `tower_http`'s timeout and body limit (see [`crate::http::router`]);
//! - shutdown: stop accepting, let the requests in progress finish for `shutdown_timeout`, then
//!   close what is left.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::config::Limits;
use crate::http::metrics::HttpMetrics;

/// File descriptors kept free below the open-file limit for the database, Redis and logs.
const RESERVED_FDS: u64 = 64;
/// Pause after `accept` failed for want of file descriptors (or memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connection limit actually applied: `configured`, lowered to stay [`RESERVED_FDS`] below
/// the process's open-file limit (past which `accept` itself would fail and no client, not even
/// one to be refused, could be reached).
pub fn effective_max_connections(configured: u32) -> usize {
    let configured = configured as usize;
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return configured;
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    if room < configured {
        tracing::warn!(
            configured,
            applied = room.max(1),
            open_file_limit = soft,
            "--max-connections lowered to stay below the open-file limit (ulimit -n)"
        );
    }
    configured.min(room).max(1)
}

/// Serves `router` on `listener` until `shutdown` completes, then shuts down gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<HttpMetrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(effective_max_connections(
        limits.max_connections,
    )));
    let (close_tx, close_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, peer)) => {
                        tracing::trace!(%peer, "connection accepted");
                        stream
                    }
                    Err(e) => {
                        if !is_per_connection_error(&e) {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                        }
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("connection limit reached: connection closed");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(serve_connection(
                    stream,
                    router.clone(),
                    limits,
                    close_rx.clone(),
                    permit,
                    Arc::clone(&metrics),
                ));
            }
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "stopped accepting; finishing the requests in progress"
    );
    // Every connection task sees the channel close and shuts its connection down gracefully.
    drop(close_tx);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            timeout = ?limits.shutdown_timeout,
            "connections still open after the shutdown timeout: closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Errors of `accept` that concern one connection only (retry at once); any other (out of file
/// descriptors, of memory) calls for a pause.
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// When a connection was last busy, and whether it is now: for the idle timeout.
#[derive(Debug)]
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `started` at the end of the last request (or 0).
    last_done_ms: AtomicU64,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// When the connection will have been idle for `idle`, if it is idle now.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = self.started + Duration::from_millis(self.last_done_ms.load(Ordering::SeqCst));
        Some(last + idle)
    }
}

/// A request in progress on a connection; its end (even by cancellation) is recorded.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(ms, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a connection as open while it lives.
struct OpenConnection(Arc<HttpMetrics>);

impl OpenConnection {
    fn new(metrics: Arc<HttpMetrics>) -> OpenConnection {
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection (HTTP/1.1) until the client closes it, a timeout closes it, or the
/// server shuts down (`close` closed: the request in progress finishes, then it closes).
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    mut close: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
    metrics: Arc<HttpMetrics>,
) {
    let _open = OpenConnection::new(metrics);
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
    });
    let service = {
        let activity = Arc::clone(&activity);
        tower::service_fn(move |req: Request<Incoming>| {
            let in_flight = activity.begin();
            let router = router.clone();
            async move {
                let response = router.oneshot(req).await;
                drop(in_flight);
                response
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut conn = pin!(conn);
    let mut closing = false;
    loop {
        let idle_check = activity
            .idle_deadline(limits.idle_timeout)
            .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = close.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(idle_check.into()), if !closing => {
                if activity
                    .idle_deadline(limits.idle_timeout)
                    .is_some_and(|deadline| deadline <= Instant::now())
                {
                    tracing::trace!("idle connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

//! Test harness for tiercache: throwaway `redis-server` processes.
//!
//! Every [`RedisServer`] is a fresh `redis-server` child process listening on
//! a free port of `127.0.0.1`, with its own temporary directory, persistence
//! disabled and `DEBUG` enabled. The process is killed when the value is
//! dropped. The harness never connects to `127.0.0.1:6379` or to any server it
//! did not start: readiness is confirmed by checking that the server answering
//! on the port uses this instance's temporary directory.
//!
//! The whole API is synchronous except [`RedisServer::connection`], so it works
//! both from plain `#[test]` functions and from inside a tokio runtime
//! (`stop`/`restart` block the calling thread for a bounded time only).
//!
//! The binary is `redis-server` from `PATH`, or the path in the
//! `REDIS_SERVER_BIN` environment variable.
//!
//! [`SentinelGroup`] (a master, a replica, three sentinels) and [`RedisCluster`] (primaries,
//! replicas, slot moves) are built from these servers.
//!
//! [`RedisServer::start_tls`] also listens with TLS on a second free port, with
//! a fresh test PKI ([`TestCertificates`]: a CA, the server's certificate, a
//! client certificate for mutual TLS). The plain port stays open on loopback for
//! the harness's own readiness probe and for tests' administration (`ACL
//! SETUSER`, `CONFIG SET`); the clients under test use [`RedisServer::tls_url`].
//!
//! ```no_run
//! use tiercache_tests::RedisServer;
//!
//! let mut server = RedisServer::start_with_args(&["--maxmemory", "2mb"]);
//! let mut conn = server.client().get_connection().expect("connect");
//! let pong: String = redis::cmd("PING").query(&mut conn).expect("PING");
//! assert_eq!(pong, "PONG");
//! server.stop(); // connections are now refused
//! server.restart(); // same port, same args, empty data set
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod redis_cluster;
mod sentinel_group;
mod tls_certs;

pub use redis_cluster::RedisCluster;
pub use sentinel_group::{MASTER_NAME, SentinelGroup};
pub use tls_certs::TestCertificates;

/// Environment variable naming the `redis-server` binary to run.
pub const REDIS_SERVER_BIN_ENV: &str = "REDIS_SERVER_BIN";

/// How long to wait for a freshly spawned server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// After this long alive, a server that logged nothing is assumed to own its port.
const PROBE_GRACE: Duration = Duration::from_millis(1000);
/// How many times to try a new port when the chosen one was taken meanwhile.
const START_ATTEMPTS: u32 = 5;
/// How many times `restart` retries its (fixed) port if it is taken.
const RESTART_ATTEMPTS: u32 = 5;
/// The well-known Redis port; never used, so a developer's own server is safe.
const DEFAULT_REDIS_PORT: u16 = 6379;

const LOG_FILE: &str = "redis.log";
const STDIO_FILE: &str = "redis.stdio.log";

/// A `redis-server` process owned by a test. Killed on drop.
pub struct RedisServer {
    child: Mutex<Option<Child>>,
    port: u16,
    bin: OsString,
    extra_args: Vec<String>,
    /// The TLS listener, for servers from [`RedisServer::start_tls`].
    tls: Option<TlsListener>,
    /// Canonical path of `_dir`; what `CONFIG GET dir` reports.
    dir_path: PathBuf,
    log_path: PathBuf,
    stdio_path: PathBuf,
    // Declared last so the directory outlives everything that refers to it.
    _dir: TempDir,
}

/// The TLS side of a server: its port, its certificates and whether clients must present one.
struct TlsListener {
    port: u16,
    certificates: TestCertificates,
    require_client_certificate: bool,
}

/// The files of the server's side of the test PKI, in its directory.
const TLS_FILES: [&str; 3] = ["tls-ca.pem", "tls-server.pem", "tls-server.key"];

/// Why one spawn attempt failed.
enum SpawnError {
    /// The port was taken by someone else; retrying (elsewhere or later) may help.
    PortInUse,
    /// Anything else; retrying will not help.
    Fatal(String),
}

impl RedisServer {
    /// Starts a server on a free loopback port in a fresh temporary directory.
    ///
    /// Panics (with the server log) if it does not become ready within ~10 s.
    pub fn start() -> RedisServer {
        Self::start_with_args(&[])
    }

    /// Like [`start`](Self::start), with extra `redis-server` arguments
    /// appended after the harness's own (so they take precedence), e.g.
    /// `&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]`.
    pub fn start_with_args(extra: &[&str]) -> RedisServer {
        let bin = std::env::var_os(REDIS_SERVER_BIN_ENV)
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "redis-server".into());
        Self::start_bin_with_args(bin, extra)
    }

    /// Like [`start_with_args`](Self::start_with_args), running `bin` instead of
    /// the binary [`REDIS_SERVER_BIN_ENV`] names (for tools that take it as an
    /// option, such as the catalog's load generator).
    pub fn start_bin_with_args(bin: impl Into<OsString>, extra: &[&str]) -> RedisServer {
        Self::start_inner(bin.into(), extra, None)
    }

    /// Like [`start`](Self::start), also listening with TLS on a second free port
    /// ([`tls_url`](Self::tls_url)) with a fresh test PKI
    /// ([`certificates`](Self::certificates)). With `require_client_certificate`
    /// (`--tls-auth-clients yes`) a client must present a certificate signed by
    /// the test CA (mutual TLS); otherwise none is asked for.
    pub fn start_tls(require_client_certificate: bool) -> RedisServer {
        let bin = std::env::var_os(REDIS_SERVER_BIN_ENV)
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "redis-server".into());
        let tls = TlsListener {
            port: 0,
            certificates: TestCertificates::generate(),
            require_client_certificate,
        };
        Self::start_inner(bin, &[], Some(tls))
    }

    fn start_inner(bin: OsString, extra: &[&str], tls: Option<TlsListener>) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("tiercache-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis-server: {e}"));
        let dir_path = dir
            .path()
            .canonicalize()
            .unwrap_or_else(|e| panic!("cannot canonicalize {}: {e}", dir.path().display()));
        let mut server = RedisServer {
            child: Mutex::new(None),
            port: 0,
            bin,
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            tls,
            log_path: dir_path.join(LOG_FILE),
            stdio_path: dir_path.join(STDIO_FILE),
            dir_path,
            _dir: dir,
        };

        if let Some(tls) = &server.tls {
            let c = &tls.certificates;
            for (file, pem) in
                TLS_FILES
                    .iter()
                    .zip([&c.ca_pem, &c.server_cert_pem, &c.server_key_pem])
            {
                let path = server.dir_path.join(file);
                fs::write(&path, pem)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            }
        }
        let mut taken = Vec::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            if let Some(tls) = &mut server.tls {
                tls.port = loop {
                    let port = free_port();
                    if port != server.port {
                        break port;
                    }
                };
            }
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(SpawnError::PortInUse) => taken.push(server.port),
                Err(SpawnError::Fatal(msg)) => server.fail(&msg),
            }
        }
        server.fail(&format!(
            "every port tried was already in use: {taken:?} ({START_ATTEMPTS} attempts)"
        ))
    }

    /// The TCP port the server listens on (on 127.0.0.1). Stable across
    /// [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `rediss://127.0.0.1:TLS_PORT/0`, for a server from [`start_tls`](Self::start_tls). Panics
    /// for a server without TLS.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.tls_listener().port)
    }

    /// The TLS port, for a server from [`start_tls`](Self::start_tls).
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|t| t.port)
    }

    /// The test PKI of a server from [`start_tls`](Self::start_tls). Panics for a server without
    /// TLS.
    pub fn certificates(&self) -> &TestCertificates {
        &self.tls_listener().certificates
    }

    /// A redis-rs client of the TLS port that trusts the test CA and presents the client
    /// certificate (connects lazily). Panics for a server without TLS.
    pub fn tls_client(&self) -> redis::Client {
        let c = self.certificates();
        redis::Client::build_with_tls(
            self.tls_url(),
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: c.client_cert_pem.clone().into_bytes(),
                    client_key: c.client_key_pem.clone().into_bytes(),
                }),
                root_cert: Some(c.ca_pem.clone().into_bytes()),
            },
        )
        .unwrap_or_else(|e| panic!("cannot build a TLS client of {}: {e}", self.tls_url()))
    }

    fn tls_listener(&self) -> &TlsListener {
        self.tls
            .as_ref()
            .unwrap_or_else(|| panic!("this server was not started with TLS (start_tls)"))
    }

    /// A client for this server (connects lazily).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("invalid redis url {}: {e}", self.url()))
    }

    /// A multiplexed async connection (needs a tokio runtime). Panics with the
    /// server log if connecting fails.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        match self.client().get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(e) => self.fail(&format!("cannot connect to {}: {e}", self.url())),
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit; afterwards
    /// connections to [`port`](Self::port) are refused. No-op if not running.
    pub fn stop(&mut self) {
        let child = lock(&self.child).take();
        if let Some(child) = child {
            kill_and_reap(child);
        }
    }

    /// Stops the server if needed, then starts it again on the same port with
    /// the same arguments and waits until it answers. The data set starts
    /// empty (persistence is off). Panics with the log on failure.
    pub fn restart(&mut self) {
        self.stop();
        for attempt in 1..=RESTART_ATTEMPTS {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(SpawnError::PortInUse) if attempt < RESTART_ATTEMPTS => {
                    thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                }
                Err(SpawnError::PortInUse) => self.fail(&format!(
                    "cannot restart: port {} is taken by another process",
                    self.port
                )),
                Err(SpawnError::Fatal(msg)) => self.fail(&format!("cannot restart: {msg}")),
            }
        }
    }

    /// Whether the server process is alive (false after [`stop`](Self::stop),
    /// and also once it exited by itself, e.g. after `SHUTDOWN`).
    pub fn is_running(&self) -> bool {
        let mut guard = lock(&self.child);
        let exited = match guard.as_mut() {
            None => return false,
            Some(child) => !matches!(child.try_wait(), Ok(None)),
        };
        if exited {
            // Reaped (or unusable); forget it so `stop` has nothing to do.
            *guard = None;
        }
        !exited
    }

    /// The server's log file (plus anything it printed on stdout/stderr, such
    /// as config errors reported before the log file is opened). Meant for
    /// panic messages.
    pub fn log(&self) -> String {
        let mut out = read_lossy(&self.log_path, 0)
            .unwrap_or_else(|e| format!("<no log at {}: {e}>\n", self.log_path.display()));
        if let Ok(stdio) = read_lossy(&self.stdio_path, 0)
            && !stdio.trim().is_empty()
        {
            out.push_str("--- redis-server stdout/stderr ---\n");
            out.push_str(&stdio);
        }
        out
    }

    /// The server's working directory (a temporary directory removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The OS process id, if the server is running.
    pub fn pid(&self) -> Option<u32> {
        if self.is_running() {
            lock(&self.child).as_ref().map(Child::id)
        } else {
            None
        }
    }

    /// Panics with `msg`, the server's identity and its log.
    fn fail(&self, msg: &str) -> ! {
        panic!(
            "test redis-server ({:?}, port {}, dir {}): {msg}\n--- redis-server log ---\n{}",
            self.bin,
            self.port,
            self.dir_path.display(),
            self.log()
        )
    }

    /// Spawns the server on `self.port` and waits until it is ready.
    fn spawn_and_wait(&mut self) -> Result<(), SpawnError> {
        debug_assert!(lock(&self.child).is_none());
        let log_offset = file_len(&self.log_path);
        let stdio_offset = file_len(&self.stdio_path);
        let stdio = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stdio_path)
            .map_err(|e| {
                SpawnError::Fatal(format!("cannot open {}: {e}", self.stdio_path.display()))
            })?;
        let stdio_err = stdio
            .try_clone()
            .map_err(|e| SpawnError::Fatal(format!("cannot dup stdio file: {e}")))?;

        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir_path)
            .arg("--logfile")
            .arg(&self.log_path);
        if supports_enable_debug_command(&self.bin) {
            cmd.args(["--enable-debug-command", "yes"]);
        }
        if let Some(tls) = &self.tls {
            let [ca, cert, key] = TLS_FILES.map(|f| self.dir_path.join(f));
            cmd.arg("--tls-port")
                .arg(tls.port.to_string())
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-auth-clients")
                .arg(if tls.require_client_certificate {
                    "yes"
                } else {
                    "no"
                });
        }
        cmd.args(&self.extra_args)
            .current_dir(&self.dir_path)
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stdio_err);

        let child = cmd.spawn().map_err(|e| {
            SpawnError::Fatal(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "cannot run {:?}: not found. Install redis-server (scripts/test.sh does) \
                     or set {REDIS_SERVER_BIN_ENV} to its path",
                    self.bin
                )
            } else {
                format!("cannot run {:?}: {e}", self.bin)
            })
        })?;
        *lock(&self.child) = Some(child);

        let spawned_at = Instant::now();
        let deadline = spawned_at + READY_TIMEOUT;
        loop {
            // Exited already? Then decide whether another port may help.
            let status = match lock(&self.child).as_mut() {
                Some(child) => child.try_wait(),
                None => Ok(None),
            };
            match status {
                Ok(None) => {}
                Ok(Some(status)) => {
                    *lock(&self.child) = None;
                    let new_output = format!(
                        "{}{}",
                        read_lossy(&self.log_path, log_offset).unwrap_or_default(),
                        read_lossy(&self.stdio_path, stdio_offset).unwrap_or_default()
                    );
                    return Err(if new_output.contains("Address already in use") {
                        SpawnError::PortInUse
                    } else {
                        SpawnError::Fatal(format!("redis-server exited early with {status}"))
                    });
                }
                Err(e) => {
                    self.stop();
                    return Err(SpawnError::Fatal(format!("cannot poll redis-server: {e}")));
                }
            }

            // Only connect once our process owns the port, so a foreign
            // listener that won the race is never sent a byte: redis logs
            // "Ready to accept connections" after binding, and a failed bind
            // exits at once, so a process still alive after PROBE_GRACE has
            // bound too (that covers `--loglevel warning`, which hides the
            // line). The `dir` check in `probe` is a second safety net.
            let owns_port = spawned_at.elapsed() >= PROBE_GRACE
                || read_lossy(&self.log_path, log_offset)
                    .is_ok_and(|log| log.contains("Ready to accept connections"));
            let probe_error = if owns_port {
                match self.probe() {
                    Ok(true) => return Ok(()),
                    Ok(false) => "port answered by a server that is not ours".to_owned(),
                    Err(e) => e,
                }
            } else {
                "not listening yet".to_owned()
            };
            if Instant::now() >= deadline {
                self.stop();
                return Err(SpawnError::Fatal(format!(
                    "not ready after {READY_TIMEOUT:?} (last probe: {probe_error})"
                )));
            }
            thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Connects, PINGs, and checks the server is ours (same `dir`).
    fn probe(&self) -> Result<bool, String> {
        let timeout = Duration::from_millis(500);
        let mut conn = self
            .client()
            .get_connection_with_timeout(timeout)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        let pong: String = redis::cmd("PING")
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        let dir: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dir")
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        Ok(dir
            .get(1)
            .and_then(|d| Path::new(d).canonicalize().ok())
            .is_some_and(|d| d == self.dir_path))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(child) = child {
            kill_and_reap(child);
        }
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = lock(&self.child).as_ref().map(Child::id);
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("tls_port", &self.tls_port())
            .field("pid", &pid)
            .field("bin", &self.bin)
            .field("extra_args", &self.extra_args)
            .field("dir", &self.dir_path)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// SIGKILL then wait; a process that already exited is just reaped.
fn kill_and_reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A currently free port on 127.0.0.1 (never 6379). The listener is released
/// before returning, so another process may grab it: callers retry.
fn free_port() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
        if port != DEFAULT_REDIS_PORT {
            return port;
        }
    }
    panic!("the OS keeps handing out port {DEFAULT_REDIS_PORT}")
}

/// `--enable-debug-command` exists from Redis 7.0 (older versions reject the
/// option, and allow `DEBUG` anyway). Unknown version: assume a new server.
fn supports_enable_debug_command(bin: &OsString) -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(out) = Command::new(bin).arg("--version").output() else {
            return true;
        };
        // "Redis server v=7.0.15 sha=..."
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .and_then(|v| v.split('.').next())
            .and_then(|major| major.parse::<u32>().ok())
            .is_none_or(|major| major >= 7)
    })
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The file's contents from byte `offset`, lossily decoded.
fn read_lossy(path: &Path, offset: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

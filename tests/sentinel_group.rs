//! A Redis Sentinel group for tests: a master and a replica ([`RedisServer`]s) and three
//! sentinels (`redis-server <conf> --sentinel`, each in its own temporary directory, on free
//! loopback ports), all killed on drop. [`SentinelGroup::failover`] runs `SENTINEL FAILOVER` and
//! waits (polling, bounded) until every sentinel names the new master.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{REDIS_SERVER_BIN_ENV, RedisServer, free_port, kill_and_reap};

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "mymaster";
/// Bound on each wait of the group (start, failover).
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// One sentinel process.
#[derive(Debug)]
struct Sentinel {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Sentinel {
    fn start(master_port: u16) -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix("tiercache-sentinel-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for a sentinel: {e}"));
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir \"{dir}\"\nlogfile \"{dir}/sentinel.log\"\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 5000\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n",
            dir = dir.path().display()
        );
        fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let bin = std::env::var_os(REDIS_SERVER_BIN_ENV)
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "redis-server".into());
        let child = Command::new(bin)
            .arg(&conf)
            .arg("--sentinel")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server --sentinel: {e}"));
        Sentinel {
            child: Some(child),
            port,
            dir,
        }
    }

    fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("sentinel URL")
    }

    /// Runs `cmd` on this sentinel (a fresh connection, bounded).
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        cmd.query(&mut conn)
    }

    /// The port of the master this sentinel names.
    fn master_port(&self) -> Option<u16> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME);
        self.query::<(String, u16)>(&cmd).ok().map(|(_, port)| port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_reap(child);
        }
    }
}

/// A master, its replica and three sentinels.
#[derive(Debug)]
pub struct SentinelGroup {
    /// The servers, master first at the start (see [`SentinelGroup::master_port`] after a
    /// failover).
    pub servers: [RedisServer; 2],
    sentinels: Vec<Sentinel>,
}

impl SentinelGroup {
    /// Starts the master, the replica (waiting until it replicates), then the sentinels (waiting
    /// until each knows the replica, so that a failover can pick it).
    pub fn start() -> SentinelGroup {
        let master = RedisServer::start();
        let port = master.port().to_string();
        let replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &port]);
        wait_for("the replica's link to the master", || {
            info(&replica, "replication").contains("master_link_status:up")
        });
        let sentinels = (0..3).map(|_| Sentinel::start(master.port())).collect();
        let group = SentinelGroup {
            servers: [master, replica],
            sentinels,
        };
        for sentinel in &group.sentinels {
            let mut replicas = redis::cmd("SENTINEL");
            replicas.arg("REPLICAS").arg(MASTER_NAME);
            group.wait_or_fail("each sentinel to know the replica", || {
                sentinel
                    .query::<Vec<redis::Value>>(&replicas)
                    .is_ok_and(|r| !r.is_empty())
            });
        }
        group
    }

    /// `host:port` of each sentinel.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The port of the master, as the first sentinel that answers names it (polled: a sentinel
    /// busy with a failover may not answer at once).
    pub fn master_port(&self) -> u16 {
        let mut port = None;
        self.wait_or_fail("a sentinel to name the master", || {
            port = self.sentinels.iter().find_map(Sentinel::master_port);
            port.is_some()
        });
        port.unwrap_or_else(|| self.fail("no sentinel names a master"))
    }

    /// The server the sentinels name master now.
    pub fn master(&self) -> &RedisServer {
        let port = self.master_port();
        self.servers
            .iter()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| self.fail("the master is none of the group's servers"))
    }

    /// `SENTINEL FAILOVER` (retried while the sentinel has no replica it may promote yet), then
    /// waits until every sentinel names the other server. Returns the new master's port.
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        let mut failover = redis::cmd("SENTINEL");
        failover.arg("FAILOVER").arg(MASTER_NAME);
        self.wait_or_fail("SENTINEL FAILOVER to be accepted", || {
            self.sentinels[0].query::<String>(&failover).is_ok()
        });
        self.wait_or_fail("every sentinel to name the new master", || {
            self.sentinels
                .iter()
                .all(|s| s.master_port().is_some_and(|p| p != old))
        });
        self.master_port()
    }

    fn wait_or_fail(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            if Instant::now() >= deadline {
                self.fail(&format!("timed out waiting for {what}"));
            }
            thread::sleep(POLL);
        }
    }

    fn fail(&self, msg: &str) -> ! {
        let logs: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("--- sentinel {} ---\n{}", s.port, s.log()))
            .collect();
        panic!("sentinel group: {msg}\n{}", logs.join("\n"))
    }
}

/// A section of `INFO` of `server` (empty if it does not answer).
pub fn info(server: &RedisServer, section: &str) -> String {
    let Ok(mut conn) = server
        .client()
        .get_connection_with_timeout(Duration::from_millis(500))
    else {
        return String::new();
    };
    redis::cmd("INFO")
        .arg(section)
        .query(&mut conn)
        .unwrap_or_default()
}

/// Polls `done` every 20 ms for up to 20 s; panics naming `what` if it never holds.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(POLL);
    }
}

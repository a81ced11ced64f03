//! The master of a Redis Sentinel group: found by asking the sentinels, followed after a
//! failover without a restart.
//!
//! Resolution asks every sentinel at once for the master's address
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME`) and its configuration epoch (`SENTINEL MASTER`), and
//! takes the address of the highest epoch. Why not the first answer (what redis-rs's
//! `sentinel::SentinelClient` does: the first sentinel whose master reports `ROLE` master): after
//! `SENTINEL FAILOVER`, only the sentinel that ran it knows the new master at first (the others
//! learn it from its hello messages, up to 2 s later), and the old master keeps reporting `ROLE`
//! master until a sentinel demotes it (seconds later again). The first answer can therefore name
//! the old master, and writes sent there are lost when it becomes a replica. The epoch of the
//! failover is the sentinels' own tie-breaker, so it is ours.
//!
//! Following: the store's connection to the master is checked `ROLE` master when opened; a
//! background watch ([`watch`]) resolves again every [`WATCH_EVERY`] and, when the master moved,
//! bumps a generation counter, which makes the store and the backplane drop their connections
//! and reconnect to the new master; a `READONLY` reply (a demoted master) does the same at once.
//! Calls meanwhile fail fast or time out and are served as with Redis down (never a failed cache
//! call). What remains is Redis's own: a write acknowledged by the old master after the
//! promotion and before this instance moved (at most [`WATCH_EVERY`] after the sentinels knew) is
//! lost with the old master's data; `min-replicas-to-write 1` on the servers bounds that window
//! on the server side.
//!
//! Owns the sentinels' addresses, the resolution and the generation; knows no key layout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// How often the watch asks the sentinels where the master is.
pub(crate) const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The sentinels of one master name, and where that master is as last seen.
pub(crate) struct SentinelTarget {
    master_name: String,
    sentinels: Vec<redis::Client>,
    /// Credentials, database and TLS of the master's connections (their address is resolved).
    node: ConnectionInfo,
    /// Open connections to the sentinels, by index (`None`: to be opened).
    links: tokio::sync::Mutex<Vec<Option<MultiplexedConnection>>>,
    /// The master the store's connections go to (`None`: not resolved yet).
    current: Mutex<Option<ConnectionAddr>>,
    generation: AtomicU64,
}

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|c| c.get_connection_info().addr().to_string())
            .collect();
        f.debug_struct("SentinelTarget")
            .field("master_name", &self.master_name)
            .field("sentinels", &sentinels)
            .field("master", &*self.current.lock())
            .finish()
    }
}

impl SentinelTarget {
    /// `sentinels`: their URLs (`redis://host:26379`, with their own credentials); `node`: a URL
    /// whose credentials, database and scheme the master's connections use (its host is ignored).
    pub(crate) fn new(
        master_name: &str,
        sentinels: &[String],
        node: &str,
    ) -> redis::RedisResult<SentinelTarget> {
        let sentinels = sentinels
            .iter()
            .map(|url| redis::Client::open(url.as_str()))
            .collect::<redis::RedisResult<Vec<_>>>()?;
        if sentinels.is_empty() || master_name.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "Sentinel needs a master name and at least one sentinel",
            )));
        }
        Ok(SentinelTarget {
            master_name: master_name.to_owned(),
            links: tokio::sync::Mutex::new(vec![None; sentinels.len()]),
            sentinels,
            node: node.into_connection_info()?,
            current: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// Credentials, database and TLS of the master's connections.
    pub(crate) fn node(&self) -> &ConnectionInfo {
        &self.node
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets the master (a `READONLY` reply): connections of this generation are dropped and
    /// the next one resolves again.
    pub(crate) fn invalidate(&self) {
        let mut current = self.current.lock();
        *current = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Connects to the master the sentinels name now, and checks that it is one (`ROLE`).
    /// Returns the connection and the generation it belongs to: read under the same lock that
    /// records the master, so that a move seen by the watch afterwards outdates it.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> redis::RedisResult<(MultiplexedConnection, u64)> {
        let addr = self.resolve().await?;
        let client = redis::Client::open(self.node.clone().set_addr(addr.clone()))?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        let is_master = matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master");
        if !is_master {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                "the node Sentinel names is not (yet) a master",
                addr.to_string(),
            )));
        }
        let mut current = self.current.lock();
        if current.as_ref() != Some(&addr) {
            if current.is_some() {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            *current = Some(addr);
        }
        Ok((conn, self.generation()))
    }

    /// The master's address by the highest configuration epoch among the sentinels that answer.
    async fn resolve(&self) -> redis::RedisResult<ConnectionAddr> {
        let mut links = self.links.lock().await;
        let answers = join_all(
            links
                .iter_mut()
                .zip(&self.sentinels)
                .map(|(link, sentinel)| ask(link, sentinel, &self.master_name)),
        )
        .await;
        let mut best: Option<(u64, ConnectionAddr)> = None;
        let mut last_error = None;
        for answer in answers {
            match answer {
                Ok((epoch, (host, port))) if best.as_ref().is_none_or(|(e, _)| epoch > *e) => {
                    best = Some((epoch, self.master_addr(host, port)));
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
        }
        match (best, last_error) {
            (Some((_, addr)), _) => Ok(addr),
            (None, Some(e)) => Err(e),
            (None, None) => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no sentinel answered",
            ))),
        }
    }

    /// Resolves again; if the master moved, bumps the generation (the connections follow).
    async fn check(&self) {
        let Ok(addr) = self.resolve().await else {
            return;
        };
        let mut current = self.current.lock();
        if current.as_ref().is_some_and(|c| *c != addr) {
            tracing::info!(master = %addr, name = %self.master_name, "Sentinel names a new master: reconnecting");
            *current = None;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn master_addr(&self, host: String, port: u16) -> ConnectionAddr {
        match self.node.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        }
    }
}

/// Asks one sentinel (opening its link if needed): (config epoch, master address).
async fn ask(
    link: &mut Option<MultiplexedConnection>,
    sentinel: &redis::Client,
    name: &str,
) -> redis::RedisResult<(u64, (String, u16))> {
    let bound = Duration::from_secs(1);
    let work = async {
        let conn = match link {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(bound))
                    .set_response_timeout(Some(bound));
                link.insert(
                    sentinel
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(name);
        pipe.cmd("SENTINEL").arg("MASTER").arg(name);
        let ((host, port), master): ((String, u16), Vec<String>) = pipe.query_async(conn).await?;
        let epoch = master
            .chunks_exact(2)
            .find(|kv| kv[0] == "config-epoch")
            .and_then(|kv| kv[1].parse().ok())
            .unwrap_or(0);
        Ok::<_, redis::RedisError>((epoch, (host, port)))
    };
    let result = match tokio::time::timeout(bound, work).await {
        Ok(r) => r,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "sentinel did not answer in time",
        ))),
    };
    if result.is_err() {
        *link = None;
    }
    result
}

/// Re-resolves the master every [`WATCH_EVERY`] while `owner` lives.
pub(crate) fn watch<T: Send + Sync + 'static>(target: Arc<SentinelTarget>, owner: Weak<T>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while owner.strong_count() > 0 {
            every.tick().await;
            target.check().await;
        }
    });
}

//! Which Redis deployment the L2 talks to, and the one connection type the store uses on all of
//! them: a single server (plain, TLS, ACL: a redis-rs `Client`), a master found through Redis
//! Sentinel ([`super::sentinel`]), or a Redis Cluster (redis-rs's `cluster_async` client, which
//! follows `MOVED`/`ASK` redirections and retries `TRYAGAIN` itself, so a resharding is a little
//! slower, never "Redis down").
//!
//! What differs on a cluster, and is handled here so that the store's operations stay the same:
//! - a pipeline is sent to one node, so [`SlotPipeline`] groups commands by hash slot and sends
//!   one pipeline per slot (concurrently); within a slot the order is kept;
//! - `SCAN` sees one node's keys, so [`L2Connection::scan_nodes`] lists every primary and the
//!   callers scan each ([`L2Connection::scan_page`]);
//! - `INFO` is answered by one primary ([`L2Connection::info`]), not merged across nodes.
//!
//! `MGET` across slots is split by redis-rs and its replies put back in order. Owns the
//! connection type and the routing; knows no key layout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::scripts::query_pipeline;
use super::sentinel::SentinelTarget;

/// Where the L2 is.
// One per cache, cloned only when a connection opens: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Deployment {
    /// One server (its URL's TLS and credentials are the client's).
    Single(redis::Client),
    /// The master of a Sentinel-monitored group, re-resolved after a failover.
    Sentinel(Arc<SentinelTarget>),
    /// A Redis Cluster, from its seed nodes (and the first one's settings: credentials, TLS).
    Cluster(Box<(ClusterClient, redis::ConnectionInfo)>),
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deployment::Single(client) => f
                .debug_tuple("Single")
                .field(client.get_connection_info().addr())
                .finish(),
            Deployment::Sentinel(target) => f.debug_tuple("Sentinel").field(target).finish(),
            Deployment::Cluster(cluster) => {
                f.debug_tuple("Cluster").field(cluster.1.addr()).finish()
            }
        }
    }
}

impl Deployment {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Deployment::Cluster(..))
    }

    /// The settings of one node's connections (credentials, TLS): for error messages.
    pub(crate) fn connection_info(&self) -> redis::ConnectionInfo {
        match self {
            Deployment::Single(client) => client.get_connection_info().clone(),
            Deployment::Sentinel(target) => target.node().clone(),
            Deployment::Cluster(cluster) => cluster.1.clone(),
        }
    }

    /// A counter that changes when the server the connections should go to changes (a Sentinel
    /// failover seen); a connection opened under another value is to be dropped. Always 0 for
    /// the other deployments.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Deployment::Sentinel(target) => target.generation(),
            _ => 0,
        }
    }

    /// Opens a connection: to the server, to the master Sentinel names now, or to the cluster;
    /// with the [`generation`](Self::generation) it belongs to. `response_timeout` bounds each
    /// reply inside the cluster client (its retries and redirections); single-server replies
    /// are bounded by the caller.
    pub(crate) async fn connect(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> redis::RedisResult<(L2Connection, u64)> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(None);
        match self {
            Deployment::Single(client) => client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map(|conn| (L2Connection::Single(conn), 0)),
            Deployment::Sentinel(target) => target
                .connect(&config)
                .await
                .map(|(conn, generation)| (L2Connection::Single(conn), generation)),
            Deployment::Cluster(cluster) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                cluster
                    .0
                    .get_async_connection_with_config(config)
                    .await
                    .map(|conn| (L2Connection::Cluster(conn), 0))
            }
        }
    }

    /// Called on a `READONLY` reply (a demoted master): the next connection re-resolves.
    pub(crate) fn on_readonly(&self) {
        if let Deployment::Sentinel(target) = self {
            target.invalidate();
        }
    }
}

/// One connection of the store or the backplane, on any deployment.
#[derive(Clone)]
pub(crate) enum L2Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for L2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            L2Connection::Single(_) => "L2Connection::Single",
            L2Connection::Cluster(_) => "L2Connection::Cluster",
        })
    }
}

/// A node to scan: `None` is the single server, `Some` a cluster primary's address.
pub(crate) type ScanNode = Option<(String, u16)>;

impl L2Connection {
    /// The nodes whose keys, scanned together, are all the keys: the server, or every primary.
    pub(crate) async fn scan_nodes(&mut self) -> redis::RedisResult<Vec<ScanNode>> {
        let L2Connection::Cluster(conn) = self else {
            return Ok(vec![None]);
        };
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let reply = conn.route_command(redis::cmd("PING"), routing).await?;
        let Value::Map(by_node) = reply else {
            return Err(unexpected("PING to every primary did not answer per node"));
        };
        by_node
            .into_iter()
            .map(|(addr, _)| {
                let addr: String = redis::from_redis_value(addr)?;
                let (host, port) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
                    .ok_or_else(|| unexpected("a node address without a port"))?;
                Ok(Some((host, port)))
            })
            .collect()
    }

    /// One `SCAN` step on `node`: the next cursor and the keys matching `glob`.
    pub(crate) async fn scan_page(
        &mut self,
        node: &ScanNode,
        cursor: u64,
        glob: &str,
        count: usize,
    ) -> redis::RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(glob)
            .arg("COUNT")
            .arg(count);
        match (self, node) {
            (L2Connection::Cluster(conn), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                Ok(redis::from_redis_value(
                    conn.route_command(scan, routing).await?,
                )?)
            }
            (conn, _) => scan.query_async(conn).await,
        }
    }

    /// `INFO` of the server, or of one primary of a cluster.
    pub(crate) async fn info(&mut self) -> redis::RedisResult<String> {
        match self {
            L2Connection::Single(conn) => redis::cmd("INFO").query_async(conn).await,
            L2Connection::Cluster(conn) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
                let info = conn.route_command(redis::cmd("INFO"), routing).await?;
                Ok(redis::from_redis_value(info)?)
            }
        }
    }
}

fn unexpected(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, what))
}

impl ConnectionLike for L2Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            L2Connection::Single(conn) => conn.req_packed_command(cmd),
            L2Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            L2Connection::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            L2Connection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            L2Connection::Single(conn) => conn.get_db(),
            L2Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Commands whose replies are ignored, grouped so that each pipeline sent touches one hash slot
/// on a cluster (one pipeline in all on a single server). Commands of one slot keep their order;
/// the slots' pipelines are sent concurrently.
pub(crate) struct SlotPipeline {
    cluster: bool,
    pipes: HashMap<Slot, Pipeline>,
    single: Pipeline,
}

impl SlotPipeline {
    pub(crate) fn new(cluster: bool) -> SlotPipeline {
        SlotPipeline {
            cluster,
            pipes: HashMap::new(),
            single: redis::pipe(),
        }
    }

    /// The pipeline for commands on `key`.
    pub(crate) fn pipe_for(&mut self, key: &str) -> &mut Pipeline {
        if self.cluster {
            self.pipes
                .entry(Slot::for_key(key))
                .or_insert_with(redis::pipe)
        } else {
            &mut self.single
        }
    }

    /// Sends every pipeline; the first error is returned. `scripts` are those the pipelines
    /// invoke by hash: loaded, and the pipeline sent again, if Redis does not know them.
    pub(crate) async fn query(
        self,
        conn: &L2Connection,
        scripts: &[&Script],
    ) -> redis::RedisResult<()> {
        if !self.cluster {
            let mut conn = conn.clone();
            return query_pipeline(&self.single, scripts, &mut conn).await;
        }
        try_join_all(self.pipes.into_values().map(|pipe| {
            let mut conn = conn.clone();
            async move { query_pipeline(&pipe, scripts, &mut conn).await }
        }))
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second argument (the key) of each command of `pipe`.
    fn keys(pipe: &Pipeline) -> Vec<Vec<u8>> {
        pipe.cmd_iter()
            .map(|cmd| match cmd.args_iter().nth(1) {
                Some(redis::Arg::Simple(key)) => key.to_vec(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_cluster_pipeline_holds_one_slot_each_in_order_and_a_single_one_all() {
        let names = [
            "ns:d:{a}", "ns:k:{a}", "ns:k:{b}", "ns:t:x", "ns:c", "ns:d:{b}",
        ];
        let mut cluster = SlotPipeline::new(true);
        let mut single = SlotPipeline::new(false);
        for name in names {
            cluster.pipe_for(name).cmd("SET").arg(name).arg(1);
            single.pipe_for(name).cmd("SET").arg(name).arg(1);
        }
        assert_eq!(keys(&single.single).len(), names.len());
        assert!(single.pipes.is_empty());
        let slots: std::collections::HashSet<Slot> = names.iter().map(Slot::for_key).collect();
        assert_eq!(cluster.pipes.len(), slots.len());
        for (slot, pipe) in &cluster.pipes {
            let keys = keys(pipe);
            assert!(
                keys.iter().all(|k| Slot::for_key(k) == *slot),
                "one slot per pipeline"
            );
            if keys.contains(&b"ns:k:{a}".to_vec()) {
                assert_eq!(
                    keys,
                    [b"ns:d:{a}".to_vec(), b"ns:k:{a}".to_vec()],
                    "order kept"
                );
            }
        }
    }
}

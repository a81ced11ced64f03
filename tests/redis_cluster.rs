//! A Redis Cluster for tests: `redis-server --cluster-enabled yes` nodes ([`RedisServer`]s on
//! free loopback ports), the slots split evenly over the primaries with `CLUSTER ADDSLOTSRANGE`,
//! joined with `CLUSTER MEET`, optional replicas of the first primary (`CLUSTER REPLICATE`), and
//! ready once every node reports `cluster_state:ok` and knows every other (polled, bounded).
//! Helpers move a slot between primaries (`CLUSTER SETSLOT .. IMPORTING/MIGRATING`, `MIGRATE`,
//! `SETSLOT .. NODE`: what `redis-cli --cluster reshard` does) and kill a primary.

use std::thread;
use std::time::{Duration, Instant};

use super::RedisServer;

/// Slots of a cluster.
pub const SLOTS: u16 = 16_384;
/// Bound on each wait (cluster ready, failover).
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// The nodes of a test cluster: the primaries first, then the replicas of the first primary.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    ids: Vec<String>,
    primaries: usize,
}

fn conn(server: &RedisServer) -> redis::RedisResult<redis::Connection> {
    let conn = server
        .client()
        .get_connection_with_timeout(Duration::from_millis(500))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(conn)
}

fn query<T: redis::FromRedisValue>(
    server: &RedisServer,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    cmd.query(&mut conn(server)?)
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd
}

impl RedisCluster {
    /// `primaries` primaries sharing the slots, and `replicas` replicas of the first one.
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        assert!(primaries >= 1, "a cluster needs a primary");
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--cluster-require-full-coverage",
            "no",
            "--cluster-replica-validity-factor",
            "0",
        ];
        let nodes: Vec<RedisServer> = (0..primaries + replicas)
            .map(|_| RedisServer::start_with_args(&args))
            .collect();
        let ids = nodes
            .iter()
            .map(|n| query::<String>(n, &cmd(&["CLUSTER", "MYID"])).expect("CLUSTER MYID"))
            .collect();
        let cluster = RedisCluster {
            nodes,
            ids,
            primaries,
        };
        let per = SLOTS / primaries as u16;
        for (i, node) in cluster.nodes[..primaries].iter().enumerate() {
            let first = per * i as u16;
            let last = if i + 1 == primaries {
                SLOTS - 1
            } else {
                first + per - 1
            };
            let (first, last) = (first.to_string(), last.to_string());
            query::<()>(node, &cmd(&["CLUSTER", "ADDSLOTSRANGE", &first, &last]))
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        for node in &cluster.nodes[1..] {
            let port = node.port().to_string();
            query::<()>(
                &cluster.nodes[0],
                &cmd(&["CLUSTER", "MEET", "127.0.0.1", &port]),
            )
            .expect("CLUSTER MEET");
        }
        let total = cluster.nodes.len();
        cluster.wait("every node to know every other", |c| {
            c.nodes
                .iter()
                .all(|n| cluster_info(n).contains(&format!("cluster_known_nodes:{total}\r")))
        });
        for replica in &cluster.nodes[primaries..] {
            query::<()>(replica, &cmd(&["CLUSTER", "REPLICATE", &cluster.ids[0]]))
                .expect("CLUSTER REPLICATE");
        }
        cluster.wait_ready();
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok`, all slots served, and every
    /// replica (still one) is in sync with its primary.
    pub fn wait_ready(&self) {
        self.wait("cluster_state:ok on every node", |c| {
            c.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let info = cluster_info(n);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            })
        });
        self.wait("the replicas to be in sync", |c| {
            c.nodes[c.primaries..]
                .iter()
                .filter(|n| n.is_running())
                .all(|n| {
                    let info = replication(n);
                    // A replica promoted after its primary died is a primary now.
                    info.contains("role:master") || info.contains("master_link_status:up")
                })
        });
    }

    /// `host:port` of every node (seed nodes for a cluster client).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        query(self.any_running(), &cmd(&["CLUSTER", "KEYSLOT", key])).expect("CLUSTER KEYSLOT")
    }

    /// The index (in [`nodes`](Self::nodes)) of the primary serving `slot`, as a running node
    /// sees it.
    pub fn owner_of(&self, slot: u16) -> usize {
        let slots: Vec<(u16, u16, Vec<redis::Value>)> =
            query(self.any_running(), &cmd(&["CLUSTER", "SLOTS"])).expect("CLUSTER SLOTS");
        let port = slots
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .and_then(|(_, _, master)| redis::from_redis_value_ref::<i64>(master.get(1)?).ok())
            .expect("the slot has an owner");
        self.nodes
            .iter()
            .position(|n| i64::from(n.port()) == port)
            .expect("the owner is one of ours")
    }

    /// Marks `slot` importing on `to` and migrating on `from`: the first half of a move. Keys
    /// then answer `ASK` (moved ones) or stay (the rest) until [`finish_move`](Self::finish_move).
    pub fn begin_move(&self, slot: u16, from: usize, to: usize) {
        let slot = slot.to_string();
        query::<()>(
            &self.nodes[to],
            &cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &self.ids[from]]),
        )
        .expect("SETSLOT IMPORTING");
        query::<()>(
            &self.nodes[from],
            &cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &self.ids[to]]),
        )
        .expect("SETSLOT MIGRATING");
    }

    /// Moves up to `count` keys of `slot` from `from` to `to` (`MIGRATE`); how many it moved.
    pub fn migrate_keys(&self, slot: u16, from: usize, to: usize, count: usize) -> usize {
        let (s, n) = (slot.to_string(), count.to_string());
        let keys: Vec<String> = query(
            &self.nodes[from],
            &cmd(&["CLUSTER", "GETKEYSINSLOT", &s, &n]),
        )
        .expect("GETKEYSINSLOT");
        if keys.is_empty() {
            return 0;
        }
        let port = self.nodes[to].port().to_string();
        let mut migrate = cmd(&["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"]);
        for key in &keys {
            migrate.arg(key);
        }
        query::<String>(&self.nodes[from], &migrate).expect("MIGRATE");
        keys.len()
    }

    /// Assigns `slot` to `to` on every running node: the end of a move.
    pub fn finish_move(&self, slot: u16, to: usize) {
        let slot = slot.to_string();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            query::<()>(
                node,
                &cmd(&["CLUSTER", "SETSLOT", &slot, "NODE", &self.ids[to]]),
            )
            .expect("SETSLOT NODE");
        }
    }

    /// Moves `slot` from `from` to `to` with all its keys.
    pub fn move_slot(&self, slot: u16, from: usize, to: usize) {
        self.begin_move(slot, from, to);
        while self.migrate_keys(slot, from, to, 100) > 0 {}
        self.finish_move(slot, to);
    }

    /// Kills node `index` (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    fn any_running(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a node is running")
    }

    fn wait(&self, what: &str, mut done: impl FnMut(&RedisCluster) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            if Instant::now() >= deadline {
                let states: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("port {}: {}", n.port(), cluster_info(n)))
                    .collect();
                panic!(
                    "test cluster: timed out waiting for {what}\n{}",
                    states.join("\n")
                );
            }
            thread::sleep(POLL);
        }
    }
}

fn cluster_info(node: &RedisServer) -> String {
    query(node, &cmd(&["CLUSTER", "INFO"])).unwrap_or_default()
}

fn replication(node: &RedisServer) -> String {
    query(node, &cmd(&["INFO", "replication"])).unwrap_or_default()
}

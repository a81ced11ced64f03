//! The two candidate transports of the backplane, raw redis-rs side by side on one loopback
//! Redis: `PUBLISH` to a connection that has `SUBSCRIBE`d, and `XADD MAXLEN ~` to a loop of
//! `XREAD BLOCK` on a connection of its own (what `store/backplane.rs` does). Each receiver runs
//! in a task of its own and reports the instant each message reaches it; a sample is the time
//! from just before the publish to that instant.

use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use tiercache_benches::RedisServer;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::percentile;

const CHANNEL: &str = "raw:transport:channel";
const STREAM: &str = "raw:transport:stream";
/// About the size of a backplane message naming one key.
const PAYLOAD: &str = "k:prod:123456:instance=0123456789abcdef";

/// A receiver subscribed to [`CHANNEL`]: the instant each message arrives.
async fn pubsub_receiver(client: &redis::Client) -> mpsc::UnboundedReceiver<Instant> {
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
    pubsub.subscribe(CHANNEL).await.expect("SUBSCRIBE");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while messages.next().await.is_some() {
            if tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    rx
}

/// `XREAD BLOCK` on [`STREAM`] in a loop: the instant each entry arrives.
async fn stream_receiver(client: &redis::Client) -> mpsc::UnboundedReceiver<Instant> {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("stream connection");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // From the start of a stream nothing else writes: no entry is missed, whenever the
        // first read reaches Redis.
        let mut last = "0-0".to_owned();
        loop {
            type Reply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;
            let reply: redis::RedisResult<Reply> = redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(STREAM)
                .arg(&last)
                .query_async(&mut conn)
                .await;
            // An error: the bench is over and its Redis stopped.
            let Ok(reply) = reply else { return };
            let now = Instant::now();
            for (_, entries) in reply.unwrap_or_default() {
                for (id, _) in entries {
                    if tx.send(now).is_err() {
                        return;
                    }
                    last = id;
                }
            }
        }
    });
    rx
}

/// Sends one message over `transport` on `conn`.
async fn publish(conn: &mut MultiplexedConnection, transport: &str) {
    if transport == "pubsub" {
        let _: u64 = conn.publish(CHANNEL, PAYLOAD).await.expect("PUBLISH");
    } else {
        let _: String = redis::cmd("XADD")
            .arg(STREAM)
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("m")
            .arg(PAYLOAD)
            .query_async(conn)
            .await
            .expect("XADD");
    }
}

/// The transports under test, each with its receiver waiting.
const TRANSPORTS: [&str; 2] = ["pubsub", "stream"];

/// One message over `transport`: the time from just before the publish until `receiver` has it.
async fn one_message(
    conn: &mut MultiplexedConnection,
    receiver: &mut mpsc::UnboundedReceiver<Instant>,
    transport: &str,
) -> Duration {
    let started = Instant::now();
    publish(conn, transport).await;
    let arrived = receiver.recv().await.expect("the receiver runs");
    arrived.saturating_duration_since(started)
}

/// `{samples, p50_us, p99_us}` of `samples`.
fn summary(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort_unstable();
    serde_json::json!({
        "samples": samples.len(),
        "p50_us": percentile(&samples, 0.50),
        "p99_us": percentile(&samples, 0.99),
    })
}

/// `backplane/transport/{pubsub,stream}` (criterion, one after the other), then `rounds`
/// messages over each, alternating (so that both see the same moments of a busy machine): their
/// p50/p99 into `figures` (`transport_paired`).
pub fn bench(
    c: &mut Criterion,
    rt: &Runtime,
    server: &RedisServer,
    figures: &mut serde_json::Map<String, serde_json::Value>,
) {
    let client = server.client();
    let conn = rt.block_on(server.connection());
    let receivers = rt.block_on(async {
        [
            tokio::sync::Mutex::new(pubsub_receiver(&client).await),
            tokio::sync::Mutex::new(stream_receiver(&client).await),
        ]
    });
    let mut group = c.benchmark_group("backplane/transport");
    for (transport, receiver) in TRANSPORTS.iter().zip(&receivers) {
        group.bench_function(*transport, |bench| {
            bench.to_async(rt).iter_custom(|iters| {
                let mut conn = conn.clone();
                async move {
                    let mut receiver = receiver.lock().await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += one_message(&mut conn, &mut receiver, transport).await;
                    }
                    total
                }
            });
        });
    }
    group.finish();

    let rounds = if tiercache_benches::quick() {
        2_000
    } else {
        10_000
    };
    let paired = rt.block_on(async {
        let mut conn = conn.clone();
        let mut samples: [Vec<Duration>; 2] = Default::default();
        let [mut pubsub, mut stream] = [receivers[0].lock().await, receivers[1].lock().await];
        for _ in 0..rounds {
            samples[0].push(one_message(&mut conn, &mut pubsub, TRANSPORTS[0]).await);
            samples[1].push(one_message(&mut conn, &mut stream, TRANSPORTS[1]).await);
        }
        samples
    });
    let [pubsub, stream] = paired;
    figures.insert(
        "transport_paired".to_owned(),
        serde_json::json!({ "pubsub": summary(pubsub), "stream": summary(stream) }),
    );
}

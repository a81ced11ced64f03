//! The backplane's transport: one capped Redis stream per namespace (`ns:bp`), written with
//! `XADD MAXLEN ~` through the shared L2 connection ([`RedisStore::publish`]) and read with
//! `XREAD BLOCK` on a connection of its own ([`Subscriber`]), so that a blocking read never
//! stalls the multiplexed connection every cache call shares. On a cluster that connection is a
//! cluster connection of its own (the read goes to the stream's primary and follows it if its
//! slot moves); through Sentinel, the subscriber reconnects when the master changes.
//!
//! Why a stream and not pub/sub or RESP3 client tracking, measured (`benches/backplane.rs`, 2
//! cores shared with other builds, load average 11-16, loopback Redis):
//! - propagation is the same: 2,000 messages over each, alternating, from a publishing
//!   connection to a receiver already waiting: `PUBLISH` to a `SUBSCRIBE`d connection p50 72 µs,
//!   p99 7.7 ms; `XADD MAXLEN ~` to an `XREAD BLOCK` loop p50 81 µs, p99 7.1 ms (the tails are the
//!   busy machine's scheduling). A message reaches a blocked `XREAD` through one server-side
//!   wake-up, as a `PUBLISH` reaches a subscriber; what decides is the rest:
//! - a short disconnect: pub/sub forgets what was published while a subscriber was away, so
//!   every reconnect would have to drop L1; the stream keeps the last [`STREAM_MAX_LEN`]
//!   messages, and a subscriber that comes back reads on from the last ID it saw (IDs assigned
//!   by Redis, so nothing depends on the instances' clocks). Only a gap the stream no longer
//!   holds (its last ID trimmed, or Redis restarted empty) forces a resync
//!   (`tests/backplane.rs`: a short disconnect loses no message);
//! - idle cost: one `XREAD BLOCK 1000` a second per instance, touching one key (and `TIME` every
//!   [`CLOCK_SAMPLE_EVERY`]), whatever the number of tags or patterns known: measured 0.9
//!   commands per instance per second (all `XREAD`) and no keyspace miss, four instances that
//!   each know 300 tags, 10 s idle (pub/sub would cost none while idle, but nothing tells a
//!   silent subscriber from a dead connection without a heartbeat of about the same cost);
//! - sending costs one `XADD` (a raw `XADD` on loopback: about the raw `SET` + `UNLINK` pipeline
//!   of a key invalidation), where a `PUBLISH` would cost about the same;
//! - client tracking (what the `cached` crate uses) invalidates keys a client *read*, so it
//!   cannot carry tag marks, patterns or clears, and needs RESP3 on every connection (not
//!   measured: it cannot carry what the backplane must).
//!
//! Knows the message format and the stream commands; never touches L1, keys or the engine
//! (what a message does is `engine/backplane.rs`'s).

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::redis::deployment::{Deployment, L2Connection};
use super::redis::{RedisStore, sample_redis_clock};
use crate::clock::{Clock, Timestamp};

/// About how many messages the stream keeps (`MAXLEN ~`): the longest gap a subscriber that
/// reconnects can replay.
pub(crate) const STREAM_MAX_LEN: usize = 10_000;
/// How long one `XREAD` blocks when nothing happens: the heartbeat of an idle instance.
pub(crate) const BLOCK: Duration = Duration::from_secs(1);
/// How often the subscriber samples Redis's clock (`TIME`) while connected.
pub(crate) const CLOCK_SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// Messages read at most per `XREAD`.
const READ_COUNT: usize = 512;

/// What happened, as broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Keys invalidated or overwritten (rendered, without the namespace).
    Keys(Vec<String>),
    /// A tag invalidated at the message's stamp.
    Tag(String),
    /// Keys matching a glob invalidated.
    Pattern(String),
    /// The namespace cleared at the message's stamp.
    Clear,
    /// An instance joined (its position in the stream); nothing to do.
    Join,
    /// Messages were lost (more were kept unsent during an outage than are kept): every
    /// receiver drops its L1.
    Resync,
    /// A message this version does not understand (a newer peer): the receiver must resync.
    Unknown,
}

/// One message of the backplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The sending instance (a receiver ignores its own messages).
    pub(crate) instance: u64,
    /// When it happened, on Redis's clock ([`Clock`]): the mark of a tag or clear.
    pub(crate) stamp: Timestamp,
    pub(crate) event: Event,
}

impl Message {
    /// The `XADD` of this message to `stream`, trimming the stream to about [`STREAM_MAX_LEN`].
    pub(crate) fn xadd(&self, stream: &str) -> redis::Cmd {
        let (kind, payload): (&str, Vec<u8>) = match &self.event {
            Event::Keys(keys) => ("k", rmp_serde::to_vec(keys).unwrap_or_default()),
            Event::Tag(tag) => ("t", tag.as_bytes().to_vec()),
            Event::Pattern(glob) => ("p", glob.as_bytes().to_vec()),
            Event::Clear => ("c", Vec::new()),
            Event::Resync => ("r", Vec::new()),
            Event::Join | Event::Unknown => ("j", Vec::new()),
        };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg("i")
            .arg(self.instance)
            .arg("a")
            .arg(self.stamp.as_micros())
            .arg("e")
            .arg(kind)
            .arg("v")
            .arg(payload);
        cmd
    }

    /// Reads a message from a stream entry's fields; a malformed one is [`Event::Unknown`].
    fn parse(fields: &[Value]) -> Message {
        let (mut instance, mut stamp, mut kind, mut payload) = (None, None, None, Vec::new());
        for pair in fields.chunks_exact(2) {
            let (Some(name), Some(value)) = (bytes(&pair[0]), bytes(&pair[1])) else {
                continue;
            };
            let number = || std::str::from_utf8(value).ok()?.parse::<u64>().ok();
            match name {
                b"i" => instance = number(),
                b"a" => stamp = number().map(Timestamp::from_micros),
                b"e" => kind = Some(value.to_vec()),
                b"v" => payload = value.to_vec(),
                _ => {}
            }
        }
        let text = |p: Vec<u8>| String::from_utf8(p).ok();
        let event = match kind.as_deref() {
            Some(b"k") => rmp_serde::from_slice(&payload).ok().map(Event::Keys),
            Some(b"t") => text(payload).map(Event::Tag),
            Some(b"p") => text(payload).map(Event::Pattern),
            Some(b"c") => Some(Event::Clear),
            Some(b"j") => Some(Event::Join),
            Some(b"r") => Some(Event::Resync),
            _ => None,
        };
        match (instance, stamp, event) {
            (Some(instance), Some(stamp), Some(event)) => Message {
                instance,
                stamp,
                event,
            },
            (instance, stamp, _) => Message {
                instance: instance.unwrap_or(0),
                stamp: stamp.unwrap_or(Timestamp::EPOCH),
                event: Event::Unknown,
            },
        }
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|b| String::from_utf8(b.to_vec()).ok())
}

fn malformed(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, what))
}

/// The entries of an `XREAD` reply on one stream: (ID, message) in stream order.
fn parse_xread(reply: Value) -> redis::RedisResult<Vec<(String, Message)>> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams,
        Value::Map(streams) => streams.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return Err(malformed("XREAD reply is not an array")),
    };
    // RESP2: [[name, entries]]; RESP3 (a map): [name, entries].
    let entries = match streams.as_slice() {
        [Value::Array(one)] if one.len() == 2 => &one[1],
        [_, entries] => entries,
        _ => return Err(malformed("XREAD reply of another shape")),
    };
    parse_entries(entries)
}

/// `[[id, [field, value, ...]], ...]` (an `XRANGE` reply, or the entries of an `XREAD` one).
fn parse_entries(entries: &Value) -> redis::RedisResult<Vec<(String, Message)>> {
    let Value::Array(entries) = entries else {
        return Err(malformed("stream entries are not an array"));
    };
    entries
        .iter()
        .map(|entry| match entry {
            Value::Array(parts) if parts.len() == 2 => {
                let id = text(&parts[0]).ok_or_else(|| malformed("stream ID"))?;
                let fields = match &parts[1] {
                    Value::Array(fields) => fields.as_slice(),
                    _ => &[],
                };
                Ok((id, Message::parse(fields)))
            }
            _ => Err(malformed("stream entry")),
        })
        .collect()
}

impl RedisStore {
    /// A subscriber on a connection of its own (opened by [`Subscriber::connect`]).
    pub(crate) fn subscriber(&self, clock: Arc<Clock>) -> Subscriber {
        Subscriber {
            deployment: self.deployment.clone(),
            stream: self.stream_key.clone(),
            conn: None,
            timeout: self.settings.op_timeout.max(Duration::from_millis(500)),
            connect_timeout: self.settings.connect_timeout,
            clock,
        }
    }
}

/// The reading side: a dedicated connection on which `XREAD BLOCK` may wait.
#[derive(Debug)]
pub(crate) struct Subscriber {
    deployment: Deployment,
    stream: String,
    /// The connection, and the deployment's generation it was opened under.
    conn: Option<(L2Connection, u64)>,
    /// Bound on every call but the blocking read (which gets [`BLOCK`] more).
    timeout: Duration,
    connect_timeout: Duration,
    clock: Arc<Clock>,
}

impl Subscriber {
    /// Opens the connection (dropping any previous one) and samples Redis's clock.
    pub(crate) async fn connect(&mut self) -> redis::RedisResult<()> {
        self.conn = None;
        // A cluster client bounds each reply itself: longer than the blocking read.
        let replies_within = BLOCK + self.timeout;
        let (conn, generation) = tokio::time::timeout(
            self.connect_timeout,
            self.deployment
                .connect(self.connect_timeout, replies_within),
        )
        .await
        .map_err(|_| timed_out())??;
        self.conn = Some((conn, generation));
        self.sample_clock().await
    }

    /// Whether the connection is open (no error seen on it since [`Subscriber::connect`]).
    pub(crate) fn is_connected(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|(_, generation)| *generation == self.deployment.generation())
    }

    /// The connection, if open under the deployment's current generation.
    fn current(&mut self) -> Option<&mut L2Connection> {
        let now = self.deployment.generation();
        match &mut self.conn {
            Some((conn, generation)) if *generation == now => Some(conn),
            _ => None,
        }
    }

    /// Runs one command on the connection, bounded; an error or a timeout drops the connection.
    async fn call<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        within: Duration,
    ) -> redis::RedisResult<T> {
        let Some(conn) = self.current() else {
            return Err(not_connected());
        };
        let result = match tokio::time::timeout(within, cmd.query_async(conn)).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Samples Redis's clock (`TIME`) into the [`Clock`].
    pub(crate) async fn sample_clock(&mut self) -> redis::RedisResult<()> {
        let (clock, within) = (Arc::clone(&self.clock), self.timeout);
        let Some(conn) = self.current() else {
            return Err(not_connected());
        };
        let sample = sample_redis_clock(conn, &clock);
        let result = match tokio::time::timeout(within, sample).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Adds a join message for `instance` and returns its ID: the position to read on from
    /// (always an entry of the stream, so that a later [`Subscriber::still_holds`] can tell).
    pub(crate) async fn join(&mut self, instance: u64) -> redis::RedisResult<String> {
        let join = Message {
            instance,
            stamp: self.clock.now(),
            event: Event::Join,
        };
        self.call(&join.xadd(&self.stream), self.timeout).await
    }

    /// Whether the stream still holds the entry `id`: then it holds every later one too (a
    /// capped stream is trimmed from its oldest end), so a reader that stopped at `id` can read
    /// on without a gap.
    pub(crate) async fn still_holds(&mut self, id: &str) -> redis::RedisResult<bool> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&self.stream).arg(id).arg(id);
        let reply: Value = self.call(&cmd, self.timeout).await?;
        Ok(!parse_entries(&reply)?.is_empty())
    }

    /// The messages after `after`, waiting up to [`BLOCK`] for one.
    pub(crate) async fn read(&mut self, after: &str) -> redis::RedisResult<Vec<(String, Message)>> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(after);
        let reply: Value = self.call(&cmd, BLOCK + self.timeout).await?;
        parse_xread(reply)
    }
}

fn not_connected() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "backplane not connected"))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "backplane call timed out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &Message) -> Vec<Value> {
        let cmd = message.xadd("s");
        cmd.args_iter()
            .skip(6)
            .map(|arg| match arg {
                redis::Arg::Simple(b) => Value::BulkString(b.to_vec()),
                _ => Value::Nil,
            })
            .collect()
    }

    #[test]
    fn messages_survive_their_encoding() {
        for event in [
            Event::Keys(vec!["prod:1".into(), "a\nb".into()]),
            Event::Tag("cat:3".into()),
            Event::Pattern("prod:*".into()),
            Event::Clear,
            Event::Join,
            Event::Resync,
        ] {
            let m = Message {
                instance: 42,
                stamp: Timestamp::from_micros(1_700_000_000_000_000),
                event,
            };
            assert_eq!(Message::parse(&fields(&m)), m);
        }
    }

    #[test]
    fn a_message_of_another_shape_is_unknown() {
        let odd = [b"i".as_slice(), b"1", b"a", b"2", b"e", b"zz", b"v", b""]
            .map(|b| Value::BulkString(b.to_vec()));
        assert_eq!(Message::parse(&odd).event, Event::Unknown);
        assert_eq!(Message::parse(&[]).event, Event::Unknown);
        let keys_not_msgpack = [b"i".as_slice(), b"1", b"a", b"2", b"e", b"k", b"v", b"\xc1"]
            .map(|b| Value::BulkString(b.to_vec()));
        assert_eq!(Message::parse(&keys_not_msgpack).event, Event::Unknown);
    }

    #[test]
    fn an_xread_reply_lists_entries_in_order() {
        let m = Message {
            instance: 7,
            stamp: Timestamp::from_micros(9),
            event: Event::Tag("t".into()),
        };
        let entry = |id: &str| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(fields(&m)),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"ns:bp".to_vec()),
            Value::Array(vec![entry("1-0"), entry("1-1")]),
        ])]);
        let read = parse_xread(reply).unwrap();
        assert_eq!(
            read.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["1-0", "1-1"]
        );
        assert_eq!(read[0].1, m);
        assert!(parse_xread(Value::Nil).unwrap().is_empty());
        assert!(parse_xread(Value::Int(3)).is_err());
    }
}

//! Driving a server: `concurrency` client tasks, each with one HTTP/1.1 connection (hyper's,
//! unpooled) and one request in flight, for a bounded time, in a closed loop (the next request
//! when the previous one is answered) or an open loop (requests on a fixed schedule, latency
//! measured from the intended send time); latency histograms, per-second counts, and optionally a
//! Redis outage at half time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tiercache_tests::RedisServer;
use tokio::net::TcpStream;

use crate::report::{Latency, Phase, Second};
use crate::workload::{Request, Workload};

/// How the client tasks pace their requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each task sends its next request as soon as the previous one is answered.
    Closed,
    /// This many requests per second in all, on a fixed schedule per task.
    Open { rate: f64 },
}

/// What to drive, for how long, and how.
#[derive(Debug, Clone, Copy)]
pub struct DrivePlan {
    pub duration: Duration,
    pub concurrency: u64,
    pub pacing: Pacing,
    pub seed: u64,
}

/// What a drive measured.
#[derive(Debug)]
pub struct LoadOutcome {
    pub total: Phase,
    /// With a Redis outage: before and after it.
    pub before: Option<Phase>,
    pub after: Option<Phase>,
    pub mix: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    pub timeline: Vec<Second>,
}

#[derive(Default)]
struct WorkerOut {
    all: Option<Histogram<u64>>,
    before: Option<Histogram<u64>>,
    after: Option<Histogram<u64>>,
    errors: [u64; 2],
    mix: BTreeMap<&'static str, u64>,
}

/// What every client task shares.
struct Shared {
    /// `host:port` of the server.
    authority: String,
    workload: Arc<Workload>,
    /// Per second: requests, errors, worst latency (µs).
    timeline: Vec<[AtomicU64; 3]>,
    samples: parking_lot::Mutex<Vec<String>>,
    /// Set once Redis is killed: later requests count as "after".
    killed: AtomicBool,
    start: Instant,
    deadline: Instant,
}

/// How long a request may take before it counts as an error (and its connection is dropped).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Drives `url` as `plan` says; with `kill_redis`, SIGKILLs that redis-server at half time.
pub async fn drive(
    url: &str,
    plan: DrivePlan,
    workload: &Arc<Workload>,
    kill_redis: Option<&mut RedisServer>,
) -> anyhow::Result<LoadOutcome> {
    let concurrency = plan.concurrency as usize;
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("not an http:// URL: {url}"))?
        .trim_end_matches('/');
    let start = Instant::now();
    let shared = Arc::new(Shared {
        authority: authority.to_owned(),
        workload: workload.clone(),
        timeline: (0..plan.duration.as_secs() as usize + 2)
            .map(|_| [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)])
            .collect(),
        samples: parking_lot::Mutex::new(Vec::new()),
        killed: AtomicBool::new(false),
        start,
        deadline: start + plan.duration,
    });
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let schedule = match plan.pacing {
                Pacing::Closed => None,
                Pacing::Open { rate } => {
                    // Each task sends rate / concurrency requests a second, the tasks' schedules
                    // staggered evenly over one interval.
                    let interval = Duration::from_secs_f64(concurrency as f64 / rate);
                    Some((
                        start + interval.mul_f64(w as f64 / concurrency as f64),
                        interval,
                    ))
                }
            };
            let seed = plan.seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            tokio::spawn(worker(shared.clone(), seed, schedule))
        })
        .collect();
    let mut kill_at = None;
    if let Some(redis) = kill_redis {
        tokio::time::sleep_until((start + plan.duration / 2).into()).await;
        tokio::task::block_in_place(|| redis.stop());
        shared.killed.store(true, Ordering::Relaxed);
        kill_at = Some(Instant::now());
        eprintln!(
            "catalog-loadtest: killed redis-server (SIGKILL) at {:.2?}",
            start.elapsed()
        );
    }
    let mut all = histogram();
    let mut before = histogram();
    let mut after = histogram();
    let mut errors = [0u64; 2];
    let mut mix = BTreeMap::new();
    for w in workers {
        let out = w.await.context("load worker panicked")?;
        for (into, from) in [
            (&mut all, out.all),
            (&mut before, out.before),
            (&mut after, out.after),
        ] {
            if let Some(h) = from {
                into.add(&h).context("merging histograms")?;
            }
        }
        errors[0] += out.errors[0];
        errors[1] += out.errors[1];
        for (k, v) in out.mix {
            *mix.entry(k.to_owned()).or_default() += v;
        }
    }
    let end = Instant::now();
    let total = phase(&all, errors[0] + errors[1], (end - start).as_secs_f64());
    let (before, after) = match kill_at {
        Some(k) => (
            Some(phase(&before, errors[0], (k - start).as_secs_f64())),
            Some(phase(&after, errors[1], (end - k).as_secs_f64())),
        ),
        None => (None, None),
    };
    let timeline = shared
        .timeline
        .iter()
        .enumerate()
        .filter(|(_, s)| s[0].load(Ordering::Relaxed) > 0)
        .map(|(i, s)| Second {
            second: i as u64,
            requests: s[0].load(Ordering::Relaxed),
            errors: s[1].load(Ordering::Relaxed),
            max_ms: s[2].load(Ordering::Relaxed) as f64 / 1000.0,
        })
        .collect();
    let error_samples = shared.samples.lock().clone();
    Ok(LoadOutcome {
        total,
        before,
        after,
        mix,
        error_samples,
        timeline,
    })
}

fn phase(h: &Histogram<u64>, errors: u64, seconds: f64) -> Phase {
    Phase {
        requests: h.len(),
        errors,
        seconds,
        throughput: if seconds > 0.0 {
            h.len() as f64 / seconds
        } else {
            0.0
        },
        latency: Latency::of(h),
    }
}

/// One client task. With a `schedule` (first send time, interval), request `k` is due at
/// `first + k × interval`: the task waits for it if early, sends at once if late, and measures
/// from the due time either way. It stops at the deadline, sending nothing due after it.
async fn worker(
    shared: Arc<Shared>,
    seed: u64,
    mut schedule: Option<(Instant, Duration)>,
) -> WorkerOut {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut connection = Connection::new(&shared.authority);
    let mut out = WorkerOut {
        all: Some(histogram()),
        before: Some(histogram()),
        after: Some(histogram()),
        ..WorkerOut::default()
    };
    loop {
        let now = Instant::now();
        if now >= shared.deadline {
            break;
        }
        let t0 = match &mut schedule {
            None => now,
            Some((due, interval)) => {
                let this = *due;
                if this >= shared.deadline {
                    break;
                }
                *due += *interval;
                if this > now {
                    tokio::time::sleep_until(this.into()).await;
                }
                this
            }
        };
        let req = shared.workload.next(&mut rng);
        let after = shared.killed.load(Ordering::Relaxed);
        let result = connection.send(&req).await;
        let us = t0.elapsed().as_micros() as u64;
        *out.mix.entry(req.kind.name()).or_default() += 1;
        let phase = if after {
            &mut out.after
        } else {
            &mut out.before
        };
        for h in [&mut out.all, phase].into_iter().flatten() {
            h.saturating_record(us.max(1));
        }
        let sec = t0.saturating_duration_since(shared.start).as_secs() as usize;
        let slot = shared.timeline.get(sec.min(shared.timeline.len() - 1));
        if let Some(slot) = slot {
            slot[0].fetch_add(1, Ordering::Relaxed);
            slot[2].fetch_max(us, Ordering::Relaxed);
        }
        if let Err(e) = result {
            out.errors[usize::from(after)] += 1;
            if let Some(slot) = slot {
                slot[1].fetch_add(1, Ordering::Relaxed);
            }
            let mut s = shared.samples.lock();
            if s.len() < 5 {
                s.push(format!("{} {}: {e}", req.kind.name(), req.path));
            }
        }
    }
    out
}

/// One client connection: HTTP/1.1 with keep-alive, one request at a time, opened on first use
/// and again after an error. Hyper's connection API directly, with no pool to share, so that a
/// request costs the generator as little as it can.
struct Connection {
    authority: String,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(authority: &str) -> Connection {
        Connection {
            authority: authority.to_owned(),
            sender: None,
        }
    }

    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends `req` and reads the whole response: `Err` unless it is a success (2xx).
    async fn send(&mut self, req: &Request) -> Result<(), String> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.sender = None;
                Err(format!("no response within {REQUEST_TIMEOUT:?}"))
            }
        }
    }

    async fn exchange(&mut self, req: &Request) -> Result<(), String> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let request = http::Request::builder()
            .uri(req.path.as_str())
            .header(header::HOST, self.authority.as_str());
        let request = match &req.body {
            Some(body) => request
                .method(Method::POST)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(
                    serde_json::to_vec(body).map_err(|e| e.to_string())?,
                ))),
            None => request.body(Full::new(Bytes::new())),
        }
        .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        // The connection is kept only after a whole exchange.
        self.sender = Some(sender);
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTP/1.1 server that answers one request at a time, each after `delay`: it serves at
    /// most 1 / `delay` requests a second, however many connections it has.
    async fn slow_server(delay: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let one_at_a_time = one_at_a_time.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.clear();
                        {
                            let _turn = one_at_a_time.lock().await;
                            tokio::time::sleep(delay).await;
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn reads_only() -> Arc<Workload> {
        let names = ["sleek lamp".to_owned(), "rustic chair".to_owned()];
        let products = (1..=20).map(|id| (id, id)).collect();
        Arc::new(Workload::new(products, vec![1, 2, 3], &names, 7, 1.0, 0.0).expect("workload"))
    }

    /// A server that serves 50 requests a second, offered 100 a second: the open loop reports
    /// the queueing (latency from the intended send time grows through the run), where the closed
    /// loop only sees each request's own service time behind the other connections'.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_open_loop_does_not_hide_a_server_that_falls_behind() {
        let url = slow_server(Duration::from_millis(20)).await;
        let workload = reads_only();
        let plan = |pacing| DrivePlan {
            duration: Duration::from_secs(1),
            concurrency: 4,
            pacing,
            seed: 1,
        };
        let closed = drive(&url, plan(Pacing::Closed), &workload, None)
            .await
            .expect("closed loop");
        let open = drive(&url, plan(Pacing::Open { rate: 100.0 }), &workload, None)
            .await
            .expect("open loop");
        for outcome in [&closed, &open] {
            assert_eq!(outcome.total.errors, 0, "{:?}", outcome.error_samples);
            assert!(outcome.total.requests > 10, "{:?}", outcome.total);
        }
        // Closed: about 4 × 20 ms each. Open: the last requests served waited ~0.5 s.
        let (closed_p99, open_p99) = (closed.total.latency.p99_ms, open.total.latency.p99_ms);
        assert!(closed_p99 < 200.0, "closed p99 {closed_p99} ms");
        assert!(
            open_p99 > 250.0 && open_p99 > 2.0 * closed_p99,
            "open p99 {open_p99} ms vs closed {closed_p99} ms"
        );
        // The open loop sent no more than was due before the deadline.
        assert!(open.total.requests <= 101, "{:?}", open.total);
    }
}

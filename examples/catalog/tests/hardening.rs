//! Issue 14, what an attacker tried against the service: a category tree deep enough to overflow
//! the stack, `/metrics` bloated by made-up methods and paths, connections that hold the server
//! (slowloris, idle, too many), errors that were not the JSON contract, text with control and
//! bidirectional characters, secrets printed; and a graceful stop on SIGTERM under load.
//! Raw sockets talk to loopback only, every wait is bounded.

mod support;

use std::time::{Duration, Instant};

use catalog::Limits;
use catalog::domain::MAX_CATEGORY_DEPTH;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestService;
use support::process::{Running, binary, output};
use tiercache_tests::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ----- category depth -----

/// First id of the chain of categories inserted behind the API's back.
const CHAIN: i64 = 100_001;
/// Its length: far deeper than any recursion could go.
const CHAIN_LEN: i64 = 10_000;
/// A cycle of three categories (each the parent of the next).
const CYCLE: [i64; 3] = [200_001, 200_002, 200_003];

/// Inserts, directly in the database (as a hand edit would), a chain of [`CHAIN_LEN`]
/// categories (with a wrong stored `depth`: 0 everywhere) and a `parent_id` cycle.
async fn insert_deep_chain_and_cycle(s: &TestService) {
    let db = match &s.server.app.repo.db {
        catalog::db::Db::Sqlite(db) => db,
        catalog::db::Db::Postgres(db) => {
            let mut c = db.client().await.expect("connection");
            let tx = c.transaction().await.expect("transaction");
            tx.execute(
                "INSERT INTO categories (id, parent_id, name, slug, depth)
                 SELECT $1::BIGINT + k, CASE WHEN k > 0 THEN $1::BIGINT + k - 1 END, 'Deep ' || k, 'deep-' || k, 0
                 FROM generate_series(0::BIGINT, $2::BIGINT - 1) k",
                &[&CHAIN, &CHAIN_LEN],
            )
            .await
            .expect("chain");
            for (i, id) in CYCLE.iter().enumerate() {
                tx.execute(
                    "INSERT INTO categories (id, parent_id, name, slug, depth)
                     VALUES ($1, NULL, $2, $3, 0)",
                    &[id, &format!("Cycle {i}"), &format!("cycle-{i}")],
                )
                .await
                .expect("cycle");
            }
            for (i, id) in CYCLE.iter().enumerate() {
                tx.execute(
                    "UPDATE categories SET parent_id = $1 WHERE id = $2",
                    &[&CYCLE[(i + 1) % CYCLE.len()], id],
                )
                .await
                .expect("cycle");
            }
            tx.commit().await.expect("hand edit");
            return;
        }
    };
    db.write(|tx| {
        let mut stmt = tx.prepare(
            "INSERT INTO categories (id, parent_id, name, slug, depth) VALUES (?1, ?2, ?3, ?4, 0)",
        )?;
        for k in 0..CHAIN_LEN {
            let id = CHAIN + k;
            let parent = (k > 0).then_some(id - 1);
            stmt.execute(rusqlite::params![
                id,
                parent,
                format!("Deep {k}"),
                format!("deep-{k}")
            ])?;
        }
        for (i, id) in CYCLE.iter().enumerate() {
            stmt.execute(rusqlite::params![
                id,
                None::<i64>,
                format!("Cycle {i}"),
                format!("cycle-{i}")
            ])?;
        }
        for (i, id) in CYCLE.iter().enumerate() {
            tx.execute(
                "UPDATE categories SET parent_id = ?1 WHERE id = ?2",
                rusqlite::params![CYCLE[(i + 1) % CYCLE.len()], id],
            )?;
        }
        Ok(())
    })
    .await
    .expect("hand edit");
}

on_both_backends! {
// A database edited by hand (a 10,000-deep chain, a cycle) cannot crash the service: the tree
// stops at the maximum depth and leaves the cycle out, warmup and every read that walks the
// tree answer, writes that walk it (invalidation) finish; and new categories deeper than the
// maximum are refused, on create and on move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_chain_or_a_cycle_in_the_database_cannot_crash_the_service() {
    let s = TestService::without_redis().await;
    insert_deep_chain_and_cycle(&s).await;

    let tree = s.json("/categories/tree").await;
    let roots = tree.as_array().expect("roots");
    let mut node = roots
        .iter()
        .find(|n| n["id"] == CHAIN)
        .expect("the chain's root is in the tree");
    let mut levels = 1;
    while let Some(child) = node["children"].as_array().and_then(|c| c.first()) {
        assert_eq!(child["id"], CHAIN + levels, "the chain, in order");
        node = child;
        levels += 1;
    }
    assert_eq!(
        levels,
        MAX_CATEGORY_DEPTH + 1,
        "depth 0 to the maximum, no deeper"
    );
    let text = serde_json::to_string(&tree).expect("json");
    for id in CYCLE {
        assert!(
            !text.contains(&format!("\"id\":{id},")),
            "cycle member {id} left out"
        );
    }

    let report = catalog::ops::warmup(&s.server.app.repo, false, false)
        .await
        .expect("warmup answers");
    assert_eq!(report.failed, 0, "{report}");

    for path in [
        format!("/categories/{CHAIN}"),
        format!("/categories/{}/children", CHAIN + CHAIN_LEN - 2),
        format!("/products?category={CHAIN}"),
        format!("/products?category={}", CYCLE[0]),
        format!("/filters?category={}", CYCLE[1]),
        format!("/categories/{}/attributes", CYCLE[2]),
        format!("/search?q=lamp&category={}", CYCLE[0]),
        "/stats".to_owned(),
        "/categories".to_owned(),
    ] {
        s.json(&path).await;
    }
    // Writes walk the ancestors to invalidate listings: the whole chain, the cycle once.
    for (sku, category) in [("DEEP-1", CHAIN + CHAIN_LEN - 1), ("CYCLE-1", CYCLE[0])] {
        let body = json!({
            "sku": sku, "name": "Deep lamp", "brand": "Acme", "price": 3.0,
            "category_id": category
        });
        let (status, e) = s.send(Method::POST, "/products", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
    }
    let listed = s
        .json(&format!("/products?category={CHAIN}&per_page=100"))
        .await;
    assert!(
        support::ids(&listed).len() == 1,
        "a product deep in the chain is listed under its root: {listed}"
    );

    // New categories: at most MAX_CATEGORY_DEPTH below a root, whatever the stored depths say.
    let at = |depth: i64| CHAIN + depth;
    let (status, created) = s
        .send(
            Method::POST,
            "/categories",
            Some(json!({"name": "Deepest", "parent_id": at(MAX_CATEGORY_DEPTH - 1)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["depth"], MAX_CATEGORY_DEPTH);
    let deepest = created["id"].as_i64().expect("id");
    for parent in [at(MAX_CATEGORY_DEPTH), at(5_000), CYCLE[0], deepest] {
        let (status, e) = s
            .send(
                Method::POST,
                "/categories",
                Some(json!({"name": "Too deep", "parent_id": parent})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "parent {parent}: {e}"
        );
        assert_eq!(e["error"]["code"], "invalid", "{e}");
    }
    // Moving a subtree with children under a category at depth MAX - 1 would put them at
    // MAX + 1: refused, nothing changed; a leaf may go there.
    let categories = s.json("/categories").await;
    let with_child = categories
        .as_array()
        .expect("list")
        .iter()
        .find(|c| {
            c["id"].as_i64().expect("id") < CHAIN
                && categories
                    .as_array()
                    .expect("list")
                    .iter()
                    .any(|d| d["parent_id"] == c["id"])
        })
        .expect("a seeded category with a child")
        .clone();
    let id = with_child["id"].as_i64().expect("id");
    let (status, e) = s
        .move_category(id, &with_child, at(MAX_CATEGORY_DEPTH - 1))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .contains("subtree"),
        "{e}"
    );
    assert_eq!(s.json(&format!("/categories/{id}")).await, with_child);
    let leaf = s.json(&format!("/categories/{deepest}")).await;
    let (status, moved) = s.move_category(deepest, &leaf, at(3)).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        moved["depth"], 4,
        "the depth comes from the walk, not the stored column"
    );
}
}

// ----- metrics -----

on_both_backends! {
// Made-up methods and paths add no series to `/metrics`: its size stays bounded.
#[tokio::test]
async fn metrics_labels_come_from_closed_sets() {
    let s = TestService::without_redis().await;
    let flood = |round: usize| {
        let s = &s;
        async move {
            for i in 0..100 {
                let token = format!("X{round}Q{i}{}", "M".repeat(200));
                let method = Method::from_bytes(token.as_bytes()).expect("a valid token");
                let r = s
                    .client
                    .request(method, s.url(&format!("/no/such/{token}")))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), StatusCode::NOT_FOUND);
                let method = Method::from_bytes(token.as_bytes()).expect("a valid token");
                let r = s
                    .client
                    .request(method, s.url("/products/7"))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
                let r = s.get(&format!("/{token}/{i}")).await;
                assert_eq!(r.status(), StatusCode::NOT_FOUND);
            }
        }
    };
    flood(0).await;
    // Twice, so that `/metrics`'s own series exist in `before`.
    s.metrics().await;
    let before = s.metrics().await;
    flood(1).await;
    let after = s.metrics().await;
    assert_eq!(
        after.lines().count(),
        before.lines().count(),
        "no new series:\n{after}"
    );
    assert!(
        after.len() <= before.len() + 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert!(
        !after.contains("MMMM"),
        "no made-up method or path is a label"
    );
    assert!(after.contains("method=\"other\",route=\"/products/{id}\",status=\"405\""));
    assert!(after.contains("method=\"GET\",route=\"unmatched\",status=\"404\""));
}
}

// ----- errors -----

/// Every error the service answers is `{"error": {"status", "code", "message"}}`.
async fn json_error(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.expect("body");
    assert!(
        content_type.starts_with("application/json"),
        "{status}: {content_type}: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["error"]["status"], status.as_u16(), "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, body)
}

on_both_backends! {
#[tokio::test]
async fn every_error_is_the_json_contract_and_text_refuses_invisible_characters() {
    let s = TestService::without_redis().await;

    let r = s
        .client
        .delete(s.url("/colors"))
        .send()
        .await
        .expect("DELETE");
    assert!(r.headers().contains_key("allow"), "a 405 keeps its Allow");
    let (status, e) = json_error(r).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(e["error"]["code"], "method_not_allowed");

    for path in [
        "/products/sku/%FF",
        "/categories/%FF%FE",
        "/search?q=%FF",
        "/search?q%C3=lamp",
        "/autocomplete?prefix=ab%E2%80",
        "/products?brand=%80",
    ] {
        let (status, e) = json_error(s.get(path).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
    }
    let (_, e) = json_error(s.get("/search?q=%FF").await).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .contains("UTF-8"),
        "{e}"
    );

    let big = json!({"name": "x".repeat(2 * 1024 * 1024)});
    let r = s
        .client
        .post(s.url("/categories"))
        .json(&big)
        .send()
        .await
        .expect("POST");
    let (status, _) = json_error(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let before = s.json("/categories").await;
    for bad in [
        "Evil\u{202E}gnp.exe",
        "Two\u{2028}lines",
        "Para\u{2029}graph",
        "Iso\u{2066}late",
        "Bell\u{7}",
        "New\nline",
        "C1\u{85}",
    ] {
        let (status, e) = s
            .send(Method::POST, "/categories", Some(json!({"name": bad})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {e}");
        assert_eq!(e["error"]["code"], "invalid");
        let product = json!({
            "sku": "BIDI-1", "name": bad, "brand": "Acme", "price": 1.0, "category_id": 1
        });
        let (status, e) = s.send(Method::POST, "/products", Some(product)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {e}");
    }
    for (field, value) in [
        ("description", json!("a lamp\u{202E}")),
        ("attributes", json!({"material": "wood\u{2028}"})),
        ("brand", json!("Ac\u{2069}me")),
    ] {
        let mut product = json!({
            "sku": "BIDI-2", "name": "Lamp", "brand": "Acme", "price": 1.0, "category_id": 1
        });
        product[field] = value;
        let (status, e) = s.send(Method::POST, "/products", Some(product)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {e}");
    }
    let (status, e) = s.send(Method::GET, "/search?q=lamp%E2%80%AE", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(s.json("/categories").await, before, "nothing was created");
    // Line feeds and tabs stay allowed in a description.
    let product = json!({
        "sku": "DESC-1", "name": "Lamp", "brand": "Acme", "price": 1.0, "category_id": 1,
        "description": "Two lines:\n\tindented"
    });
    let (status, e) = s.send(Method::POST, "/products", Some(product)).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
}
}

// ----- raw connections -----

/// Reads until the peer closes the connection (EOF or reset) or `limit` passes: what was read,
/// and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response with a `content-length` (within 5 s).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {text}");
        out.extend_from_slice(&buf[..n]);
    }
}

async fn connect(s: &TestService) -> TcpStream {
    TcpStream::connect(s.server.addr()).await.expect("connect")
}

/// Slowloris: sockets that send part of a request head, or nothing, are closed after the header
/// timeout; a normal client is served meanwhile.
#[tokio::test]
async fn slow_request_heads_are_closed_after_the_header_timeout() {
    let s = TestService::with_limits(Limits {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..Limits::DEFAULT
    })
    .await;
    let mut sockets = Vec::new();
    for i in 0..10 {
        let mut socket = connect(&s).await;
        if i % 2 == 0 {
            socket
                .write_all(b"GET /health HTTP/1.1\r\nHost: catalog\r\nX-Slow: ")
                .await
                .expect("write");
        }
        sockets.push(socket);
    }
    let started = Instant::now();
    s.json("/health/live").await;
    let handles: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(
                async move { read_until_closed(&mut socket, Duration::from_secs(5)).await },
            )
        })
        .collect();
    for h in handles {
        let (_, closed) = h.await.expect("task");
        assert!(closed, "a slow socket still open after 10 s");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(8),
        "closed after {elapsed:?}"
    );
}

/// A kept-alive connection with no request is closed after the idle timeout.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let s = TestService::with_limits(Limits {
        idle_timeout: Duration::from_millis(400),
        ..Limits::DEFAULT
    })
    .await;
    let mut socket = connect(&s).await;
    socket
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: catalog\r\n\r\n")
        .await
        .expect("write");
    let response = read_response(&mut socket).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut socket, Duration::from_secs(10)).await;
    assert!(closed, "the idle connection is still open after 10 s");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed too early: {:?}",
        started.elapsed()
    );
}

/// With more idle sockets than the connection limit, a new client is refused at once (never left
/// hanging), and served again once sockets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_new_clients_are_refused_fast_never_hung() {
    const LIMIT: u32 = 8;
    let s = TestService::with_limits(Limits {
        max_connections: LIMIT,
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..Limits::DEFAULT
    })
    .await;
    let http = &s.server.app.http;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let mut idle = Vec::new();
    for _ in 0..LIMIT + 4 {
        idle.push(connect(&s).await);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&http.connections_refused) < 4 {
        assert!(
            Instant::now() < deadline,
            "the sockets past the limit were not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count(&http.connections_open),
        u64::from(LIMIT),
        "the limit holds"
    );

    for _ in 0..3 {
        let started = Instant::now();
        let mut socket = connect(&s).await;
        let _ = socket
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: catalog\r\n\r\n")
            .await;
        let (_, closed) = read_until_closed(&mut socket, Duration::from_secs(3)).await;
        assert!(closed, "a client past the limit was left hanging");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let client = reqwest::Client::new();
        let answered = tokio::time::timeout(
            Duration::from_secs(3),
            client.get(s.url("/health/live")).send(),
        )
        .await;
        assert!(answered.is_ok(), "a reqwest client past the limit hung");
    }
    let refused = count(&http.connections_refused);
    assert!(refused >= 4 + 3, "refused {refused}");

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let client = reqwest::Client::new();
        if let Ok(r) = client.get(s.url("/health/live")).send().await {
            assert_eq!(r.status(), StatusCode::OK);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not served again after the sockets went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = s.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("catalog_http_connections_refused_total ")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// A request that takes longer than the request timeout (here: its body never comes) is a JSON
/// 503, and writes nothing.
#[tokio::test]
async fn a_request_past_its_timeout_is_a_json_503() {
    let s = TestService::with_limits(Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::DEFAULT
    })
    .await;
    let before = s.json("/categories").await;
    let mut socket = connect(&s).await;
    socket
        .write_all(
            b"POST /categories HTTP/1.1\r\nHost: catalog\r\nContent-Type: application/json\r\n\
              Content-Length: 40\r\n\r\n{\"name\":",
        )
        .await
        .expect("write");
    let response = read_response(&mut socket).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("\"error\""), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    assert_eq!(s.json("/categories").await, before);
}

// ----- the real binary: signals, secrets -----

/// SIGTERM (and Ctrl-C's SIGINT) stop the real binary gracefully: it stops accepting, the
/// requests in progress finish (none fails), and it exits with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_finish_the_requests_in_progress_then_exit() {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir().expect("dir");
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut running = Running::start(binary(dir.path()));
        let addr = running.addr();
        // Requests in progress: heads sent, and the handler waiting for the body (the server
        // asked for it with `100 Continue`).
        let mut in_flight = Vec::new();
        for i in 0..4 {
            let body = format!("{{\"name\": \"Shutdown {signal} {i}\"}}");
            let mut socket = TcpStream::connect(&addr).await.expect("connect");
            let head = format!(
                "POST /categories HTTP/1.1\r\nHost: catalog\r\nContent-Type: application/json\r\n\
                 Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.expect("write");
            let interim = read_response(&mut socket).await;
            assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
            in_flight.push((socket, body));
        }
        // And a kept-alive connection between requests.
        let mut idle = TcpStream::connect(&addr).await.expect("connect");
        idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: catalog\r\n\r\n")
            .await
            .expect("write");
        assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));

        running.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(&addr).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{signal}: still accepting after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
        assert!(closed, "{signal}: an idle connection kept the server up");
        for (mut socket, body) in in_flight {
            socket.write_all(body.as_bytes()).await.expect("write");
            let response = read_response(&mut socket).await;
            assert!(
                response.starts_with("HTTP/1.1 201"),
                "{signal}: a request in progress failed: {response}"
            );
        }
        let status = running.wait(Duration::from_secs(10));
        assert!(status.success(), "{signal}: exit {status}");
    }
    let db = rusqlite::Connection::open(dir.path().join("catalog.sqlite3")).expect("db");
    let created: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM categories WHERE name LIKE 'Shutdown %'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(created, 8, "every request in progress was written");
}

const PASSWORD: &str = "Pw-8f3kQz-NeverPrinted";
const WRONG_PASSWORD: &str = "Wrong-Zq71-NeverPrinted";

/// A harness Redis with a user `alice` whose password is [`PASSWORD`].
fn redis_with_alice() -> RedisServer {
    RedisServer::start_with_args(&[
        "--user",
        "alice",
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "&*",
        "+@all",
    ])
}

fn url_of(redis: &RedisServer, password: &str) -> String {
    format!("redis://alice:{password}@127.0.0.1:{}/0", redis.port())
}

/// The Redis password is printed nowhere: not by `--help` (any subcommand), the logs at trace,
/// `/health`, `/metrics`, `/health/ready` or an error; a wrong password stops the start with a
/// message naming the user, or with `--allow-degraded` starts degraded and not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_is_never_printed_and_a_wrong_one_is_a_configuration_error() {
    let redis = redis_with_alice();
    let dir = tempfile::tempdir().expect("dir");
    let url = url_of(&redis, PASSWORD);
    let no_secret = |what: &str, text: &str| {
        assert!(
            !text.contains(PASSWORD),
            "{what} prints the password:\n{text}"
        );
        assert!(
            !text.contains(WRONG_PASSWORD),
            "{what} prints the (wrong) password:\n{text}"
        );
    };

    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["warmup", "--help"],
        &["clear", "--help"],
        &["stats", "--help"],
    ] {
        let mut cmd = binary(dir.path());
        cmd.env("REDIS_URL", &url).args(args);
        let (status, text) = output(cmd);
        assert!(status.success(), "{args:?}: {text}");
        assert!(text.contains("REDIS_URL"), "{args:?}: {text}");
        no_secret(&format!("catalog {}", args.join(" ")), &text);
    }

    // Serving, with the right password and every log at trace.
    let log = dir.path().join("trace.log");
    let mut cmd = binary(dir.path());
    cmd.env("REDIS_URL", &url)
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut running = Running::start(cmd);
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{}/health", running.url))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["cache"]["l2"]["status"], "up", "{health}");
    let mut seen = health.to_string();
    for path in [
        "/metrics",
        "/health/ready",
        "/health/live",
        "/no/such",
        "/products/sku/%FF",
        "/products/1",
    ] {
        let r = client
            .get(format!("{}{path}", running.url))
            .send()
            .await
            .expect("GET");
        if path == "/health/ready" {
            assert_eq!(r.status(), StatusCode::OK);
        }
        seen.push_str(&r.text().await.expect("body"));
    }
    no_secret("the HTTP answers", &seen);
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(running.wait(Duration::from_secs(10)).success());
    let trace = std::fs::read_to_string(&log).expect("log");
    assert!(trace.contains("TRACE"), "logs at trace: {trace}");
    no_secret("the trace log", &trace);

    // A wrong password: a configuration error, for the server and the operations commands.
    let wrong = url_of(&redis, WRONG_PASSWORD);
    for args in [&[][..], &["clear", "--all"], &["warmup"]] {
        let mut cmd = binary(dir.path());
        cmd.env("REDIS_URL", &wrong).args(args);
        let (status, text) = output(cmd);
        assert!(
            !status.success(),
            "{args:?} starts with a wrong password: {text}"
        );
        assert!(
            text.contains("refused the credentials of user `alice`")
                && text.contains("--allow-degraded"),
            "{args:?}: {text}"
        );
        assert!(text.contains("redis://alice:***@127.0.0.1"), "{text}");
        no_secret(&format!("{args:?} with a wrong password"), &text);
    }

    // ... unless `--allow-degraded`: it serves, says so, and is live but not ready.
    let log = dir.path().join("degraded.log");
    let mut cmd = binary(dir.path());
    cmd.env("REDIS_URL", &wrong)
        .arg("--allow-degraded")
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut running = Running::start(cmd);
    let get = |path: &str| client.get(format!("{}{path}", running.url)).send();
    assert_eq!(
        get("/health/live").await.expect("live").status(),
        StatusCode::OK
    );
    let ready = get("/health/ready").await.expect("ready");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = ready.text().await.expect("body");
    assert!(ready.contains("alice"), "{ready}");
    let health = get("/health")
        .await
        .expect("health")
        .text()
        .await
        .expect("body");
    assert!(health.contains("startup_problem"), "{health}");
    assert_eq!(
        get("/products/1").await.expect("product").status(),
        StatusCode::OK,
        "serves from L1 and the database"
    );
    no_secret("the degraded answers", &format!("{ready}{health}"));
    running.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(running.wait(Duration::from_secs(10)).success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("starting degraded"), "{text}");
    no_secret("the degraded log", &text);
}

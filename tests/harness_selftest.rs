//! Tests of the test harness itself (`tiercache_tests::RedisServer`).

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tiercache_tests::RedisServer;

fn sync_ping(server: &RedisServer) -> redis::RedisResult<String> {
    let mut conn = server
        .client()
        .get_connection_with_timeout(Duration::from_secs(2))?;
    redis::cmd("PING").query(&mut conn)
}

fn assert_refused(port: u16) {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => panic!("port {port} still accepts connections"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "port {port}: {e}"),
    }
}

#[test]
fn start_ping_stop_restart_sync() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert_ne!(port, 6379);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/0"));
    assert!(server.is_running());
    assert!(server.pid().is_some());
    assert_eq!(sync_ping(&server).expect("PING"), "PONG");

    let mut conn = server.client().get_connection().expect("connect");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .expect("SET");
    drop(conn);

    server.stop();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert_refused(port);
    assert!(sync_ping(&server).is_err());
    server.stop(); // idempotent

    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port, "restart must keep the port");
    assert_eq!(sync_ping(&server).expect("PING after restart"), "PONG");
    // Persistence is off: the data set starts empty again.
    let mut conn = server.client().get_connection().expect("connect");
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut conn).expect("GET");
    assert_eq!(v, None);

    let log = server.log();
    assert!(log.contains("Ready to accept connections"), "log:\n{log}");
    let dbg = format!("{server:?}");
    assert!(dbg.contains(&port.to_string()), "{dbg}");
}

#[tokio::test]
async fn stop_restart_inside_current_thread_runtime() {
    let mut server = RedisServer::start();
    let port = server.port();
    let mut conn = server.connection().await;
    let _: () = conn.set("a", 1).await.expect("SET");
    let a: i64 = conn.get("a").await.expect("GET");
    assert_eq!(a, 1);

    server.stop();
    assert_refused(port);
    // The old multiplexed connection now fails instead of hanging.
    let res = tokio::time::timeout(Duration::from_secs(5), conn.get::<_, Option<i64>>("a"))
        .await
        .expect("command on a dead server must not hang");
    assert!(res.is_err(), "{res:?}");
    assert!(
        server
            .client()
            .get_multiplexed_async_connection()
            .await
            .is_err()
    );

    server.restart();
    let mut conn = server.connection().await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_in_parallel_are_independent() {
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(RedisServer::start),
        tokio::task::spawn_blocking(RedisServer::start),
    );
    let (a, b) = (a.expect("start a"), b.expect("start b"));
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());

    let mut ca = a.connection().await;
    let mut cb = b.connection().await;
    let _: () = ca.set("only-in-a", "x").await.expect("SET");
    let in_a: Option<String> = ca.get("only-in-a").await.expect("GET a");
    let in_b: Option<String> = cb.get("only-in-a").await.expect("GET b");
    assert_eq!(in_a.as_deref(), Some("x"));
    assert_eq!(in_b, None);

    // Stopping one leaves the other alone.
    let mut a = a;
    a.stop();
    let pong: String = redis::cmd("PING")
        .query_async(&mut cb)
        .await
        .expect("PING b");
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn extra_args_are_honoured_and_debug_is_enabled() {
    let mut server =
        RedisServer::start_with_args(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let check = |server: &RedisServer| {
        let mut conn = server.client().get_connection().expect("connect");
        let maxmemory: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory")
            .query(&mut conn)
            .expect("CONFIG GET");
        assert_eq!(maxmemory, ["maxmemory", "2097152"]);
        let policy: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query(&mut conn)
            .expect("CONFIG GET");
        assert_eq!(policy, ["maxmemory-policy", "allkeys-lru"]);
        let save: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query(&mut conn)
            .expect("CONFIG GET");
        assert_eq!(save, ["save", ""]);
    };
    check(&server);

    let mut conn = server.connection().await;
    let started = Instant::now();
    let ok: String = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg("0.2")
        .query_async(&mut conn)
        .await
        .expect("DEBUG SLEEP must be allowed");
    assert_eq!(ok, "OK");
    assert!(started.elapsed() >= Duration::from_millis(150));

    server.restart();
    check(&server); // restart keeps the extra args
}

#[test]
fn drop_kills_the_server() {
    let server = RedisServer::start();
    let port = server.port();
    let dir = server.dir().to_path_buf();
    assert!(dir.is_dir());
    drop(server);
    assert_refused(port);
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());
}

#[test]
fn server_exiting_by_itself_is_noticed_and_restartable() {
    let mut server = RedisServer::start();
    let mut conn = server.client().get_connection().expect("connect");
    // The server closes the connection instead of replying.
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_running() {
        assert!(
            Instant::now() < deadline,
            "server did not exit after SHUTDOWN"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_refused(server.port());
    server.restart();
    assert_eq!(sync_ping(&server).expect("PING"), "PONG");
}

#[test]
#[should_panic(expected = "exited early")]
fn bad_config_panics_with_log() {
    let _server = RedisServer::start_with_args(&["--no-such-option", "1"]);
}

#[test]
fn restart_on_a_taken_port_panics_without_touching_the_other_listener() {
    let mut server = RedisServer::start();
    let port = server.port();
    server.stop();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    squatter.set_nonblocking(true).expect("nonblocking");

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.restart()));
    let msg = match result {
        Ok(()) => panic!("restart succeeded on a taken port"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    assert!(msg.contains("taken by another process"), "{msg}");
    assert!(msg.contains("Address already in use"), "log missing: {msg}");
    assert!(!server.is_running());
    match squatter.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the harness connected to a listener it does not own: {other:?}"),
    }

    // Once the port is free again, restart works.
    drop(squatter);
    server.restart();
    assert_eq!(sync_ping(&server).expect("PING"), "PONG");
}

#[test]
fn quiet_loglevel_still_becomes_ready() {
    let server = RedisServer::start_with_args(&["--loglevel", "warning"]);
    assert_eq!(sync_ping(&server).expect("PING"), "PONG");
}

#[test]
#[should_panic(expected = "no-such-redis-server-binary")]
fn an_explicit_binary_is_the_one_run() {
    let _server = RedisServer::start_bin_with_args("no-such-redis-server-binary", &[]);
}

//! The Redis that services run on: TLS (a CA of one's own, mutual TLS, `#insecure`), ACL users
//! and `requirepass`, and a redis-rs client of the service's own. What cannot work (an unknown
//! CA, a missing client certificate, refused credentials) fails `build()` at once with a
//! configuration error of its kind, never as "Redis is down", and never shows a password.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use cache_core::error::ConfigErrorKind;
use cache_core::{Cache, CacheBuilder, Error, TlsConfig};
use support::*;
use tiercache_tests::RedisServer;

/// A builder with short timeouts and no URL yet.
fn bare(namespace: &str) -> CacheBuilder {
    Cache::builder()
        .namespace(namespace)
        .redis_timeout(Duration::from_millis(500))
        .redis_connect_timeout(Duration::from_secs(2))
}

/// The configuration error `built` must be, with its kind and message.
fn config_error(built: Result<Cache, Error>) -> (ConfigErrorKind, String) {
    match built {
        Err(Error::Config(e)) => (e.kind(), e.to_string()),
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("expected a configuration error, the cache built"),
    }
}

/// A value written by `a` is read by `b` from L2: both really talk to Redis.
async fn shares_l2(a: &Cache, b: &Cache) {
    let (pa, pb) = (
        register(a, "prod:<id>", policy(60)),
        register(b, "prod:<id>", policy(60)),
    );
    a.set(&pa.key(&[&1]).unwrap(), product(1, "Lamp")).await;
    let got = b.get::<Product>(&pb.key(&[&1]).unwrap()).await;
    assert_eq!(got.map(|p| p.name.clone()).as_deref(), Some("Lamp"));
    assert_eq!(b.stats().total.l2_hits, 1, "read from Redis");
    assert_eq!(a.stats().total.l2_errors + b.stats().total.l2_errors, 0);
}

#[tokio::test]
async fn a_ca_of_ones_own_and_insecure_both_reach_a_self_signed_server() {
    let server = RedisServer::start_tls(false);
    let ca = server.certificates().ca_pem.clone();
    let a = bare("tls")
        .redis_url(server.tls_url())
        .redis_tls(TlsConfig::new().ca_pem(ca))
        .require_redis(true)
        .build()
        .await
        .expect("the test CA verifies the server");
    let insecure = format!(
        "rediss://127.0.0.1:{}/0#insecure",
        server.tls_port().unwrap()
    );
    let b = bare("tls")
        .redis_url(insecure)
        .require_redis(true)
        .build()
        .await
        .expect("#insecure accepts the self-signed chain");
    shares_l2(&a, &b).await;
}

#[tokio::test]
async fn a_wrong_ca_is_a_tls_configuration_error_at_build_time() {
    let server = RedisServer::start_tls(false);
    let other_ca = server.certificates().other_ca_pem.clone();
    // Whether Redis is required or not: a handshake that fails will not succeed later.
    for require in [false, true] {
        let built = bare("tls")
            .redis_url(server.tls_url())
            .redis_tls(TlsConfig::new().ca_pem(other_ca.clone()))
            .require_redis(require)
            .build()
            .await;
        let (kind, message) = config_error(built);
        assert_eq!(kind, ConfigErrorKind::Tls, "{message}");
        assert!(message.contains("TLS handshake"), "{message}");
        assert!(message.to_lowercase().contains("certificate"), "{message}");
    }
    // The system's roots do not know the test CA either.
    let (kind, message) = config_error(bare("tls").redis_url(server.tls_url()).build().await);
    assert_eq!(kind, ConfigErrorKind::Tls, "{message}");
}

#[tokio::test]
async fn mutual_tls_works_with_the_client_certificate_and_fails_clearly_without() {
    let server = RedisServer::start_tls(true);
    let c = server.certificates();
    let with_cert = || {
        bare("mtls").redis_url(server.tls_url()).redis_tls(
            TlsConfig::new()
                .ca_pem(c.ca_pem.clone())
                .client_certificate(c.client_cert_pem.clone(), c.client_key_pem.clone()),
        )
    };
    let a = with_cert().require_redis(true).build().await.expect("mTLS");
    let b = with_cert().require_redis(true).build().await.expect("mTLS");
    shares_l2(&a, &b).await;

    let built = bare("mtls")
        .redis_url(server.tls_url())
        .redis_tls(TlsConfig::new().ca_pem(c.ca_pem.clone()))
        .build()
        .await;
    let (kind, message) = config_error(built);
    assert_eq!(kind, ConfigErrorKind::Tls, "{message}");
    assert!(message.contains("client certificate"), "{message}");
}

#[tokio::test]
async fn a_redis_client_of_ones_own_is_used_as_is() {
    let server = RedisServer::start_tls(true);
    // The harness's client trusts the test CA and presents the client certificate.
    let own = bare("own")
        .redis_client(server.tls_client())
        .require_redis(true)
        .build()
        .await
        .expect("a client of one's own");
    assert!(own.has_l2());
    let c = server.certificates();
    let by_url = bare("own")
        .redis_url(server.tls_url())
        .redis_tls(
            TlsConfig::new()
                .ca_pem(c.ca_pem.clone())
                .client_certificate(c.client_cert_pem.clone(), c.client_key_pem.clone()),
        )
        .build()
        .await
        .expect("mTLS by URL");
    shares_l2(&own, &by_url).await;
}

#[tokio::test]
async fn acl_users_work_and_refused_credentials_name_the_user_not_the_password() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">secret-A1", "~*", "&*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "bob", "on", ">secret-B2", "~other:*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let port = server.port();
    let url = |userinfo: &str| format!("redis://{userinfo}@127.0.0.1:{port}/0");

    let a = bare("acl")
        .redis_url(url("alice:secret-A1"))
        .build()
        .await
        .unwrap();
    let b = bare("acl")
        .redis_url(url("alice:secret-A1"))
        .build()
        .await
        .unwrap();
    shares_l2(&a, &b).await;

    // Refused credentials are an error whether Redis is required or not.
    for require in [false, true] {
        let built = bare("acl")
            .redis_url(url("alice:not-her-password"))
            .require_redis(require)
            .build()
            .await;
        let (kind, message) = config_error(built);
        assert_eq!(kind, ConfigErrorKind::Auth, "{message}");
        assert!(message.contains("`alice`"), "names the user: {message}");
        assert!(!message.contains("not-her-password"), "{message}");
    }
    // ... unless the service asked to start degraded: L1 only, Redis probed in the background.
    let degraded = bare("acl")
        .redis_url(url("alice:not-her-password"))
        .start_degraded_if_refused(true)
        .build()
        .await
        .expect("starts degraded");
    assert!(degraded.has_l2());
    assert_ne!(degraded.health().await.l2.status, cache_core::L2Status::Up);
    let (kind, message) = config_error(bare("acl").redis_url(url("mallory:x")).build().await);
    assert_eq!(kind, ConfigErrorKind::Auth, "{message}");
    assert!(message.contains("`mallory`"), "{message}");

    // Bob logs in, but his ACL does not grant the namespace's keys.
    let (kind, message) = config_error(bare("acl").redis_url(url("bob:secret-B2")).build().await);
    assert_eq!(kind, ConfigErrorKind::Auth, "{message}");
    assert!(
        message.contains("NOPERM") && message.contains("`bob`"),
        "{message}"
    );
    assert!(!message.contains("secret-B2"), "{message}");
}

#[tokio::test]
async fn a_password_only_server_accepts_its_password_and_refuses_others() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "pw-9f3"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let port = server.port();
    let url = |userinfo: &str| format!("redis://{userinfo}127.0.0.1:{port}/0");

    let a = bare("pw").redis_url(url(":pw-9f3@")).build().await.unwrap();
    let b = bare("pw").redis_url(url(":pw-9f3@")).build().await.unwrap();
    shares_l2(&a, &b).await;

    let (kind, message) = config_error(bare("pw").redis_url(url(":wrong-7c1@")).build().await);
    assert_eq!(kind, ConfigErrorKind::Auth, "{message}");
    assert!(message.contains("default user"), "{message}");
    assert!(!message.contains("wrong-7c1"), "{message}");
    // No password at all: NOAUTH on the first command, still at build time.
    let (kind, message) = config_error(bare("pw").redis_url(url("")).build().await);
    assert_eq!(kind, ConfigErrorKind::Auth, "{message}");
    assert!(message.contains("NOAUTH"), "{message}");
}

#[tokio::test]
async fn an_unreachable_tls_redis_still_means_starting_degraded() {
    let mut server = RedisServer::start_tls(false);
    let url = server.tls_url();
    let ca = server.certificates().ca_pem.clone();
    server.stop();
    let cache = bare("down")
        .redis_url(url)
        .redis_tls(TlsConfig::new().ca_pem(ca))
        .build()
        .await
        .expect("unreachable is not a configuration error");
    assert!(cache.has_l2());
}

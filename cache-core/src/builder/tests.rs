//! Unit tests of the builder: its `Debug` hides secrets, its refusals have a kind, and its
//! defaults are valid.

use super::*;

#[test]
fn debug_hides_the_redis_password() {
    let b = CacheBuilder::default()
        .redis_url("redis://alice:s3cret@cache:6379/0")
        .redis_tls(TlsConfig::new().client_certificate("CERT", "PRIVATE KEY"));
    let shown = format!("{b:?}");
    assert!(shown.contains("redis://alice:***@cache:6379/0"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let password_only = CacheBuilder::default().redis_url("rediss://:s3cret@cache:6380/");
    let shown = format!("{password_only:?}");
    assert!(shown.contains("rediss://:***@cache:6380/"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let client = redis::Client::open("redis://bob:hunter2@cache:6379/").unwrap();
    let shown = format!("{:?}", CacheBuilder::default().redis_client(client));
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn redis_settings_that_contradict_each_other_are_rejected() {
    let kind = |r: Result<Cache, Error>| match r {
        Err(Error::Config(e)) => e.kind(),
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let tls = TlsConfig::new;
    let client = || redis::Client::open("rediss://cache:6380/").unwrap();
    let b = CacheBuilder::default;
    assert_eq!(
        kind(
            b().redis_url("redis://cache/")
                .redis_tls(tls())
                .build()
                .await
        ),
        ConfigErrorKind::Tls
    );
    assert_eq!(
        kind(b().redis_tls(tls()).build().await),
        ConfigErrorKind::Tls
    );
    assert_eq!(
        kind(b().redis_client(client()).redis_tls(tls()).build().await),
        ConfigErrorKind::Redis
    );
}

#[test]
fn config_errors_have_a_kind() {
    let kind = |b: CacheBuilder| match b.validate() {
        Err(Error::Config(e)) => e.kind(),
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let b = CacheBuilder::default;
    assert_eq!(kind(b().namespace("")), ConfigErrorKind::Namespace);
    assert_eq!(
        kind(b().redis_timeout(Duration::ZERO)),
        ConfigErrorKind::Duration
    );
    assert_eq!(
        kind(b().default_ttl(Duration::MAX)),
        ConfigErrorKind::Duration
    );
    let long = Duration::from_secs(10 * 24 * 3600);
    assert_eq!(kind(b().default_ttl(long)), ConfigErrorKind::Policy);
}

fn config_error(b: CacheBuilder) -> String {
    match b.validate() {
        Err(Error::Config(e)) => e.message().to_owned(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_required_redis_that_cannot_be_reached_is_an_error_with_its_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let built = CacheBuilder::default()
        .redis_url(format!("redis://127.0.0.1:{port}/"))
        .require_redis(true)
        .build()
        .await;
    let Err(error) = built else {
        panic!("nothing listens on port {port}");
    };
    let Error::RedisUnavailable(failure) = &error else {
        panic!("expected RedisUnavailable, got {error:?}");
    };
    assert!(
        failure
            .redis_error()
            .is_some_and(|e| e.is_connection_refusal()),
        "the refusal is kept: {failure:?}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn the_defaults_are_valid() {
    assert!(CacheBuilder::default().validate().is_ok());
    let at_cap = CacheBuilder::default()
        .redis_timeout(MAX_DURATION_SETTING)
        .redis_connect_timeout(MAX_DURATION_SETTING)
        .max_entry_lifetime(MAX_DURATION_SETTING)
        .default_ttl(MAX_DURATION_SETTING);
    assert!(at_cap.validate().is_ok(), "the cap itself is accepted");
}

#[test]
fn settings_that_would_overflow_later_are_rejected() {
    let huge = Duration::MAX;
    let b = CacheBuilder::default;
    assert!(config_error(b().redis_timeout(huge)).contains("redis_timeout"));
    assert!(config_error(b().redis_connect_timeout(huge)).contains("redis_connect_timeout"));
    assert!(config_error(b().circuit_breaker(3, huge)).contains("cool-down"));
    assert!(config_error(b().max_entry_lifetime(huge)).contains("max_entry_lifetime"));
    assert!(config_error(b().default_ttl(huge)).contains("default_ttl"));
    let just_over = MAX_DURATION_SETTING + Duration::from_secs(1);
    assert!(config_error(b().redis_timeout(just_over)).contains("redis_timeout"));
    // ttl + stale of the default policy is checked against max_entry_lifetime.
    assert!(
        config_error(b().default_ttl(Duration::from_secs(10 * 24 * 3600)))
            .contains("max entry lifetime")
    );
}

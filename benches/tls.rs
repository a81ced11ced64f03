//! The L2 over TLS (a harness server with `--tls-port` and its test CA, rustls on the client): an
//! L2 hit (`get` with a fresh L1) against raw redis-rs over the same TLS server (one multiplexed
//! `GET` + `rmp_serde::from_slice`), and `get_many` of 100 against a raw `MGET` of the 100 keys +
//! decode. Same shapes as `l2_hit` and `batch`, so the two runs show what TLS adds.
//!
//! Fresh L1: the pattern's L1 TTL is 1 ms ([`l2_only_policy`]) and reads cycle through `ENTRIES`
//! keys, so every timed tiercache read is served by Redis (checked after the run).
//!
//! Target: within 1.15x of raw redis-rs over TLS, as over plain TCP.

use cache_core::codec::encode_value;
use cache_core::{Cache, PatternConfig, TlsConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use tiercache_benches::deployment::{fill, l2_reads, raw_key};
use tiercache_benches::{ENTRIES, RedisServer, config, l2_only_policy, product, runtime};

fn tls(c: &mut Criterion) {
    let server = RedisServer::start_tls(false);
    let rt = runtime();
    let ca = server.certificates().ca_pem.clone();
    let tier = rt.block_on(async {
        Cache::builder()
            .namespace("bench-tls")
            .redis_url(server.tls_url())
            .redis_tls(TlsConfig::new().ca_pem(ca.clone()))
            .require_redis(true)
            .l1_capacity_bytes(256 * 1024 * 1024)
            .build()
            .await
            .expect("cache over TLS")
    });
    let conn = rt.block_on(async {
        redis::Client::build_with_tls(
            server.tls_url(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.into_bytes()),
            },
        )
        .expect("raw TLS client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw TLS connection")
    });
    let pattern = tier
        .register(PatternConfig::new("prod:<id>", l2_only_policy()))
        .expect("pattern");
    let keys = fill(&rt, &tier, &pattern);
    rt.block_on(async {
        let mut pipe = redis::pipe();
        for id in 0..ENTRIES {
            pipe.set(raw_key(id), encode_value(&product(id)).expect("encode"))
                .ignore();
        }
        let () = pipe
            .query_async(&mut conn.clone())
            .await
            .expect("raw writes");
    });
    l2_reads(c, "tls", &rt, &tier, &pattern, &keys, &conn);
    drop(server);
}

criterion_group! {
    name = benches;
    config = config();
    targets = tls
}
criterion_main!(benches);

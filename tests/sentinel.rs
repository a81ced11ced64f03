//! The cache on Redis Sentinel (a master, a replica, three sentinels from the harness): two
//! instances behave as one cache, and a failover (`SENTINEL FAILOVER`, or the master killed)
//! under concurrent reads and writes fails no call and leaves the cache on the new master.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod deployment_scenarios;
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, CacheBuilder, PatternConfig, TtlPolicy};
use deployment_scenarios::*;
use redis::AsyncCommands;
use support::eventually;
use tiercache_tests::{MASTER_NAME, SentinelGroup};

fn builder(group: &SentinelGroup, namespace: &str) -> CacheBuilder {
    Cache::builder()
        .namespace(namespace)
        .redis_sentinel(MASTER_NAME, group.sentinels())
        .redis_timeout(Duration::from_millis(500))
        .redis_connect_timeout(Duration::from_millis(500))
        .circuit_breaker(3, Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behave_as_one_through_sentinel() {
    let group = SentinelGroup::start();
    two_instances_behave_as_one(|| builder(&group, "sent")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_reads_and_writes_fails_no_call_and_serves_no_stale_value() {
    let group = SentinelGroup::start();
    let old_master = group.master_port();
    // The writer, and a reader whose L1 keeps a value 1 ms: its reads are L2 reads.
    let (writer, pw) = instance(builder(&group, "fo")).await;
    let reader = builder(&group, "fo").build().await.unwrap();
    let pr = reader
        .register(
            PatternConfig::new(
                "prod:<id>",
                TtlPolicy::new(Duration::from_secs(60)).l1_ttl(Duration::from_millis(1)),
            )
            .tag("catalog"),
        )
        .unwrap();
    const KEYS: u64 = 64;
    let (probe_w, probe_r) = (
        pw.key(&[&1_000_000u64]).unwrap(),
        pr.key(&[&1_000_001u64]).unwrap(),
    );
    let (writer, reader) = (Arc::new(writer), Arc::new(reader));
    let written: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    // The same, counting only the writes issued once both instances are on the new master: a
    // write the old master acknowledged before they moved may be lost with it (Redis's
    // asynchronous replication), which is what `stale_during` counts.
    let written_after: Arc<Vec<AtomicU64>> =
        Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    // Stale reads: a read issued after the write of a later value had completed.
    let stale_during = Arc::new(AtomicUsize::new(0));
    let switched = Arc::new(AtomicBool::new(false));
    let stale_after = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let work = {
        let (writer, reader, written, written_after, stop) = (
            Arc::clone(&writer),
            Arc::clone(&reader),
            Arc::clone(&written),
            Arc::clone(&written_after),
            Arc::clone(&stop),
        );
        let (stale_during, stale_after, switched, calls) = (
            Arc::clone(&stale_during),
            Arc::clone(&stale_after),
            Arc::clone(&switched),
            Arc::clone(&calls),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let i = n % KEYS;
                let key = pw.key(&[&i]).unwrap();
                let moved = switched.load(Ordering::SeqCst);
                writer.set(&key, n).await;
                written[i as usize].store(n, Ordering::SeqCst);
                if moved {
                    written_after[i as usize].store(n, Ordering::SeqCst);
                }
                // A key last read KEYS / 2 writes ago: long past its 1 ms in the reader's L1.
                let j = (n + KEYS / 2) % KEYS;
                let floor = written[j as usize].load(Ordering::SeqCst);
                let floor_after = written_after[j as usize].load(Ordering::SeqCst);
                let key = pr.key(&[&j]).unwrap();
                let seen = *reader
                    .get_or_load(&key, || async { Ok::<_, Infallible>(floor) })
                    .await
                    .unwrap();
                calls.fetch_add(2, Ordering::SeqCst);
                if seen < floor_after {
                    stale_after.fetch_add(1, Ordering::SeqCst);
                } else if seen < floor {
                    stale_during.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_port = tokio::task::block_in_place(|| group.failover());
    assert_ne!(new_port, old_master);
    // Both instances follow: their writes land on the new master.
    let master = group.master();
    let raw = master.connection().await;
    let followed = eventually(Duration::from_secs(10), || {
        let mut raw = raw.clone();
        let (w, r) = (Arc::clone(&writer), Arc::clone(&reader));
        let (probe_w, probe_r) = (probe_w.clone(), probe_r.clone());
        async move {
            w.set(&probe_w, 1u64).await;
            r.set(&probe_r, 1u64).await;
            let a: bool = raw.exists("fo:k:prod:1000000").await.unwrap_or(false);
            let b: bool = raw.exists("fo:k:prod:1000001").await.unwrap_or(false);
            a && b
        }
    })
    .await;
    assert!(followed, "both instances write to the new master");
    switched.store(true, Ordering::SeqCst);
    let before = calls.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || async {
            calls.load(Ordering::SeqCst) > before + 400
        })
        .await,
        "traffic goes on after the failover"
    );
    stop.store(true, Ordering::SeqCst);
    work.await.expect("no call failed or panicked");
    eprintln!(
        "calls {}, stale reads while the instances moved {}, after {}",
        calls.load(Ordering::SeqCst),
        stale_during.load(Ordering::SeqCst),
        stale_after.load(Ordering::SeqCst)
    );
    assert_eq!(
        stale_after.load(Ordering::SeqCst),
        0,
        "no stale read once moved"
    );
    // A fresh instance (L2 only) reads the last value written of every key.
    let (fresh, pf) = instance(builder(&group, "fo")).await;
    for i in 0..KEYS {
        let last = written[i as usize].load(Ordering::SeqCst);
        let got = fresh.get::<u64>(&pf.key(&[&i]).unwrap()).await;
        assert_eq!(got.as_deref(), Some(&last), "prod:{i} on the new master");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_killed_means_slower_never_failed_and_the_cache_follows_the_promotion() {
    let mut group = SentinelGroup::start();
    let (cache, pattern) = instance(builder(&group, "kill")).await;
    let cache = Arc::new(cache);
    let old = group.master_port();
    let calls = serve_through(Arc::clone(&cache), pattern.clone(), async {
        let index = group.servers.iter().position(|s| s.port() == old).unwrap();
        group.servers[index].stop();
        let promoted = eventually(Duration::from_secs(30), || async {
            tokio::task::block_in_place(|| group.master_port()) != old
        })
        .await;
        assert!(promoted, "the sentinels promote the replica");
    })
    .await;
    assert!(calls > 0);
    let master = group.master();
    let raw = master.connection().await;
    let key = pattern.key(&[&7_000u64]).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let mut raw = raw.clone();
            cache.set(&key, 1u64).await;
            raw.exists::<_, bool>("kill:k:prod:7000")
                .await
                .unwrap_or(false)
        })
        .await,
        "the cache writes to the promoted master"
    );
}

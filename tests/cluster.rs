//! The cache on Redis Cluster (three primaries from the harness, a replica where a test kills a
//! primary): two instances behave as one cache, an entry and its tombstone share a slot, a
//! resharding under reads and writes is followed (no error, no stale read), and a primary killed
//! means slower, never failed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod deployment_scenarios;
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::error::ConfigErrorKind;
use cache_core::{Cache, CacheBuilder, Error, PatternConfig, TtlPolicy};
use deployment_scenarios::*;
use support::eventually;
use tiercache_tests::RedisCluster;

fn builder(cluster: &RedisCluster, namespace: &str) -> CacheBuilder {
    Cache::builder()
        .namespace(namespace)
        .redis_cluster(cluster.seeds())
        .redis_timeout(Duration::from_millis(1_000))
        .redis_connect_timeout(Duration::from_millis(1_000))
        .circuit_breaker(3, Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behave_as_one_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    two_instances_behave_as_one(|| builder(&cluster, "clu")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_its_tombstone_and_its_lease_share_a_slot() {
    let cluster = RedisCluster::start(3, 0);
    let (cache, pattern) = instance(builder(&cluster, "lay")).await;
    let mut slots = std::collections::HashSet::new();
    for i in 0..30u64 {
        let key = pattern.key(&[&i]).unwrap();
        cache.set(&key, i).await;
        cache.invalidate(&key).await;
        let entry = cluster.slot_of(&format!("lay:k:{{prod:{i}}}"));
        assert_eq!(entry, cluster.slot_of(&format!("lay:d:{{prod:{i}}}")));
        assert_eq!(entry, cluster.slot_of(&format!("lay:l:{{prod:{i}}}")));
        // The tombstone is where its slot's owner is: written, not refused.
        let owner = &cluster.nodes[cluster.owner_of(entry)];
        let mut conn = owner.client().get_connection().unwrap();
        let tombstone: Option<String> = redis::cmd("GET")
            .arg(format!("lay:d:{{prod:{i}}}"))
            .query(&mut conn)
            .unwrap();
        assert!(tombstone.is_some(), "prod:{i}'s tombstone on its primary");
        slots.insert(entry);
    }
    assert!(
        slots.len() > 20,
        "keys spread over the cluster: {} slots",
        slots.len()
    );
    let stats = cache.stats();
    assert_eq!(stats.total.l2_errors + stats.l2_errors_unattributed, 0);
}

#[test]
fn a_namespace_with_braces_is_refused_on_a_cluster() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let built = runtime.block_on(
        Cache::builder()
            .namespace("a{b")
            .redis_cluster(["127.0.0.1:1"])
            .build(),
    );
    match built {
        Err(Error::Config(e)) => assert_eq!(e.kind(), ConfigErrorKind::Namespace, "{e}"),
        Err(e) => panic!("expected a namespace error, got {e}"),
        Ok(_) => panic!("a namespace with `{{` builds on a cluster"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharding_under_reads_and_writes_is_followed_with_no_error_and_no_stale_read() {
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let (writer, pw) = instance(builder(&cluster, "re")).await;
    let reader = builder(&cluster, "re").build().await.unwrap();
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
    let (writer, reader) = (Arc::new(writer), Arc::new(reader));
    let written: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    for i in 0..KEYS {
        writer.set(&pw.key(&[&i]).unwrap(), 0u64).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let work = {
        let (writer, reader, written) = (
            Arc::clone(&writer),
            Arc::clone(&reader),
            Arc::clone(&written),
        );
        let (stop, stale, calls) = (Arc::clone(&stop), Arc::clone(&stale), Arc::clone(&calls));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let i = n % KEYS;
                let key = pw.key(&[&i]).unwrap();
                writer.set(&key, n).await;
                written[i as usize].store(n, Ordering::SeqCst);
                let j = (n + KEYS / 2) % KEYS;
                let floor = written[j as usize].load(Ordering::SeqCst);
                let key = pr.key(&[&j]).unwrap();
                let seen = *reader
                    .get_or_load(&key, || async { Ok::<_, Infallible>(floor) })
                    .await
                    .unwrap();
                if seen < floor {
                    stale.fetch_add(1, Ordering::SeqCst);
                }
                calls.fetch_add(2, Ordering::SeqCst);
            }
        })
    };
    // Move the slots of a third of the keys, one by one, each in steps (keys migrated a few at
    // a time, so that reads and writes meet ASK redirections and TRYAGAIN), then MOVED.
    let slots: Vec<(u16, usize)> = {
        let mut seen = std::collections::BTreeMap::new();
        for i in (0..KEYS).step_by(3) {
            let slot = cluster.slot_of(&format!("re:k:{{prod:{i}}}"));
            seen.entry(slot).or_insert_with(|| cluster.owner_of(slot));
        }
        seen.into_iter().collect()
    };
    let mover = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            for (slot, from) in &slots {
                let to = (from + 1) % 3;
                cluster.begin_move(*slot, *from, to);
                while cluster.migrate_keys(*slot, *from, to, 1) > 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                cluster.finish_move(*slot, to);
            }
            slots.len()
        })
    };
    let moved = mover.await.unwrap();
    let before = calls.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || async {
            calls.load(Ordering::SeqCst) > before + 200
        })
        .await,
        "traffic goes on after the resharding"
    );
    stop.store(true, Ordering::SeqCst);
    work.await.expect("no call failed or panicked");
    eprintln!(
        "{moved} slots moved under {} calls",
        calls.load(Ordering::SeqCst)
    );
    assert_eq!(stale.load(Ordering::SeqCst), 0, "no stale read");
    for cache in [&writer, &reader] {
        let stats = cache.stats();
        assert_eq!(
            stats.total.l2_errors + stats.l2_errors_unattributed,
            0,
            "redirections are followed, never counted as Redis failing"
        );
    }
    let (fresh, pf) = instance(builder(&cluster, "re")).await;
    for i in 0..KEYS {
        let last = written[i as usize].load(Ordering::SeqCst);
        let got = fresh.get::<u64>(&pf.key(&[&i]).unwrap()).await;
        assert_eq!(got.as_deref(), Some(&last), "prod:{i} after the resharding");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_means_slower_never_failed_and_its_replica_takes_over() {
    let mut cluster = RedisCluster::start(3, 1);
    let (cache, pattern) = instance(builder(&cluster, "kc")).await;
    let (other, po) = instance(builder(&cluster, "kc")).await;
    let cache = Arc::new(cache);
    let calls = serve_through(Arc::clone(&cache), pattern.clone(), async {
        cluster.kill(0);
        tokio::task::block_in_place(|| cluster.wait_ready());
    })
    .await;
    assert!(calls > 0);
    // After the promotion, writes and invalidations reach every slot again: what one instance
    // invalidates, another does not serve.
    let keys: Vec<_> = (0..50u64).map(|i| pattern.key(&[&i]).unwrap()).collect();
    assert!(
        eventually(Duration::from_secs(10), || async {
            cache
                .set_many(keys.iter().map(|k| (k.clone(), 77u64)).collect())
                .await;
            let (fresh, pf) = instance(builder(&cluster, "kc")).await;
            let all = (0..50u64)
                .map(|i| pf.key(&[&i]).unwrap())
                .collect::<Vec<_>>();
            fresh
                .get_many::<u64>(&all)
                .await
                .iter()
                .all(|v| v.as_deref() == Some(&77))
        })
        .await,
        "every slot is written again once the replica took over"
    );
    cache.invalidate_tag("catalog").await;
    assert!(
        eventually(PROPAGATION, || async {
            other.get::<u64>(&po.key(&[&3u64]).unwrap()).await.is_none()
        })
        .await,
        "another instance honours the tag after the failover"
    );
}

//! Scenarios that must hold on every deployment (one server, Sentinel, Cluster), written once
//! over a builder factory: `tests/sentinel.rs` and `tests/cluster.rs` run them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{Cache, CacheBuilder, Key, Pattern, PatternConfig, TtlPolicy};

use crate::support::eventually;

/// How long a change made by one instance may take to reach another's L1 (the backplane).
pub const PROPAGATION: Duration = Duration::from_secs(5);

fn config() -> PatternConfig {
    PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(60))).tag("catalog")
}

/// A cache from `builder` with the scenario's pattern.
pub async fn instance(builder: CacheBuilder) -> (Cache, Pattern) {
    let cache = builder.build().await.expect("cache builds");
    let pattern = cache.register(config()).expect("pattern registers");
    (cache, pattern)
}

async fn load(cache: &Cache, key: &Key, value: u64, loads: &AtomicUsize) -> u64 {
    *cache
        .get_or_load(key, || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(value)
        })
        .await
        .unwrap()
}

/// Two instances share L2 and see each other's invalidations (key, overwrite, tag, pattern,
/// clear); a fresh instance (reading L2 only) never sees an invalidated value.
pub async fn two_instances_behave_as_one(builder: impl Fn() -> CacheBuilder) {
    let (a, pa) = instance(builder()).await;
    let (b, pb) = instance(builder()).await;
    let ka = |i: u64| pa.key(&[&i]).unwrap();
    let kb = |i: u64| pb.key(&[&i]).unwrap();
    let (loads_a, loads_b) = (AtomicUsize::new(0), AtomicUsize::new(0));

    // Shared L2: what A loaded, B reads without loading (keys spread over many slots).
    for i in 0..40 {
        assert_eq!(load(&a, &ka(i), i, &loads_a).await, i);
    }
    for i in 0..40 {
        assert_eq!(
            load(&b, &kb(i), 1000 + i, &loads_b).await,
            i,
            "B reads A's value"
        );
    }
    assert_eq!(loads_b.load(Ordering::SeqCst), 0, "B loaded nothing");
    assert_eq!(b.stats().total.l2_hits, 40);
    let many: Vec<Key> = (0..40).map(kb).collect();
    let got = b.get_many::<u64>(&many).await;
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, v)| v.as_deref() == Some(&(i as u64)))
    );

    // A key invalidation and an overwrite reach B's L1 and L2.
    a.invalidate(&ka(1)).await;
    a.set(&ka(2), 2002u64).await;
    assert!(
        eventually(PROPAGATION, || async {
            b.get::<u64>(&kb(1)).await.is_none()
                && b.get::<u64>(&kb(2)).await.as_deref() == Some(&2002)
        })
        .await,
        "B sees A's invalidation and overwrite"
    );
    let (c, pc) = instance(builder()).await;
    assert!(
        c.get::<u64>(&pc.key(&[&1]).unwrap()).await.is_none(),
        "L2 entry gone"
    );
    assert_eq!(
        c.get::<u64>(&pc.key(&[&2]).unwrap()).await.as_deref(),
        Some(&2002)
    );

    // A pattern invalidation scans every node: prod:1* goes (prod:1, prod:10..19), others stay.
    a.invalidate_pattern("prod:1*").await;
    let (c, pc) = instance(builder()).await;
    for i in 0..40u64 {
        let gone = i == 1 || (10..20).contains(&i);
        let v = c.get::<u64>(&pc.key(&[&i]).unwrap()).await;
        assert_eq!(
            v.is_none(),
            gone,
            "prod:{i} after invalidating prod:1* ({v:?})"
        );
    }
    assert!(
        eventually(PROPAGATION, || async {
            b.get::<u64>(&kb(15)).await.is_none()
        })
        .await,
        "B's L1 drops the pattern"
    );

    // A tag mark: every tagged entry is stale for everyone, at once for a fresh instance.
    a.invalidate_tag("catalog").await;
    let (c, pc) = instance(builder()).await;
    for i in [0u64, 3, 25, 39] {
        assert!(
            c.get::<u64>(&pc.key(&[&i]).unwrap()).await.is_none(),
            "prod:{i} after the tag"
        );
    }
    assert!(
        eventually(PROPAGATION, || async {
            b.get::<u64>(&kb(30)).await.is_none()
        })
        .await,
        "B honours the tag"
    );

    // Values written after the mark are served; a clear makes them stale too.
    a.set_many((0..40u64).map(|i| (ka(i), 5000 + i)).collect())
        .await;
    let (c, pc) = instance(builder()).await;
    assert_eq!(
        c.get::<u64>(&pc.key(&[&7]).unwrap()).await.as_deref(),
        Some(&5007)
    );
    a.clear().await;
    let (c, pc) = instance(builder()).await;
    for i in [0u64, 7, 39] {
        assert!(
            c.get::<u64>(&pc.key(&[&i]).unwrap()).await.is_none(),
            "prod:{i} after clear"
        );
    }
    assert!(
        eventually(PROPAGATION, || async {
            b.get::<u64>(&kb(7)).await.is_none()
        })
        .await,
        "B honours the clear"
    );
}

/// Reads and writes on `cache` while `outage` runs: every call returns (the loader's value when
/// L2 cannot answer). Returns how many calls were made.
pub async fn serve_through<F: std::future::Future<Output = ()>>(
    cache: Arc<Cache>,
    pattern: Pattern,
    outage: F,
) -> usize {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (stop, calls) = (Arc::clone(&stop), Arc::clone(&calls));
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = pattern.key(&[&(i % 50)]).unwrap();
                let value = *cache
                    .get_or_load(&key, || async move { Ok::<_, Infallible>(i % 50) })
                    .await
                    .unwrap();
                assert_eq!(value, i % 50, "a read serves the key's value");
                cache.set(&key, i % 50).await;
                calls.fetch_add(2, Ordering::SeqCst);
                i += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    outage.await;
    stop.store(true, Ordering::SeqCst);
    worker.await.expect("no call failed or panicked");
    calls.load(Ordering::SeqCst)
}

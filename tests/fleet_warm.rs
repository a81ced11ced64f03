//! Fleet popularity: instances count the keys they read from Redis, and a new instance warms its
//! L1 from the most read ones without running a loader.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::time::Duration;

use support::*;
use tiercache_tests::RedisServer;

/// The popularity set of `template` under `namespace`: (key, score), most read first.
async fn popularity(server: &RedisServer, namespace: &str, template: &str) -> Vec<(String, f64)> {
    let mut conn = server.connection().await;
    redis::cmd("ZREVRANGE")
        .arg(format!("{namespace}:p:{template}"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .expect("ZREVRANGE")
}

#[tokio::test]
async fn a_new_instance_warms_its_l1_from_what_the_fleet_reads_most() {
    let server = RedisServer::start();
    // Instance A loads ten products, then another instance reads products 0..3 from Redis
    // again and again: they are the fleet's most read.
    let a = builder(&server, "shop")
        .fleet_sampling(1)
        .build()
        .await
        .unwrap();
    let reader = builder(&server, "shop")
        .fleet_sampling(1)
        .build()
        .await
        .unwrap();
    let pa = register(&a, "prod:<id>", policy(60));
    let pr = register(&reader, "prod:<id>", policy(60));
    for id in 0..10u64 {
        a.get_or_load(&pa.key(&[&id]).unwrap(), || async move {
            Ok::<_, Infallible>(product(id, "Lamp"))
        })
        .await
        .unwrap();
    }
    for id in 0..3u64 {
        let key = pr.key(&[&id]).unwrap();
        // Each read from another fresh instance is an L2 hit, counted.
        for _ in 0..=id {
            let fresh = builder(&server, "shop")
                .fleet_sampling(1)
                .build()
                .await
                .unwrap();
            let p = register(&fresh, "prod:<id>", policy(60));
            assert!(
                fresh
                    .get::<Product>(&p.key(&[&id]).unwrap())
                    .await
                    .is_some()
            );
        }
        assert!(reader.get::<Product>(&key).await.is_some());
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            popularity(&server, "shop", "prod:<id>").await.len() == 10
                && popularity(&server, "shop", "prod:<id>").await[0] == ("prod:2".to_owned(), 5.0)
        })
        .await,
        "every load and L2 hit counted: {:?}",
        popularity(&server, "shop", "prod:<id>").await
    );

    // A new instance warms the 3 most read: product 2 (1 load + 4 L2 hits), 1 (3), 0 (2).
    let b = builder(&server, "shop").build().await.unwrap();
    let pb = register(&b, "prod:<id>", policy(60));
    assert_eq!(b.warm_from_fleet::<Product>(&pb, 3).await.unwrap(), 3);
    let stats = b.stats();
    assert_eq!(stats.l1_entries, 3);
    assert_eq!(
        (stats.total.l1_hits, stats.total.l2_hits, stats.total.loads),
        (0, 0, 0),
        "warming counts no hit and runs no loader"
    );
    for id in 0..3u64 {
        let v = b
            .get_or_load(&pb.key(&[&id]).unwrap(), || async {
                Ok::<_, Infallible>(product(99, "loader ran"))
            })
            .await
            .unwrap();
        assert_eq!(v.id, id, "served from the warmed L1");
    }
    assert_eq!(b.stats().total.l1_hits, 3);
    assert_eq!(b.stats().total.loads, 0);
    // Warming again skips what L1 holds; a pattern nobody read warms nothing.
    assert_eq!(b.warm_from_fleet::<Product>(&pb, 3).await.unwrap(), 0);
    let other = register(&b, "cat:<id>", policy(60));
    assert_eq!(b.warm_from_fleet::<Product>(&other, 10).await.unwrap(), 0);
}

#[tokio::test]
async fn invalidated_entries_are_not_warmed_and_l1_hits_are_not_counted() {
    let server = RedisServer::start();
    let a = builder(&server, "shop")
        .fleet_sampling(1)
        .build()
        .await
        .unwrap();
    let pa = register(&a, "prod:<id>", policy(60));
    for id in 0..4u64 {
        a.get_or_load(&pa.key(&[&id]).unwrap(), || async move {
            Ok::<_, Infallible>(product(id, "Lamp"))
        })
        .await
        .unwrap();
        // L1 hits: never counted.
        for _ in 0..5 {
            a.get::<Product>(&pa.key(&[&id]).unwrap()).await.unwrap();
        }
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            let p = popularity(&server, "shop", "prod:<id>").await;
            p.len() == 4 && p.iter().all(|(_, score)| *score == 1.0)
        })
        .await,
        "one count per load, none per L1 hit: {:?}",
        popularity(&server, "shop", "prod:<id>").await
    );
    a.invalidate(&pa.key(&[&1u64]).unwrap()).await;

    let b = builder(&server, "shop").build().await.unwrap();
    let pb = register(&b, "prod:<id>", policy(60));
    assert_eq!(b.warm_from_fleet::<Product>(&pb, 10).await.unwrap(), 3);
    assert_eq!(b.stats().l1_entries, 3);

    // Without sampling (the default), reads leave no popularity set.
    let c = builder(&server, "quiet").build().await.unwrap();
    let pc = register(&c, "prod:<id>", policy(60));
    c.get_or_load(&pc.key(&[&1u64]).unwrap(), || async {
        Ok::<_, Infallible>(product(1, "Lamp"))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(popularity(&server, "quiet", "prod:<id>").await.is_empty());
}

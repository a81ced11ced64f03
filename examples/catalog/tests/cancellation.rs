//! A write whose caller goes away (client disconnect, timeout: the handler's future is dropped)
//! still invalidates the cache once its transaction commits.

mod support;

use std::time::{Duration, Instant};

use catalog::db::Db;
use catalog::db::postgres::WRITE_LOCK;
use catalog::domain::ProductInput;
use futures::FutureExt;
use support::TestService;

on_both_backends! {
#[tokio::test]
async fn a_write_whose_caller_is_dropped_still_invalidates_after_its_commit() {
    let s = TestService::without_redis().await;
    let repo = s.server.app.repo.clone();
    let before = repo.product(7).await.expect("read").expect("product 7");
    let p = &before.product;
    let input = ProductInput {
        sku: p.sku.clone(),
        name: "Dropped Write Lamp".to_owned(),
        description: p.description.clone(),
        brand: p.brand.clone(),
        price: p.price,
        category_id: p.category_id,
        attributes: p.attributes.clone(),
        popularity: p.popularity,
        sales: p.sales,
        variants: Vec::new(),
    };
    // Another connection holds the database's write lock, so the write cannot finish at once.
    let blocker = Blocker::lock(&repo.db).await;
    // Poll the write once (it starts its transaction on a blocking thread, which waits for the
    // lock), then drop it, as axum drops a handler's future when the client disconnects.
    let polled = repo.update_product(7, input).now_or_never();
    assert!(polled.is_none(), "finished on its first poll: {polled:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    blocker.release().await;

    // The transaction commits regardless: wait for it in the database itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let name = name_of_7(&repo.db).await;
        if name == "Dropped Write Lamp" {
            break;
        }
        assert!(Instant::now() < deadline, "the write never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And the cache must follow (the invalidation runs right after the commit).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = repo.product(7).await.expect("read").expect("product 7");
        if now.product.name == "Dropped Write Lamp" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "committed, but the cache still serves {:?}",
            now.product.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        s.json("/products/7").await["product"]["name"],
        "Dropped Write Lamp"
    );
}
}

/// Another connection holding the database's write lock: SQLite's (`BEGIN IMMEDIATE`), or the
/// advisory lock every PostgreSQL write takes.
enum Blocker {
    Sqlite(rusqlite::Connection),
    Postgres(deadpool_postgres::Object),
}

impl Blocker {
    async fn lock(db: &Db) -> Blocker {
        match db {
            Db::Sqlite(db) => {
                let c = rusqlite::Connection::open(db.path()).expect("open");
                c.execute_batch("BEGIN IMMEDIATE").expect("lock");
                Blocker::Sqlite(c)
            }
            Db::Postgres(db) => {
                let c = db.client().await.expect("connection");
                c.execute("SELECT pg_advisory_lock($1)", &[&WRITE_LOCK])
                    .await
                    .expect("lock");
                Blocker::Postgres(c)
            }
        }
    }

    async fn release(self) {
        match self {
            Blocker::Sqlite(c) => c.execute_batch("ROLLBACK").expect("unlock"),
            Blocker::Postgres(c) => {
                c.execute("SELECT pg_advisory_unlock($1)", &[&WRITE_LOCK])
                    .await
                    .expect("unlock");
            }
        }
    }
}

/// The name of product 7, read from the database itself.
async fn name_of_7(db: &Db) -> String {
    match db {
        Db::Sqlite(db) => db
            .read(|c| Ok(c.query_row("SELECT name FROM products WHERE id = 7", [], |r| r.get(0))?))
            .await
            .expect("db"),
        Db::Postgres(db) => db
            .client()
            .await
            .expect("connection")
            .query_one("SELECT name FROM products WHERE id = 7", &[])
            .await
            .expect("db")
            .get(0),
    }
}

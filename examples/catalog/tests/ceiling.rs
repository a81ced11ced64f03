//! `catalog --ceiling`: the same answers as the service, the second time from memory.

use catalog::{Config, Server};
use reqwest::StatusCode;
use serde_json::Value;

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        status,
        content_type,
        r.bytes().await.expect("body").to_vec(),
    )
}

#[tokio::test]
async fn the_ceiling_answers_like_the_service_then_from_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_database(dir.path().join("catalog.sqlite3"));
    config.products = 300;
    config.categories = 12;
    let service = Server::start(&config, false).await.expect("service");
    let ceiling = catalog::http::ceiling::start(&config)
        .await
        .expect("ceiling");
    let client = reqwest::Client::new();
    let paths = [
        "/products/1",
        "/products?category=1&sort=price_asc&page=2",
        "/products/999999",
        "/categories/tree",
    ];
    for path in paths {
        let expected = get(&client, &format!("{}{path}", service.url())).await;
        for _ in 0..2 {
            let got = get(&client, &format!("{}{path}", ceiling.url())).await;
            assert_eq!(got, expected, "{path}");
        }
    }
    assert_eq!(
        get(&client, &format!("{}/products/999999", ceiling.url()))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, _, body) = get(&client, &format!("{}/ceiling", ceiling.url())).await;
    assert_eq!(status, StatusCode::OK);
    let counters: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(counters["urls"], 4, "{counters}");
    assert_eq!(counters["fills"], 4, "{counters}");
    assert_eq!(counters["hits"], 5, "{counters}");
    // No cache behind the ceiling: nothing was looked up in one.
    assert_eq!(ceiling.app.repo.cache.stats().total.l1_hits, 0);
    service.shutdown().await.expect("service stops");
    ceiling.shutdown().await.expect("ceiling stops");
}

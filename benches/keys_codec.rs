//! Key rendering (`Pattern::key` with a plain id and with a `:hash` argument) and the payload
//! codec of the ~1 KB product: tiercache's MessagePack (`encode_value`/`decode_value`) against
//! serde_json. `format!` of the same key text is the floor for rendering.

use std::hint::black_box;
use std::time::Duration;

use cache_core::codec::{decode_value, encode_value};
use cache_core::{Cache, Hashed, PatternConfig, TtlPolicy};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Serialize;
use tiercache_benches::{Ids, Product, config, product, runtime};

/// A search query: the typical `:hash` argument.
#[derive(Debug, Serialize)]
struct Query {
    text: String,
    category: Option<u32>,
    page: u32,
    sort: &'static str,
}

fn keys(c: &mut Criterion) {
    let rt = runtime();
    let cache = rt.block_on(async {
        Cache::builder()
            .namespace("bench-keys")
            .build()
            .await
            .expect("cache")
    });
    let ttl = || TtlPolicy::new(Duration::from_secs(1800));
    let products = cache
        .register(PatternConfig::new("prod:<id>", ttl()))
        .expect("pattern");
    let searches = cache
        .register(PatternConfig::new("search:<query:hash>", ttl()))
        .expect("pattern");
    let query = Query {
        text: "red running shoes".into(),
        category: Some(12),
        page: 3,
        sort: "price_asc",
    };

    let mut g = c.benchmark_group("keys");
    let mut ids = Ids::default();
    g.bench_function("format_baseline", |b| {
        b.iter(|| black_box(format!("prod:{}", black_box(ids.next()))))
    });
    g.bench_function("pattern_key_u64", |b| {
        b.iter(|| black_box(products.key(&[&black_box(ids.next())]).expect("key")))
    });
    g.bench_function("pattern_key_hashed", |b| {
        b.iter(|| black_box(searches.key(&[&Hashed(black_box(&query))]).expect("key")))
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let value: Product = product(42);
    let rmp = encode_value(&value).expect("encode");
    let json = serde_json::to_vec(&value).expect("encode");
    eprintln!(
        "codec: product encodes to {} bytes (MessagePack, struct map) and {} bytes (JSON)",
        rmp.len(),
        json.len()
    );
    assert_eq!(decode_value::<Product>(&rmp).expect("decode"), value);

    let mut g = c.benchmark_group("codec");
    g.bench_function("encode_rmp", |b| {
        b.iter(|| black_box(encode_value(black_box(&value)).expect("encode")))
    });
    g.bench_function("encode_json", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&value)).expect("encode")))
    });
    g.bench_function("decode_rmp", |b| {
        b.iter(|| black_box(decode_value::<Product>(black_box(&rmp)).expect("decode")))
    });
    g.bench_function("decode_json", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Product>(black_box(&json)).expect("decode")))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = keys, codec
}
criterion_main!(benches);

//! The codec reserves no more than the bytes read can hold (issue 14, item 6): a 34-byte value in
//! Redis claiming 65,535 tags must not make a read allocate 1 MiB. Its own test binary, because
//! it installs dhat's global allocator, to count the bytes a read allocates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use support::*;
use tiercache_tests::RedisServer;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

#[tokio::test(flavor = "current_thread")]
async fn a_value_claiming_65535_tags_reserves_no_more_than_its_bytes() {
    let server = RedisServer::start();
    let _profiler = dhat::Profiler::builder().testing().build();
    let cache = cache(&server, "bounds").await;
    let p = register(&cache, "prod:<id>", policy(60));
    let key = p.key(&[&1u64]).unwrap();
    // magic, version 1, flags, three stamps, 65,535 tags claimed, then 4 bytes (two empty tags).
    let mut bytes = b"tc".to_vec();
    bytes.extend_from_slice(&[cache_core::codec::FORMAT_VERSION, 0]);
    bytes.extend_from_slice(&[0; 24]);
    bytes.extend_from_slice(&u16::MAX.to_be_bytes());
    bytes.extend_from_slice(&[0; 4]);
    assert_eq!(bytes.len(), 34);
    raw_set(&server, "bounds", "prod:1", &bytes).await;
    // Warm the connection so that its buffers are not counted.
    assert_eq!(cache.get::<u64>(&p.key(&[&2u64]).unwrap()).await, None);

    let before = dhat::HeapStats::get().total_bytes;
    let read = cache.get::<u64>(&key).await;
    let allocated = dhat::HeapStats::get().total_bytes - before;
    assert_eq!(read, None, "the value is foreign");
    assert_eq!(cache.stats().total.decode_errors, 1);
    // Reserving 65,535 tag slices would be 1 MiB; the read itself takes a few kB.
    assert!(
        allocated < 64 * 1024,
        "reading 34 bytes allocated {allocated} bytes"
    );
}

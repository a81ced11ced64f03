//! The `tracing` spans of loads and Redis calls (`cache_core::spans`), captured by a
//! `tracing_subscriber` layer as an OpenTelemetry layer would see them: their names, their
//! stable fields, the loader's own spans nested inside, and never the raw key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};

use support::*;
use tiercache_tests::RedisServer;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// A span as the layer saw it: name, parent's name, fields (as recorded so far).
#[derive(Debug, Clone)]
struct Captured {
    id: u64,
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<&'static str, String>,
}

/// The layer: every span opened, with its fields and what is recorded on it later.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name());
        self.0.lock().unwrap().push(Captured {
            id: id.into_u64(),
            name: attrs.metadata().name(),
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(span) = spans.iter_mut().rev().find(|s| s.id == id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Captured> {
        let spans = self.0.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

fn field<'a>(span: &'a Captured, name: &str) -> &'a str {
    span.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no field {name} on {span:?}"))
}

// Current-thread runtime: the subscriber is this thread's default, and every task of the test
// runs on this thread.
#[tokio::test(flavor = "current_thread")]
async fn loads_and_redis_calls_are_spans_with_stable_fields() {
    let capture = Capture::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let mut server = RedisServer::start();
    let cache = builder(&server, "spans").build().await.unwrap();
    let users = register(&cache, "user:<email>", policy(60));
    let alice = users.key(&[&"alice@example.com"]).unwrap();
    let bob = users.key(&[&"bob@example.com"]).unwrap();

    let load = || async {
        // The loader's own span (a database query, say) nests inside the load's.
        let _query = tracing::debug_span!("db.query").entered();
        Ok::<_, Infallible>(product(1, "Lamp"))
    };
    cache.get_or_load(&alice, load).await.unwrap();
    cache.invalidate(&alice).await;
    cache.get_or_load(&alice, load).await.unwrap();
    let failed = cache
        .get_or_load(&bob, || async { Err::<Product, _>("db down") })
        .await;
    assert!(failed.is_err());

    let loads = capture.named("cache.load");
    assert_eq!(loads.len(), 3, "{loads:?}");
    for span in &loads {
        assert_eq!(field(span, "pattern"), "user:<email>");
        assert_eq!(field(span, "tier"), "loader");
        let hash = field(span, "key_hash");
        assert!(
            hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{span:?}"
        );
        assert!(
            span.fields.values().all(|v| !v.contains("example.com")),
            "the raw key is in a span: {span:?}"
        );
    }
    let outcomes: Vec<&str> = loads.iter().map(|s| field(s, "outcome")).collect();
    assert_eq!(outcomes, ["ok", "ok", "error"]);
    // One key, one hash (across loads, instances and runs); another key, another hash.
    assert_eq!(field(&loads[0], "key_hash"), field(&loads[1], "key_hash"));
    assert_ne!(field(&loads[0], "key_hash"), field(&loads[2], "key_hash"));
    let queries = capture.named("db.query");
    assert_eq!(queries.len(), 2);
    assert!(
        queries.iter().all(|q| q.parent == Some("cache.load")),
        "{queries:?}"
    );

    // Every Redis call: its operation, the tier, how it ended.
    let calls = capture.named("cache.l2");
    let ended: Vec<&Captured> = calls
        .iter()
        .filter(|c| c.fields.contains_key("outcome"))
        .collect();
    assert!(ended.len() >= 3, "lookups and write-backs: {calls:?}");
    for call in &calls {
        assert_eq!(field(call, "tier"), "l2");
        assert!(
            [
                "read",
                "write",
                "unlink",
                "mark",
                "publish",
                "lease",
                "lease_release"
            ]
            .contains(&field(call, "op")),
            "{call:?}"
        );
    }
    for call in ended {
        assert_eq!(field(call, "outcome"), "ok", "{call:?}");
    }

    // Redis gone: the call that fails says so.
    server.stop();
    let _ = cache
        .get::<Product>(&users.key(&[&"carol@example.com"]).unwrap())
        .await;
    let failed: Vec<Captured> = capture
        .named("cache.l2")
        .into_iter()
        .skip(calls.len())
        .filter(|c| field(c, "op") == "read")
        .collect();
    assert!(!failed.is_empty());
    assert!(
        failed
            .iter()
            .all(|c| ["error", "timeout"].contains(&field(c, "outcome"))),
        "{failed:?}"
    );
}

//! Criterion benchmarks of the relay's hot paths. `cargo bench` measures;
//! `cargo test --benches` (part of `tests/run`) runs each once so they never rot.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookpipe::config::{Config, SyncMode};
use hookpipe::event::{Incoming, NewEvent, now_ms};
use hookpipe::hub::{Frame, Hub};
use hookpipe::store::{Retention, SqliteStore, Store};
use tower::ServiceExt;

const RETENTION: Retention = Retention {
    keep_events: 1000,
    max_age: Duration::from_secs(86_400),
};

fn github_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("content-type", "application/json"),
        ("user-agent", "GitHub-Hookshot/abc123"),
        ("x-github-event", "push"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        (
            "x-hub-signature-256",
            "sha256=0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",
        ),
    ] {
        h.append(n, v.parse().unwrap());
    }
    h
}

fn event(channel: &str, headers: &HeaderMap, body: &[u8]) -> NewEvent {
    let req = Incoming {
        method: "POST",
        path: "/github",
        query: "",
        headers,
        body,
    };
    NewEvent::new(channel.to_owned(), "evt_bench".into(), now_ms(), req)
}

fn encode(c: &mut Criterion) {
    let headers = github_headers();
    let json = format!(
        "{{\"ref\":\"refs/heads/main\",\"pad\":\"{}\"}}",
        "x".repeat(1000)
    );
    let binary: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut g = c.benchmark_group("encode_event_frame");
    for (name, body) in [("json_1k", json.as_bytes()), ("binary_1k", &binary[..])] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter(|| event("c", &headers, body).frame(42)));
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SyncMode::Normal, RETENTION).unwrap();
    rt.block_on(store.create_channel("c", b"h", 0)).unwrap();
    let headers = github_headers();
    let body = vec![b'x'; 256];
    let mut g = c.benchmark_group("store_group_commit");
    for n in [1usize, 32, 256] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&rt).iter_batched(
                || {
                    (0..n)
                        .map(|_| event("c", &headers, &body))
                        .collect::<Vec<_>>()
                },
                |batch| async { store.append(batch).await.unwrap() },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("fan_out_one_event");
    for n in [1usize, 100, 10_000] {
        let hub = Hub::new();
        let mut subs: Vec<_> = (0..n)
            .map(|_| hub.subscribe("c", usize::MAX).unwrap())
            .collect();
        let frame = Frame {
            seq: 1,
            json: "{\"type\":\"event\",\"seq\":1}".into(),
        };
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                hub.publish("c", frame.clone());
                for s in subs.iter_mut() {
                    s.rx.try_recv().unwrap();
                }
            })
        });
    }
    g.finish();
}

fn ingest_through_router(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::with_data_dir(dir.path());
    let (app, channel) = rt.block_on(async {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), SyncMode::Normal, RETENTION).unwrap());
        let (state, _committer) = hookpipe::server::assemble(
            store,
            config,
            "http://bench.invalid".into(),
            tokio_util::sync::CancellationToken::new(),
            tokio_util::task::TaskTracker::new(),
        );
        let app = hookpipe::router(state);
        let res = app
            .clone()
            .oneshot(Request::post("/new").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let created: hookpipe::protocol::NewChannel = serde_json::from_slice(&bytes).unwrap();
        (app, created.channel)
    });
    let body = vec![b'x'; 256];
    let mut g = c.benchmark_group("ingest_request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("post_256b", |b| {
        b.to_async(&rt).iter(|| {
            let req = Request::post(format!("/{channel}/github"))
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .body(Body::from(body.clone()))
                .unwrap();
            let app = app.clone();
            async move {
                let res = app.oneshot(req).await.unwrap();
                assert_eq!(res.status(), 202);
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = encode, group_commit, fan_out, ingest_through_router
}
criterion_main!(benches);

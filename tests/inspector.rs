//! The web inspector in a real headless Chromium (tests/browser/inspector.spec.mjs).
//!
//! This test owns the relay process (the kit's `Relay`) and a WebSocket
//! subscriber; the browser script drives the page and asks for what only
//! this side can do through a small control server on 127.0.0.1: kill and
//! restart the relay on its port, publish while the page cannot reach it,
//! subscribe, read the next event, ack.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::browser::run_spec;
use common::{Relay, Subscriber, publish, subscribe};
use hookpipe::protocol::{Event, NewChannel};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

struct Control {
    data_dir: PathBuf,
    addr: SocketAddr,
    relay: Mutex<Option<Relay>>,
    subscriber: Mutex<Option<Subscriber>>,
}

type Shared = State<Arc<Control>>;

#[derive(Deserialize)]
struct SubscribeReq {
    channel: String,
    token: String,
}

#[derive(Deserialize)]
struct OfflineReq {
    channel: String,
    count: usize,
}

#[derive(Deserialize)]
struct AckReq {
    seq: u64,
    status: u16,
}

/// `kill -9` of the relay: the page sees its WebSocket drop.
async fn kill(State(c): Shared) -> &'static str {
    let mut relay = c.relay.lock().await;
    relay.as_mut().expect("relay running").kill9();
    *relay = None;
    "killed"
}

/// Starts the relay again on the same port and data directory.
async fn start(State(c): Shared) -> &'static str {
    let mut relay = c.relay.lock().await;
    assert!(relay.is_none(), "relay already running");
    let started =
        tokio::task::block_in_place(|| Relay::start_on(&c.data_dir, &c.addr.to_string(), &[]));
    *relay = Some(started);
    "started"
}

/// While the relay is down, commits `count` events through a relay on
/// another port (same data directory), then stops it: the page cannot see
/// them until it reconnects and catches up.
async fn publish_offline(State(c): Shared, Json(req): Json<OfflineReq>) -> Json<Vec<u64>> {
    assert!(c.relay.lock().await.is_none(), "kill the relay first");
    let mut other = tokio::task::block_in_place(|| Relay::start(&c.data_dir, &[]));
    let mut seqs = Vec::new();
    for i in 0..req.count {
        let body = format!("n={i}");
        seqs.push(
            publish(&other.base, &req.channel, "/after-restart", body)
                .await
                .seq,
        );
    }
    other.kill9();
    Json(seqs)
}

/// Connects the test's own WebSocket subscriber (live events only).
async fn subscribe_to(State(c): Shared, Json(req): Json<SubscribeReq>) -> &'static str {
    let relay = c.relay.lock().await;
    let ch = NewChannel {
        webhook_url: String::new(),
        channel: req.channel,
        token: req.token,
    };
    let sub = subscribe(relay.as_ref().expect("relay running"), &ch, None).await;
    *c.subscriber.lock().await = Some(sub);
    "subscribed"
}

/// The subscriber's next event (the kit fails after its deadline).
async fn next_event(State(c): Shared) -> Json<Event> {
    let mut sub = c.subscriber.lock().await;
    Json(sub.as_mut().expect("subscribed").next_event().await)
}

/// Acks `seq` with `status`, as hookpipe-client does after forwarding.
async fn ack(State(c): Shared, Json(req): Json<AckReq>) -> &'static str {
    let mut sub = c.subscriber.lock().await;
    let frame = format!(
        r#"{{"type":"ack","seq":{},"status":{}}}"#,
        req.seq, req.status
    );
    sub.as_mut()
        .expect("subscribed")
        .send(Message::Text(frame.into()))
        .await;
    "acked"
}

#[tokio::test(flavor = "multi_thread")]
async fn inspector_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let base = relay.base.clone();
    let control = Arc::new(Control {
        data_dir: dir.path().to_owned(),
        addr: relay.addr,
        relay: Mutex::new(Some(relay)),
        subscriber: Mutex::new(None),
    });
    let app = Router::new()
        .route("/kill", post(kill))
        .route("/start", post(start))
        .route("/publish-offline", post(publish_offline))
        .route("/subscribe", post(subscribe_to))
        .route("/next-event", get(next_event))
        .route("/ack", post(ack))
        .with_state(control.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // HOOKPIPE_SCREENSHOTS=docs also saves the README's screenshots there.
    let mut env = vec![("RELAY_URL", base), ("CONTROL_URL", control_url)];
    if let Some(dir) = std::env::var_os("HOOKPIPE_SCREENSHOTS") {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
        env.push(("SCREENSHOT_DIR", dir.display().to_string()));
    }
    let output = run_spec("inspector.spec.mjs", &env, Duration::from_secs(180)).await;
    println!("{output}");
    server.abort();
    let logs = control
        .relay
        .lock()
        .await
        .as_ref()
        .map(Relay::logs)
        .unwrap_or_default();
    assert!(
        !logs.contains("panicked"),
        "the relay panicked during the browser tests:\n{logs}"
    );
}

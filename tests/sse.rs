//! Server-Sent Events, seen by a plain client: `ready` first, pings, ids and
//! `Last-Event-ID` replay, auth, both formats, and how streams end.

mod common;

use std::time::Duration;

use common::sse::{SseEvent, SseStream, connect};
use common::{Relay, http, new_channel, publish, subscribe};
use hookpipe::protocol::{ErrorBody, NewChannel, ServerFrame};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn url(relay: &Relay, ch: &NewChannel, query: &str) -> String {
    format!("{}/{}?token={}{query}", relay.base, ch.channel, ch.token)
}

async fn open(relay: &Relay, ch: &NewChannel, query: &str, extra: &[(&str, &str)]) -> SseStream {
    let mut sse = connect(&url(relay, ch, query), extra).await;
    assert_eq!(
        sse.status,
        200,
        "SSE subscribe; relay logs:\n{}",
        relay.logs()
    );
    sse.ready().await;
    sse
}

fn seqs(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.id.as_deref().expect("an id").parse().expect("a seq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_starts_ready_then_carries_ids_and_pings() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--ping-interval", "200ms"]);
    let ch = new_channel(&relay.base).await;
    publish(&relay.base, &ch.channel, "", "before").await;

    let mut sse = connect(&url(&relay, &ch, ""), &[]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("cache-control"), Some("no-cache"));
    let ready = sse.expect_next().await;
    assert_eq!(ready.event.as_deref(), Some("ready"));
    assert_eq!(ready.data.as_deref(), Some("{}"));
    assert_eq!(ready.retry.as_deref(), Some("1000"), "quick reconnects");

    // Without since or Last-Event-ID, only new events (like WebSocket).
    publish(&relay.base, &ch.channel, "", "after").await;
    let ev = &sse.messages(1).await[0];
    assert_eq!(ev.id.as_deref(), Some("2"));
    assert_eq!(ev.json()["body"], "after");

    // Pings keep coming while nothing happens: named, so EventSource.onmessage
    // and smee-client ignore them.
    for _ in 0..3 {
        let ping = sse.expect_next().await;
        assert_eq!(ping.event.as_deref(), Some("ping"), "{ping:?}");
        assert_eq!(
            (ping.data.as_deref(), ping.id.as_deref()),
            (Some("{}"), None)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_replays_what_was_missed_and_wins_over_since() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    for i in 1..=5 {
        publish(&relay.base, &ch.channel, "", format!("e{i}")).await;
    }

    let mut resumed = open(&relay, &ch, "&since=4", &[("last-event-id", "2")]).await;
    assert_eq!(seqs(&resumed.messages(3).await), [3, 4, 5]);
    // Replay then live, with no gap and no duplicate.
    publish(&relay.base, &ch.channel, "", "e6").await;
    let live = resumed.messages(1).await;
    assert_eq!(
        (seqs(&live), live[0].json()["body"].clone()),
        (vec![6], json!("e6"))
    );

    let mut since = open(&relay, &ch, "&since=4", &[]).await;
    assert_eq!(seqs(&since.messages(2).await), [5, 6]);

    // A Last-Event-ID that is no seq is ignored (a 400 would make an
    // EventSource give up for good), and logged.
    let mut garbage = open(&relay, &ch, "&since=3", &[("last-event-id", "abc")]).await;
    assert_eq!(seqs(&garbage.messages(3).await), [4, 5, 6]);
    common::wait_until(
        common::DEADLINE,
        "the bad Last-Event-ID to be logged",
        || relay.logs().contains("Last-Event-ID that is not a seq"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribing_needs_the_token_and_valid_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let other = new_channel(&relay.base).await;
    let bare = format!("{}/{}", relay.base, ch.channel);
    let cases = [
        (bare.clone(), None, 401, "unauthorized"),
        (format!("{bare}?token=wrong"), None, 401, "unauthorized"),
        (
            format!("{bare}?token={}", other.token),
            None,
            401,
            "unauthorized",
        ),
        (bare.clone(), Some("Bearer wrong"), 401, "unauthorized"),
        (
            format!("{}/AAAAAAAAAAAAAAAAAAAAAA?token={}", relay.base, ch.token),
            None,
            404,
            "channel_not_found",
        ),
        (url(&relay, &ch, "&since=x"), None, 400, "bad_request"),
        (url(&relay, &ch, "&format=xml"), None, 400, "bad_request"),
    ];
    for (url, auth, status, code) in cases {
        let mut req = http().get(&url).header("accept", "text/event-stream");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{url}");
        let err: ErrorBody =
            serde_json::from_slice(&res.bytes().await.unwrap()).expect("a JSON error");
        assert_eq!(err.code, code, "{url}: {}", err.error);
    }

    // The token as a Bearer header works as well as ?token=.
    let bearer = format!("Bearer {}", ch.token);
    let mut sse = connect(&bare, &[("authorization", &bearer)]).await;
    assert_eq!(sse.status, 200);
    sse.ready().await;

    // Neither WebSocket nor SSE: a 400 that names both ways to subscribe.
    let res = http().get(url(&relay, &ch, "")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let err: ErrorBody = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert!(err.error.contains("text/event-stream"), "{}", err.error);
    assert!(err.error.contains("WebSocket"), "{}", err.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn hookpipe_format_is_the_websocket_frame_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut ws = subscribe(&relay, &ch, None).await;
    let mut sse = open(&relay, &ch, "&format=hookpipe", &[]).await;

    let binary = vec![0u8, 0xff, 0xfe, b'\n', 0x80];
    let bodies: [Vec<u8>; 3] = [binary.clone(), b"{ \"a\" :\n 1 }".to_vec(), Vec::new()];
    for body in &bodies {
        publish(&relay.base, &ch.channel, "/raw?q=1", body.clone()).await;
    }
    for (body, msg) in bodies.iter().zip(sse.messages(3).await) {
        let frame = ws.next_text().await;
        assert_eq!(
            msg.data.as_deref(),
            Some(frame.as_str()),
            "data is the WS frame"
        );
        let ServerFrame::Event(ev) = serde_json::from_str(&frame).unwrap() else {
            panic!("not an event: {frame}")
        };
        assert_eq!(msg.id, Some(ev.seq.to_string()));
        assert_eq!(&ev.body_bytes().unwrap(), body, "exact bytes");
        assert_eq!((ev.path.as_str(), ev.query.as_str()), ("/raw", "q=1"));
        if body == &binary {
            assert_eq!(msg.json()["body_encoding"], "base64");
        }
    }
}

/// Sends a hand-written HTTP/1.1 request (headers no client library would
/// let through) and returns the final status.
async fn publish_raw(relay: &Relay, head: &str, body: &str) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    conn.write_all(format!("{head}\r\n{body}").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(common::DEADLINE, conn.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if n == 0 || text.contains("\"seq\"") || text.contains("\"code\"") {
            // Skip a `100 Continue` interim response.
            let last = text
                .split("HTTP/1.1 ")
                .filter(|s| !s.starts_with("100"))
                .last()
                .unwrap_or_default()
                .to_owned();
            return last[..3].parse().unwrap_or(0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smee_format_is_headers_body_query_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut sse = open(&relay, &ch, "", &[]).await;
    let mut ws = subscribe(&relay, &ch, None).await;
    let post = |ct: &'static str, body: &'static str, query: &'static str| {
        let url = format!("{}/{}/hook{query}", relay.base, ch.channel);
        async move {
            let mut req = http().post(url).body(body);
            if !ct.is_empty() {
                req = req.header("content-type", ct);
            }
            let res = req.header("x-github-event", "push").send().await.unwrap();
            assert_eq!(res.status(), 202);
        }
    };
    post(
        "application/json",
        "{ \"ref\" : \"main\",\n \"n\": [1, 2.5] }",
        "?a=1&b=x%20y&b=z",
    )
    .await;
    post(
        "application/x-www-form-urlencoded",
        "payload=%7B%22a%22%3A1%7D&x=y+z",
        "",
    )
    .await;
    post("text/plain", "hello\nworld", "").await;
    post("", "", "").await;
    let chunked = format!(
        "POST /{}/hook HTTP/1.1\r\nHost: relay.example\r\nConnection: keep-alive\r\n\
         Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\
         TE: trailers\r\nUpgrade: foo/1\r\nContent-Type: application/json\r\nX-Custom: 1\r\n",
        ch.channel
    );
    assert_eq!(
        publish_raw(&relay, &chunked, "7\r\n{\"k\":1}\r\n0\r\n\r\n").await,
        202
    );

    let msgs = sse.messages(5).await;
    assert_eq!(seqs(&msgs), [1, 2, 3, 4, 5]);
    let m: Vec<serde_json::Value> = msgs.iter().map(SseEvent::json).collect();

    assert_eq!(m[0]["body"], json!({"ref": "main", "n": [1, 2.5]}));
    assert_eq!(m[0]["query"], json!({"a": "1", "b": ["x y", "z"]}));
    assert_eq!(m[0]["x-github-event"], "push");
    assert_eq!(m[0]["content-type"], "application/json");
    assert_eq!(m[1]["body"], json!({"payload": "{\"a\":1}", "x": "y z"}));
    assert_eq!(m[2]["body"], "hello\nworld");
    assert_eq!((&m[3]["body"], &m[3]["query"]), (&json!({}), &json!({})));
    assert_eq!(m[4]["body"], json!({"k": 1}));
    assert_eq!(m[4]["x-custom"], "1");

    for (msg, ev) in m.iter().zip(ws.events(5).await) {
        let obj = msg.as_object().unwrap();
        // smee-client makes every other top-level key a header: nothing else is there.
        for key in obj.keys() {
            let is_header = ev.headers.iter().any(|(n, _)| n == key);
            assert!(
                is_header || ["body", "query", "timestamp"].contains(&key.as_str()),
                "unexpected top-level key {key}"
            );
        }
        for banned in [
            "host",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "expect",
            "te",
            "upgrade",
        ] {
            assert!(
                !obj.contains_key(banned),
                "{banned} must be left out: {msg}"
            );
        }
        let received: u64 = humantime::parse_rfc3339(&ev.received_at)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert_eq!(
            obj["timestamp"],
            json!(received),
            "timestamp is received_at in ms"
        );
    }
    // The stored event still has everything, hop-by-hop headers included.
    let raw = &subscribe(&relay, &ch, Some(4)).await.events(1).await[0];
    assert_eq!(raw.header("transfer-encoding"), Some("chunked"));
    assert_eq!(raw.header("upgrade"), Some("foo/1"));
    assert_eq!(raw.header("host"), Some("relay.example"));
}

#[tokio::test(flavor = "multi_thread")]
async fn gaps_and_resets_are_named_events_with_the_seq_they_move_to() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--retain-events", "2"]);
    let ch = new_channel(&relay.base).await;
    for i in 1..=5 {
        publish(&relay.base, &ch.channel, "", format!("e{i}")).await;
    }
    for format in ["", "&format=hookpipe"] {
        let mut sse = open(&relay, &ch, &format!("&since=0{format}"), &[]).await;
        let gap = sse.next_non_ping().await;
        assert_eq!(
            (gap.name(), gap.id.as_deref()),
            ("gap", Some("3")),
            "{format}"
        );
        assert_eq!(
            (
                gap.json()["type"].clone(),
                gap.json()["from"].clone(),
                gap.json()["to"].clone()
            ),
            (json!("gap"), json!(1), json!(3))
        );
        assert_eq!(seqs(&sse.messages(2).await), [4, 5]);

        let mut sse = open(&relay, &ch, &format!("&since=40{format}"), &[]).await;
        let reset = sse.next_non_ping().await;
        assert_eq!((reset.name(), reset.id.as_deref()), ("reset", Some("5")));
        assert_eq!(reset.json(), json!({"type": "reset", "head": 5}));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_channel_gets_a_stream_that_ends_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--max-subscribers", "1"]);
    let ch = new_channel(&relay.base).await;
    let _first = open(&relay, &ch, "", &[]).await;
    // An EventSource gives up for good on a non-200; a stream that ends makes
    // it retry later.
    let mut second = connect(&url(&relay, &ch, ""), &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("content-type"), Some("text/event-stream"));
    let only = second.expect_next().await;
    assert_eq!(only.retry.as_deref(), Some("10000"));
    assert!(
        only.comments[0].contains("maximum of 1 subscribers"),
        "{only:?}"
    );
    assert_eq!(second.next().await, None, "then the stream ends");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_the_stream_and_the_relay_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut sse = open(&relay, &ch, "", &[]).await;
    publish(&relay.base, &ch.channel, "", "before").await;
    assert_eq!(sse.messages(1).await[0].json()["body"], "before");

    relay.terminate();
    let mut last = None;
    while let Some(ev) = sse.next().await {
        last = Some(ev);
    }
    let last = last.expect("a goodbye before the end");
    assert!(last.comments[0].contains("shutting down"), "{last:?}");
    let status = relay.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
}

//! Events reach subscribers exactly as they were sent: bytes, headers, methods,
//! sub-paths and queries; and every subscriber gets every event.

mod common;

use common::{Relay, http, new_channel, publish, subscribe};
use hookpipe::protocol::BodyEncoding;

#[tokio::test(flavor = "multi_thread")]
async fn new_channel_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    assert!(
        ch.channel.len() >= 16
            && ch
                .channel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(ch.webhook_url, format!("{}/{}", relay.base, ch.channel));
    assert!(ch.token.len() >= 22, "token carries at least 128 bits");
    assert_ne!(new_channel(&relay.base).await.channel, ch.channel);
    let res = http()
        .get(format!("{}/healthz", relay.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_url_is_used_in_returned_urls() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--public-url", "https://hooks.example.com/"]);
    let ch = new_channel(&relay.base).await;
    assert_eq!(
        ch.webhook_url,
        format!("https://hooks.example.com/{}", ch.channel)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut sub = subscribe(&relay, &ch, None).await;

    let json = b"{ \"a\" :1,\n\t\"esc\":\"\\u00e9\\n\\\"q\\\"\" , \"n\": 1.50 }  ".to_vec();
    let form = b"payload=%7B%22x%22%3A1%7D&a=b+c".to_vec();
    let binary: Vec<u8> = (0..=255u8).rev().chain([0, 0xff, 0xfe]).collect();
    let cases: Vec<(&str, &str, &str, Vec<u8>, &str)> = vec![
        ("POST", "/github", "", json, "application/json"),
        (
            "POST",
            "",
            "x=1&y=%20z",
            form,
            "application/x-www-form-urlencoded",
        ),
        ("PUT", "/bin/a%2Fb", "", binary, "application/octet-stream"),
        ("PATCH", "/", "", Vec::new(), "text/plain"),
        ("DELETE", "", "only=query", Vec::new(), "text/plain"),
        ("GET", "/sub/path", "q=1", Vec::new(), "text/plain"),
        ("OPTIONS", "/deep/er", "", b"opt".to_vec(), "text/plain"),
    ];
    for (method, path, query, body, ctype) in &cases {
        let qs = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let url = format!("{}/{}{path}{qs}", relay.base, ch.channel);
        let res = http()
            .request(method.parse().unwrap(), url)
            .header("content-type", *ctype)
            .header("x-hub-signature-256", "sha256=abc")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{method} {path}");
    }
    for (i, (method, path, query, body, ctype)) in cases.iter().enumerate() {
        let ev = sub.next_event().await;
        assert_eq!(ev.seq, i as u64 + 1);
        assert_eq!(ev.method, *method);
        assert_eq!(ev.path, *path);
        assert_eq!(ev.query, *query);
        assert_eq!(ev.body_bytes().unwrap(), *body, "{method} {path} body");
        let enc = if std::str::from_utf8(body).is_ok() {
            BodyEncoding::Utf8
        } else {
            BodyEncoding::Base64
        };
        assert_eq!(ev.body_encoding, enc);
        assert_eq!(ev.header("content-type"), Some(*ctype));
        assert_eq!(ev.header("x-hub-signature-256"), Some("sha256=abc"));
        let multi: Vec<_> = ev
            .headers
            .iter()
            .filter(|(n, _)| n == "x-multi")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(multi, ["one", "two"], "repeated headers kept in order");
        assert!(ev.id.starts_with("evt_"));
        assert!(
            ev.received_at.ends_with('Z') && ev.received_at.contains('.'),
            "RFC 3339 with ms: {}",
            ev.received_at
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_subscriber_gets_every_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut a = subscribe(&relay, &ch, None).await;
    let mut b = subscribe(&relay, &ch, None).await;
    let other = new_channel(&relay.base).await;
    let mut c = subscribe(&relay, &other, None).await;
    for i in 0..50 {
        publish(&relay.base, &ch.channel, "", format!("event {i}")).await;
    }
    publish(&relay.base, &other.channel, "", "elsewhere").await;
    for sub in [&mut a, &mut b] {
        let evs = sub.events(50).await;
        let seqs: Vec<u64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        assert_eq!(evs[49].body, "event 49");
    }
    let ev = c.next_event().await;
    assert_eq!(
        (ev.seq, ev.body.as_str()),
        (1, "elsewhere"),
        "channels are independent"
    );
}

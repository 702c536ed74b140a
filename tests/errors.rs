//! Bad input gets a clear status and JSON body; nothing a client sends crashes the relay.

mod common;

use common::{Relay, http, new_channel, publish, subscribe};
use hookpipe::protocol::ErrorBody;
use tokio_tungstenite::tungstenite::Message;

async fn error_of(res: reqwest::Response) -> (u16, ErrorBody) {
    let status = res.status().as_u16();
    let body = res.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("not a JSON error: {body:?}")),
    )
}

async fn ws_status(url: String, bearer: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribe_needs_the_right_token() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let ws = format!("ws://{}/{}", relay.addr, ch.channel);
    assert_eq!(ws_status(ws.clone(), None).await, 401);
    assert_eq!(ws_status(ws.clone(), Some("wrong")).await, 401);
    assert_eq!(ws_status(format!("{ws}?token=wrong"), None).await, 401);
    let other = new_channel(&relay.base).await;
    assert_eq!(
        ws_status(ws.clone(), Some(&other.token)).await,
        401,
        "another channel's token"
    );
    assert_eq!(
        ws_status(format!("{ws}?token={}", ch.token), None).await,
        101
    );
    assert_eq!(ws_status(ws.clone(), Some(&ch.token)).await, 101);
    let (status, err) = error_of(
        http()
            .get(ws.replacen("ws://", "http://", 1))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err.code.as_str()), (401, "unauthorized"));
    let (status, err) = error_of(
        http()
            .get(format!(
                "{}/{}?since=abc&token={}",
                relay.base, ch.channel, ch.token
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err.code.as_str()), (400, "bad_request"));
    assert!(err.error.contains("since"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_channels_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    for url in [
        format!("{}/AAAAAAAAAAAAAAAAAAAAAA", relay.base),
        format!("{}/AAAAAAAAAAAAAAAAAAAAAA/x/y", relay.base),
        format!("{}/not%20an%20id", relay.base),
    ] {
        let (status, err) = error_of(http().post(url).body("x").send().await.unwrap()).await;
        assert_eq!((status, err.code.as_str()), (404, "channel_not_found"));
    }
    assert_eq!(
        ws_status(
            format!("ws://{}/AAAAAAAAAAAAAAAAAAAAAA", relay.addr),
            Some("t")
        )
        .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_413_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--max-body", "1KiB"]);
    let ch = new_channel(&relay.base).await;
    let url = format!("{}/{}", relay.base, ch.channel);
    let (status, err) = error_of(
        http()
            .post(&url)
            .body(vec![b'x'; 1025])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err.code.as_str()), (413, "body_too_large"));
    assert!(err.error.contains("1024"));
    // Chunked, so the relay cannot rely on Content-Length.
    let chunks = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 400])));
    let res = http()
        .post(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 413);
    let ok = publish(&relay.base, &ch.channel, "", vec![b'z'; 1024]).await;
    assert_eq!(ok.seq, 1, "rejected bodies took no seq");
    let mut sub = subscribe(&relay, &ch, Some(0)).await;
    assert_eq!(sub.next_event().await.body, "z".repeat(1024));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookpipe"))
        .args(["serve", "--max-body", "lots", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a size"));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut sub = subscribe(&relay, &ch, None).await;
    sub.send(Message::text("not json")).await;
    sub.send(Message::text(r#"{"type":"ack"}"#)).await;
    sub.send(Message::text(r#"{"type":"ack","seq":-1}"#)).await;
    sub.send(Message::text(r#"{"type":"launch","seq":1}"#))
        .await;
    sub.send(Message::binary(vec![0u8, 1, 2])).await;
    sub.send(Message::text(r#"{"type":"ack","seq":1,"status":200}"#))
        .await;
    publish(&relay.base, &ch.channel, "", "still here").await;
    assert_eq!(sub.next_event().await.body, "still here");
    common::wait_until(common::DEADLINE, "the malformed frame to be logged", || {
        relay.logs().contains("ignoring malformed frame")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_that_never_answer_pings_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--ping-interval", "300ms"]);
    let ch = new_channel(&relay.base).await;
    // A client that never reads never answers pings: the relay must drop it.
    let mut silent = subscribe(&relay, &ch, None).await;
    let mut alive = subscribe(&relay, &ch, None).await;
    let dropped = async {
        // Reading only now: the pings arrive first, then the relay's close.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        silent.closed().await
    };
    // Meanwhile the reading client keeps answering pings and stays connected.
    let kept = async {
        let mut n = 0;
        while n < 20 {
            publish(&relay.base, &ch.channel, "", format!("{n}")).await;
            assert_eq!(alive.next_event().await.body, format!("{n}"));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            n += 1;
        }
    };
    let (close, ()) = tokio::join!(dropped, kept);
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);
    assert!(close.reason.contains("pong"), "{}", close.reason);
}

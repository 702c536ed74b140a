//! The inspector's HTTP side, without a browser: pages and their security
//! headers, embedded assets, redelivery and delivery results (acks).
//! tests/inspector.rs drives the same in a real browser.

mod common;

use std::time::Instant;

use common::{DEADLINE, Relay, http, new_channel, subscribe};
use hookpipe::protocol::{ErrorBody, Receipt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn assert_secure(res: &reqwest::Response) {
    let h = res.headers();
    assert_eq!(h["content-security-policy"], CSP, "{}", res.url());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
}

async fn get_html(url: &str) -> reqwest::Response {
    http()
        .get(url)
        .header("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
        .send()
        .await
        .unwrap()
}

/// Every script is a file of ours and nothing is styled inline: the CSP
/// would refuse anything else.
fn assert_no_inline_code(html: &str) {
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(
            open.contains("src=\"/assets/"),
            "inline script: <script{open}>"
        );
        assert!(
            tag[open.len() + 1..].starts_with("</script>"),
            "script with a body"
        );
    }
    assert!(
        !html.contains("<style") && !html.contains(" style="),
        "inline style"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_are_static_shells_with_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;

    let home = get_html(&format!("{}/", relay.base)).await;
    assert_eq!(home.status(), 200);
    assert_eq!(home.headers()["content-type"], "text/html; charset=utf-8");
    assert_secure(&home);
    let body = home.text().await.unwrap();
    assert!(body.contains("New channel") && body.contains("/assets/home.js"));
    assert_no_inline_code(&body);

    // The channel page needs no token, and holds none.
    let page = get_html(&format!("{}/{}", relay.base, ch.channel)).await;
    assert_eq!(page.status(), 200);
    assert_secure(&page);
    let body = page.text().await.unwrap();
    assert!(body.contains("/assets/channel.js"));
    assert!(!body.contains(&ch.token));
    assert!(body.contains(r#"<meta name="hookpipe-base" content="">"#));
    assert_no_inline_code(&body);

    // Not a browser: the subscribe transports' answer is unchanged.
    let plain = http()
        .get(format!("{}/{}", relay.base, ch.channel))
        .bearer_auth(&ch.token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_channel_is_an_html_404() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--public-url", "https://relay.example.com/"]);
    for id in ["AAAAAAAAAAAAAAAAAAAAAA", "not.an.id"] {
        let res = get_html(&format!("{}/{id}", relay.base)).await;
        assert_eq!(res.status(), 404, "{id}");
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        assert_secure(&res);
        let body = res.text().await.unwrap();
        assert!(body.contains("No such channel"), "{body}");
        assert_no_inline_code(&body);
    }
    // --public-url is what the page shows as the webhook URL's base.
    let ch = new_channel(&relay.base).await;
    let page = get_html(&format!("{}/{}", relay.base, ch.channel)).await;
    let body = page.text().await.unwrap();
    assert!(body.contains(r#"<meta name="hookpipe-base" content="https://relay.example.com">"#));
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_are_embedded_typed_and_revalidated() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let mut total = 0;
    for (name, ty) in [
        ("app.css", "text/css; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("home.js", "text/javascript; charset=utf-8"),
        ("channel.js", "text/javascript; charset=utf-8"),
        ("detail.js", "text/javascript; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let url = format!("{}/assets/{name}", relay.base);
        let res = http().get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(res.headers()["content-type"], ty);
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert_secure(&res);
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let body = res.bytes().await.unwrap();
        assert!(!body.is_empty());
        total += body.len();
        if name.ends_with(".js") {
            let text = std::str::from_utf8(&body).unwrap();
            assert!(!text.contains("innerHTML"), "{name} writes markup");
        }
        let again = http()
            .get(&url)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{name}");
        assert_eq!(again.headers()["etag"], etag.as_str());
    }
    assert!(total < 60 * 1024, "assets grew to {total} bytes");
    let missing = http()
        .get(format!("{}/assets/nope.js", relay.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn redeliver(
    relay: &Relay,
    channel: &str,
    seq: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = http().post(format!(
        "{}/api/channels/{channel}/events/{seq}/redeliver",
        relay.base
    ));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn error_code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let err: ErrorBody = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    (status, err.code)
}

#[tokio::test(flavor = "multi_thread")]
async fn redeliver_publishes_a_byte_exact_copy_as_a_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut sub = subscribe(&relay, &ch, None).await;
    let body: Vec<u8> = vec![0, 159, 146, 150, 255, b'\n', b'x'];
    let res = http()
        .put(format!("{}/{}/gh/a%20b?x=1&x=2", relay.base, ch.channel))
        .header("content-type", "application/octet-stream")
        .header("x-dup", "1")
        .header("x-dup", "2")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let original = sub.next_event().await;

    assert_eq!(
        error_code(redeliver(&relay, &ch.channel, "1", None).await).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        error_code(redeliver(&relay, "AAAAAAAAAAAAAAAAAAAAAA", "1", Some(&ch.token)).await).await,
        (404, "channel_not_found".into())
    );
    for seq in ["0", "9", "x"] {
        let res = redeliver(&relay, &ch.channel, seq, Some(&ch.token)).await;
        assert_eq!(
            error_code(res).await,
            (404, "event_not_found".into()),
            "{seq}"
        );
    }

    let res = redeliver(&relay, &ch.channel, "1", Some(&ch.token)).await;
    assert_eq!(res.status(), 202);
    let receipt: Receipt = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(receipt.seq, 2);
    let copy = sub.next_event().await;
    assert_eq!((copy.seq, copy.id.as_str()), (2, receipt.id.as_str()));
    assert_ne!(copy.id, original.id);
    assert_eq!(copy.method, "PUT");
    assert_eq!(
        (copy.path.as_str(), copy.query.as_str()),
        ("/gh/a%20b", "x=1&x=2")
    );
    assert_eq!(copy.body_bytes().unwrap(), body);
    let mut expected = original.headers.clone();
    expected.push(("x-hookpipe-redelivery-of".into(), "1".into()));
    assert_eq!(copy.headers, expected);

    // A copy of a copy names its own source once.
    let res = redeliver(&relay, &ch.channel, "2", Some(&ch.token)).await;
    assert_eq!(res.status(), 202);
    let again = sub.next_event().await;
    let of: Vec<&str> = again
        .headers
        .iter()
        .filter(|(n, _)| n == "x-hookpipe-redelivery-of")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(of, ["2"]);
}

async fn get_json(url: &str, token: &str) -> (u16, Value) {
    let res = http().get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status().as_u16();
    (
        status,
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_show_as_delivery_results() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let mut sub = subscribe(&relay, &ch, None).await;
    for i in 0..3 {
        common::publish(&relay.base, &ch.channel, "", format!("{i}")).await;
    }
    sub.events(3).await;
    for ack in [
        r#"{"type":"ack","seq":1,"status":200}"#,
        r#"{"type":"ack","seq":3}"#,
    ] {
        sub.send(Message::Text(ack.into())).await;
    }
    let acks_url = format!("{}/api/channels/{}/acks", relay.base, ch.channel);
    // Acks are recorded as they arrive; wait until both are.
    let start = Instant::now();
    let acks = loop {
        let (status, body) = get_json(&acks_url, &ch.token).await;
        assert_eq!(status, 200, "{body}");
        if body["acks"].as_array().unwrap().len() == 2 {
            break body["acks"].clone();
        }
        assert!(start.elapsed() < DEADLINE, "acks not recorded: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(acks[0]["seq"], 1);
    assert_eq!(acks[0]["status"], 200);
    assert!(acks[0]["acked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(acks[1]["seq"], 3);
    assert!(acks[1]["status"].is_null());

    let (_, page) = get_json(
        &format!("{}/api/channels/{}/events", relay.base, ch.channel),
        &ch.token,
    )
    .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events[0]["delivery"]["status"], 200);
    assert_eq!(events[0]["delivery"]["acked_at"], acks[0]["acked_at"]);
    assert!(events[1].get("delivery").is_none());
    assert!(events[2]["delivery"]["status"].is_null());
    assert_eq!(events[2]["body"], "2", "the rest of the event is unchanged");
    let (_, one) = get_json(
        &format!("{}/api/channels/{}/events/1", relay.base, ch.channel),
        &ch.token,
    )
    .await;
    assert_eq!(one["delivery"]["status"], 200);

    let (_, narrow) = get_json(&format!("{acks_url}?from=2&to=3"), &ch.token).await;
    assert_eq!(narrow["acks"].as_array().unwrap().len(), 1);
    for bad in ["?from=5&to=4", "?from=1&to=1001", "?from=x"] {
        let (status, _) = get_json(&format!("{acks_url}{bad}"), &ch.token).await;
        assert_eq!(status, 400, "{bad}");
    }
    let res = http().get(&acks_url).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

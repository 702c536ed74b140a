//! `GET|HEAD /new` (how smee.io creates channels) and the history API.

mod common;

use common::sse::connect;
use common::{DEADLINE, Relay, http, new_channel, publish, subscribe};
use hookpipe::protocol::{ErrorBody, NewChannel};
use serde_json::Value;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// `GET /new` with `headers`; returns the `Location`.
async fn location(relay: &Relay, headers: &[(&str, &str)]) -> String {
    let mut req = no_redirects().get(format!("{}/new", relay.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 307);
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn error_of(res: reqwest::Response) -> (u16, ErrorBody) {
    let status = res.status().as_u16();
    let body = res.bytes().await.unwrap();
    let err =
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("not a JSON error: {body:?}"));
    (status, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn get_and_head_new_redirect_to_a_fresh_channel_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);

    let res = no_redirects()
        .get(format!("{}/new", relay.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 307);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let loc = res.headers()["location"].to_str().unwrap().to_owned();
    let created: NewChannel = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(
        loc,
        format!("{}/{}?token={}", relay.base, created.channel, created.token)
    );
    assert_eq!(
        created.webhook_url,
        format!("{}/{}", relay.base, created.channel)
    );

    // The location is a working subscribe URL; the plain URL takes webhooks.
    let mut sse = connect(&loc, &[]).await;
    assert_eq!(sse.status, 200);
    sse.ready().await;
    let res = http()
        .post(&created.webhook_url)
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(sse.messages(1).await[0].json()["body"], "hi");

    // HEAD, as smee-client does it: same redirect, no body, another channel.
    let res = no_redirects()
        .head(format!("{}/new", relay.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 307);
    let head_loc = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(res.bytes().await.unwrap().is_empty());
    assert!(head_loc.starts_with(&format!("{}/", relay.base)) && head_loc.contains("?token="));
    assert_ne!(head_loc, loc);

    // POST /new is unchanged.
    let again = new_channel(&relay.base).await;
    assert_ne!(again.channel, created.channel);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redirect_follows_the_host_the_requester_used() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let behind_proxy = location(
        &relay,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "hooks.example.com"),
        ],
    )
    .await;
    assert!(
        behind_proxy.starts_with("https://hooks.example.com/"),
        "{behind_proxy}"
    );
    let by_host = raw_location(&relay, "Host: relay.test:9000\r\n").await;
    assert!(by_host.starts_with("http://relay.test:9000/"), "{by_host}");
    // A forwarded host that is not a host is not trusted to build a URL.
    let odd = raw_location(
        &relay,
        "Host: relay.test\r\nX-Forwarded-Host: evil.test/x?y\r\n",
    )
    .await;
    assert!(odd.starts_with("http://relay.test/"), "{odd}");
}

/// `GET /new` written by hand, since HTTP clients set `Host` themselves.
async fn raw_location(relay: &Relay, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let req = format!("GET /new HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut res = String::new();
    tokio::time::timeout(DEADLINE, conn.read_to_string(&mut res))
        .await
        .expect("a response")
        .unwrap();
    assert!(res.starts_with("HTTP/1.1 307"), "{res}");
    res.lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("a location")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn public_url_wins_over_request_headers() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--public-url", "https://relay.example.com/"]);
    let loc = location(&relay, &[("x-forwarded-host", "other.example.com")]).await;
    assert!(loc.starts_with("https://relay.example.com/"), "{loc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages_through_the_same_event_objects_as_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    publish(&relay.base, &ch.channel, "/a?x=1", vec![0u8, 0xff]).await;
    for i in 2..=5 {
        publish(&relay.base, &ch.channel, "", format!("e{i}")).await;
    }
    let frames: Vec<Value> = {
        let mut ws = subscribe(&relay, &ch, Some(0)).await;
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(serde_json::from_str(&ws.next_text().await).unwrap());
        }
        out
    };
    let events_url = format!("{}/api/channels/{}/events", relay.base, ch.channel);
    let get = |query: String| {
        let (url, token) = (events_url.clone(), ch.token.clone());
        async move {
            let res = http()
                .get(format!("{url}{query}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{query}");
            serde_json::from_slice::<Value>(&res.bytes().await.unwrap()).unwrap()
        }
    };

    let all = get(String::new()).await;
    assert_eq!(
        all["events"].as_array().unwrap(),
        &frames,
        "same objects as WS frames"
    );
    assert_eq!(
        (&all["head"], &all["next_since"]),
        (&Value::from(5), &Value::from(5))
    );

    let page = get("?since=1&limit=2".into()).await;
    assert_eq!(page["events"].as_array().unwrap(), &frames[1..3]);
    assert_eq!(
        page["next_since"], 3,
        "a full page continues after its last event"
    );
    let rest = get("?since=3&limit=2".into()).await;
    assert_eq!(rest["events"].as_array().unwrap(), &frames[3..5]);
    let empty = get("?since=5".into()).await;
    assert_eq!(empty["events"], Value::Array(vec![]));
    assert_eq!(empty["next_since"], 5);

    // One event by seq, token as ?token=.
    let res = http()
        .get(format!("{events_url}/1?token={}", ch.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&res.bytes().await.unwrap()).unwrap(),
        frames[0]
    );
    assert_eq!(frames[0]["body_encoding"], "base64");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--retain-events", "2"]);
    let ch = new_channel(&relay.base).await;
    for i in 1..=3 {
        publish(&relay.base, &ch.channel, "", format!("e{i}")).await;
    }
    let events_url = format!("{}/api/channels/{}/events", relay.base, ch.channel);
    let with_token = |path: &str| format!("{events_url}{path}token={}", ch.token);
    let cases = [
        (events_url.clone(), 401, "unauthorized", ""),
        (format!("{events_url}?token=wrong"), 401, "unauthorized", ""),
        (
            format!(
                "{}/api/channels/AAAAAAAAAAAAAAAAAAAAAA/events?token=x",
                relay.base
            ),
            404,
            "channel_not_found",
            "",
        ),
        (with_token("?limit=1001&"), 400, "bad_request", "1000"),
        (with_token("?limit=0&"), 400, "bad_request", "1000"),
        (with_token("?since=-1&"), 400, "bad_request", "since"),
        (with_token("/9?"), 404, "event_not_found", ""),
        (with_token("/0?"), 404, "event_not_found", ""),
        (with_token("/1?"), 404, "event_not_found", "retention"),
        (with_token("/x?"), 400, "bad_request", "seq"),
    ];
    for (url, status, code, mentions) in cases {
        let (got, err) = error_of(http().get(&url).send().await.unwrap()).await;
        assert_eq!((got, err.code.as_str()), (status, code), "{url}");
        assert!(err.error.contains(mentions), "{url}: {}", err.error);
    }
    let res = http().get(with_token("/2?")).send().await.unwrap();
    assert_eq!(res.status(), 200, "seq 2 is still retained");
}

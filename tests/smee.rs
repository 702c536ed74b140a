//! The real `smee-client` (npm, installed by tests/run into tests/node) pointed
//! at a hookpipe channel instead of smee.io: only the URL changes.

mod common;

use common::smee::Smee;
use common::target::{Recorded, Target};
use common::{DEADLINE, Relay, http, new_channel, wait_until};
use serde_json::Value;

/// A GitHub `push` delivery as GitHub sends it (pretty JSON, nested, unicode).
const PUSH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "76ae82c7b1a177c8d03f9e96e0adf2466113728f",
  "repository": {"id": 1296269, "full_name": "octocat/Hello-World", "private": false},
  "pusher": {"name": "Mona Lisa Octocat", "email": "mona@example.com"},
  "commits": [{"id": "76ae82c", "message": "Fix \"quotes\" and ünïcödé ✓", "added": [], "distinct": true}],
  "size": 15
}"#;

const GITHUB_HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("user-agent", "GitHub-Hookshot/044aadd"),
    ("x-github-event", "push"),
    ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ("x-github-hook-id", "292430182"),
    (
        "x-hub-signature-256",
        "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c",
    ),
];

async fn publish_push(webhook_url: &str, query: &str) {
    let mut req = http().post(format!("{webhook_url}{query}")).body(PUSH);
    for (name, value) in GITHUB_HEADERS {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 202, "publish");
}

async fn publish_n(relay: &Relay, channel: &str, n: i64) {
    let res = http()
        .post(format!("{}/{channel}", relay.base))
        .header("content-type", "application/json")
        .body(format!("{{\"n\":{n}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "publish {n}");
}

/// What a GitHub app behind smee-client relies on arrived intact.
fn assert_is_the_push(got: &Recorded, target: &Target) {
    assert_eq!(got.method, "POST");
    for (name, value) in GITHUB_HEADERS {
        assert_eq!(got.header(name), Some(*value), "header {name}");
    }
    // smee-client re-serialises JSON, so the bytes differ; the document must not.
    let sent: Value = serde_json::from_str(PUSH).unwrap();
    let got_body: Value = serde_json::from_slice(&got.body).expect("a JSON body");
    assert_eq!(got_body, sent);
    // The relay's Host is not forwarded: the target sees its own.
    assert_eq!(got.header("host"), Some(target.addr.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn smee_client_forwards_a_github_webhook_intact() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;

    let source = format!("{}/{}?token={}", relay.base, ch.channel, ch.token);
    let mut smee = Smee::forward(&source, &format!("{}/webhooks/github", target.url()));
    smee.wait_for("Connected to", 1).await;

    publish_push(&ch.webhook_url, "?installation=42").await;
    wait_until(DEADLINE, "smee-client to deliver the push", || {
        target.count() == 1
    })
    .await;
    let got = &target.seen()[0];
    assert_eq!(
        got.uri, "/webhooks/github?installation=42",
        "query forwarded"
    );
    assert_is_the_push(got, &target);
    smee.wait_for("POST http://", 1).await;
    assert!(
        !smee.output().contains("Error"),
        "smee-client output:\n{}",
        smee.output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smee_client_creates_its_channel_with_head_new() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let target = Target::start().await;

    let mut smee = Smee::create_and_forward(&format!("{}/new", relay.base), &target.url());
    let line = smee.wait_for("CHANNEL ", 1).await;
    let source = line.trim_start_matches("CHANNEL ").trim().to_owned();
    let (webhook_url, token) = source
        .split_once("?token=")
        .expect("the token in the location");
    assert!(
        webhook_url.starts_with(&format!("{}/", relay.base)),
        "{source}"
    );
    assert!(!token.is_empty());
    smee.wait_for("Connected to", 1).await;

    publish_push(webhook_url, "").await;
    wait_until(DEADLINE, "smee-client to deliver the push", || {
        target.count() == 1
    })
    .await;
    let got = &target.seen()[0];
    assert_eq!(got.uri, "/");
    assert_is_the_push(got, &target);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_published_across_a_relay_restart_reach_the_target_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;
    let source = format!("{}/{}?token={}", relay.base, ch.channel, ch.token);
    let mut smee = Smee::forward(&source, &target.url());
    smee.wait_for("Connected to", 1).await;

    for i in 1..=2 {
        publish_n(&relay, &ch.channel, i).await;
    }
    wait_until(DEADLINE, "the first two events", || target.count() == 2).await;

    relay.kill9();
    let relay = Relay::start_on(dir.path(), &relay.addr.to_string(), &[]);
    // Published at once: smee-client is still waiting to reconnect, so only
    // its Last-Event-ID can bring these.
    for i in 3..=5 {
        publish_n(&relay, &ch.channel, i).await;
    }
    smee.wait_for("Connected to", 2).await;
    wait_until(DEADLINE, "the events published across the restart", || {
        target.count() >= 5
    })
    .await;
    // It resumed after the last event it had, not from the live head.
    assert!(
        relay.logs().contains("resuming from Last-Event-ID") && relay.logs().contains("after=2"),
        "relay logs:\n{}",
        relay.logs()
    );
    // Nothing twice: a probe is the very next delivery.
    publish_n(&relay, &ch.channel, 6).await;
    wait_until(DEADLINE, "the probe", || target.count() >= 6).await;
    let mut got: Vec<i64> = target
        .seen()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    // smee-client forwards concurrently, so a replayed burst may land in any order.
    got.sort_unstable();
    assert_eq!(
        got,
        [1, 2, 3, 4, 5, 6],
        "smee-client output:\n{}",
        smee.output()
    );
}

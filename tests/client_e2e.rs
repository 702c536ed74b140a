//! hookpipe-client end to end: a real relay process, a real client process
//! and a real local target that records what it receives. Bodies arrive
//! byte-exact (signatures verify), and nothing is lost or repeated while the
//! relay, the target and the client are each killed and restarted.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::target::{Recorded, Target};
use common::{DEADLINE, Relay, http, new_channel, subscribe, wait_until};
use hookpipe::protocol::NewChannel;
use sha2::{Digest, Sha256};

/// Long enough for reconnect and delivery backoff (each capped at 30 s).
const LONG: Duration = Duration::from_secs(120);

/// A running `hookpipe-client`, killed on drop.
struct Client {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(relay: &Relay, ch: &NewChannel, target: &str, state: &Path, extra: &[&str]) -> Client {
        Self::start_with(
            &format!("{}/{}", relay.base, ch.channel),
            &ch.token,
            target,
            state,
            extra,
        )
    }

    fn start_with(url: &str, token: &str, target: &str, state: &Path, extra: &[&str]) -> Client {
        let mut child = Command::new(common::bin("hookpipe-client"))
            .args(["--url", url, "--target", target, "--state-file"])
            .arg(state)
            .args(extra)
            .env("HOOKPIPE_TOKEN", token)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hookpipe-client");
        let (stdout, out_reader) = drain(child.stdout.take().expect("stdout"));
        let (stderr, err_reader) = drain(child.stderr.take().expect("stderr"));
        Client {
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn kill9(&mut self) {
        common::kill9(&mut self.child);
    }

    fn terminate(&self) {
        common::sigterm(&self.child);
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let stderr = self.stderr.clone();
        let status = common::wait_exit(&mut self.child, within, "client", || {
            stderr.lock().unwrap().join("\n")
        });
        // Its pipes are at end of file now: collect every last line.
        for reader in self.readers.drain(..) {
            reader.join().expect("pipe reader");
        }
        status
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects a pipe's lines for the process's whole life, so it never blocks.
fn drain(
    pipe: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

fn seq_of(r: &Recorded) -> u64 {
    r.header("x-hookpipe-seq")
        .expect("x-hookpipe-seq")
        .parse()
        .expect("numeric seq")
}

/// Publishes with retries while the relay is down; returns the seq.
async fn publish_until_accepted(base: &str, channel: &str, body: String) -> u64 {
    let start = Instant::now();
    loop {
        let res = http()
            .post(format!("{base}/{channel}/load"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if let Ok(res) = res
            && res.status() == 202
        {
            let receipt: hookpipe::protocol::Receipt =
                serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
            return receipt.seq;
        }
        assert!(
            start.elapsed() < LONG,
            "the relay did not accept {body} within {LONG:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SECRET: &[u8] = b"It's a Secret to Everybody";

#[tokio::test(flavor = "multi_thread")]
async fn forwards_byte_exact_with_methods_paths_queries_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;
    let hook = format!("{}/hook", target.url());
    let url = |path: &str| format!("{}/{}{path}", relay.base, ch.channel);

    let json = "{ \"zen\" :\"Keep it logically awesome.\",\n\t\"esc\":\"\\u00e9\\n\\\"q\\\" \\/\" , \"n\": 1.50, \"a\":[ ] }\n".as_bytes().to_vec();
    let github_sig = format!("sha256={}", hmac_sha256(SECRET, &json));
    let form = b"a=1&b=%26+x&c=%E2%9C%93".to_vec();
    let stripe_body = b"{\"id\":\"evt_1\",  \"object\":\"event\"}".to_vec();
    let t = "1700000000";
    let stripe_sig = format!(
        "t={t},v1={}",
        hmac_sha256(SECRET, &[t.as_bytes(), b".", &stripe_body].concat())
    );
    let binary: Vec<u8> = (0..=255u8).rev().collect();

    let c = http();
    let sent = [
        c.post(url("/github?x=1&y=%20z"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-hub-signature-256", &github_sig)
            .header("x-multi", "first")
            .header("x-multi", "second")
            .body(json.clone()),
        c.put(url("/form"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone()),
        c.post(url("/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", &stripe_sig)
            .body(stripe_body.clone()),
        c.patch(url("/bin/deep/path?q=%2F"))
            .header("content-type", "application/octet-stream")
            .body(binary.clone()),
        c.delete(url("")),
        c.get(url("/ping?empty")),
    ];
    for req in sent {
        assert_eq!(req.send().await.unwrap().status(), 202);
    }

    let state = dir.path().join("state.json");
    let client = Client::start(&relay, &ch, &hook, &state, &["--since", "0"]);
    wait_until(DEADLINE, "six deliveries", || target.count() >= 6).await;
    let seen = target.seen();
    assert_eq!(
        seen.len(),
        6,
        "no duplicates; client logs:\n{}",
        client.logs()
    );

    let want: [(&str, &str, &[u8]); 6] = [
        ("POST", "/hook/github?x=1&y=%20z", &json),
        ("PUT", "/hook/form", &form),
        ("POST", "/hook/stripe", &stripe_body),
        ("PATCH", "/hook/bin/deep/path?q=%2F", &binary),
        ("DELETE", "/hook", b""),
        ("GET", "/hook/ping?empty", b""),
    ];
    for (i, (r, (method, uri, body))) in seen.iter().zip(want).enumerate() {
        assert_eq!(
            (r.method.as_str(), r.uri.as_str()),
            (method, uri),
            "request {i}"
        );
        assert_eq!(&r.body[..], body, "{method} {uri}: body bytes");
        assert_eq!(seq_of(r), i as u64 + 1, "in seq order");
        assert_eq!(
            r.header("host"),
            Some(target.addr.to_string().as_str()),
            "Host is the target's"
        );
        if let Some(len) = r.header("content-length") {
            assert_eq!(len, body.len().to_string());
        }
        assert!(
            r.header("x-hookpipe-event-id")
                .is_some_and(|id| id.starts_with("evt_"))
        );
        assert_eq!(r.header("x-hookpipe-delivery-attempt"), Some("1"));
    }
    // Signatures verify at the local server, over the bytes it received.
    let gh = &seen[0];
    assert_eq!(
        gh.header("x-hub-signature-256").unwrap(),
        format!("sha256={}", hmac_sha256(SECRET, &gh.body))
    );
    assert_eq!(gh.header_all("x-multi"), vec!["first", "second"]);
    assert_eq!(gh.header("content-type"), Some("application/json"));
    let st = &seen[2];
    let v1 = hmac_sha256(SECRET, &[t.as_bytes(), b".", &st.body[..]].concat());
    assert_eq!(
        st.header("stripe-signature").unwrap(),
        format!("t={t},v1={v1}")
    );
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/x-www-form-urlencoded"),
        "not forced to JSON"
    );

    // Every header the relay stored arrives, in the relay's order.
    let mut sub = subscribe(&relay, &ch, Some(0)).await;
    let stored = sub.events(6).await;
    let ours = |n: &str| matches!(n, "host" | "content-length") || n.starts_with("x-hookpipe-");
    for (ev, r) in stored.iter().zip(&seen) {
        let from_relay: Vec<_> = ev
            .headers
            .iter()
            .filter(|(n, _)| !ours(n))
            .cloned()
            .collect();
        let at_target: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| !ours(n))
            .cloned()
            .collect();
        assert_eq!(at_target, from_relay, "seq {}", ev.seq);
    }

    // One text line per delivery, and the position is saved.
    wait_until(DEADLINE, "six output lines", || client.stdout().len() >= 6).await;
    let out = client.stdout();
    assert!(
        out[0].starts_with("POST /github?x=1&y=%20z → 200 in ") && out[0].ends_with(" ms (seq 1)"),
        "{}",
        out[0]
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["last_seq"], 6);
    assert_eq!(saved["channel"], ch.channel.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_lost_through_relay_kill_target_restart_and_client_kill() {
    const N: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let mut relay = Relay::start(&data, &[]);
    let ch = new_channel(&relay.base).await;
    let mut target = Target::start().await;
    let hook = target.url();
    let state = dir.path().join("state.json");
    // A retry budget far beyond any outage below: nothing may fail.
    let flags = ["--max-retries", "1000", "--timeout", "5s"];
    let mut client = Client::start(
        &relay,
        &ch,
        &hook,
        &state,
        &[&["--since", "0"][..], &flags].concat(),
    );

    // The publisher runs alongside, up to a limit the test raises phase by
    // phase, so events arrive during every outage.
    let published = Arc::new(Mutex::new(Vec::<u64>::new()));
    let allowed = Arc::new(AtomicU64::new(150));
    let publisher = {
        let (base, channel) = (relay.base.clone(), ch.channel.clone());
        let (published, allowed) = (published.clone(), allowed.clone());
        tokio::spawn(async move {
            for n in 0..N {
                while n >= allowed.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let seq = publish_until_accepted(&base, &channel, format!("{{\"n\": {n}}}")).await;
                published.lock().unwrap().push(seq);
            }
        })
    };
    let count = |p: &Arc<Mutex<Vec<u64>>>| p.lock().unwrap().len() as u64;

    // (a) The relay dies mid-stream and comes back on the same port and data.
    wait_until(LONG, "100 published", || count(&published) >= 100).await;
    let addr = relay.addr.to_string();
    relay.kill9();
    let relay = Relay::start_on(&data, &addr, &[]);

    // (b) The target goes away while events keep coming, then returns.
    wait_until(LONG, "120 delivered", || target.count() >= 120).await;
    target.stop().await;
    allowed.store(300, Ordering::SeqCst);
    wait_until(LONG, "250 published", || count(&published) >= 250).await;
    wait_until(LONG, "the client to retry", || {
        client.logs().contains("connection refused")
    })
    .await;
    target.restart().await;

    // (c) The client is killed with -9 and restarted from its state file.
    wait_until(LONG, "280 delivered", || target.count() >= 280).await;
    client.kill9();
    let killed_at = target.seen().iter().map(seq_of).max().unwrap();
    allowed.store(420, Ordering::SeqCst);
    wait_until(LONG, "420 published", || count(&published) >= 420).await;
    let client = Client::start(&relay, &ch, &hook, &state, &flags);
    allowed.store(N, Ordering::SeqCst);

    publisher.await.unwrap();
    let head = *published.lock().unwrap().iter().max().unwrap();
    wait_until(LONG, "the last event at the target", || {
        target.seen().iter().any(|r| seq_of(r) == head)
    })
    .await;

    let seen: Vec<u64> = target.seen().iter().map(seq_of).collect();
    // Drop the repeats the client kill may cause: each is an event the killed
    // client delivered but had not recorded yet, so it sits at the kill point.
    let mut unique = Vec::new();
    let mut repeats = Vec::new();
    for &s in &seen {
        if unique.last().is_some_and(|&last| s <= last) {
            repeats.push(s);
        } else {
            unique.push(s);
        }
    }
    assert_eq!(
        unique,
        (1..=head).collect::<Vec<_>>(),
        "every event, in order; client logs:\n{}",
        client.logs()
    );
    eprintln!(
        "{} deliveries of {head} events; repeats {repeats:?} around the kill at seq {killed_at}",
        seen.len()
    );
    assert!(repeats.len() <= 2, "repeats {repeats:?}");
    assert!(
        repeats.iter().all(|s| s.abs_diff(killed_at) <= 1),
        "repeats {repeats:?} not at the kill (seq {killed_at})"
    );
    // Every published body arrived (a publish retried across the relay kill may add a seq).
    let bodies: std::collections::BTreeSet<String> = target
        .seen()
        .iter()
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    assert!((0..N).all(|n| bodies.contains(&format!("{{\"n\": {n}}}"))));
    drop(relay);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_and_a_restart_resumes_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;
    let state = dir.path().join("state.json");
    for i in 0..5 {
        common::publish(&relay.base, &ch.channel, "", format!("a{i}")).await;
    }
    let mut client = Client::start(
        &relay,
        &ch,
        &target.url(),
        &state,
        &["--since", "0", "--json"],
    );
    wait_until(DEADLINE, "5 deliveries", || target.count() == 5).await;
    wait_until(DEADLINE, "5 JSON lines", || client.stdout().len() == 5).await;
    let line: serde_json::Value = serde_json::from_str(&client.stdout()[4]).unwrap();
    assert_eq!(
        (line["seq"].as_u64(), line["status"].as_u64()),
        (Some(5), Some(200))
    );
    assert_eq!(
        (
            line["outcome"].as_str(),
            line["attempts"].as_u64(),
            line["method"].as_str()
        ),
        (Some("delivered"), Some(1), Some("POST"))
    );
    client.terminate();
    assert_eq!(
        client.wait_exit(DEADLINE).code(),
        Some(0),
        "logs:\n{}",
        client.logs()
    );

    // Offline events wait at the relay; a restart delivers exactly those.
    for i in 0..3 {
        common::publish(&relay.base, &ch.channel, "", format!("b{i}")).await;
    }
    let client = Client::start(&relay, &ch, &target.url(), &state, &[]);
    wait_until(DEADLINE, "8 deliveries", || target.count() >= 8).await;
    let seqs: Vec<u64> = target.seen().iter().map(seq_of).collect();
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<_>>(),
        "logs:\n{}",
        client.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_without_state_takes_only_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;
    common::publish(&relay.base, &ch.channel, "", "old").await;
    let client = Client::start(&relay, &ch, &target.url(), &dir.path().join("s.json"), &[]);
    wait_until(DEADLINE, "the client to start at the head", || {
        client
            .logs()
            .contains("starting after the relay's newest event, seq 1")
    })
    .await;
    common::publish(&relay.base, &ch.channel, "", "new").await;
    wait_until(DEADLINE, "one delivery", || target.count() == 1).await;
    assert_eq!(&target.seen()[0].body[..], b"new");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_5xx_never_4xx_and_a_final_failure_is_loud_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;
    target.answer(422);
    common::publish(&relay.base, &ch.channel, "", "rejected").await;
    let client = Client::start(
        &relay,
        &ch,
        &target.url(),
        &dir.path().join("s.json"),
        &["--since", "0", "--json", "--max-retries", "1"],
    );
    wait_until(DEADLINE, "the 4xx answer", || client.stdout().len() == 1).await;
    let rejected: serde_json::Value = serde_json::from_str(&client.stdout()[0]).unwrap();
    assert_eq!(
        (
            rejected["outcome"].as_str(),
            rejected["status"].as_u64(),
            rejected["attempts"].as_u64()
        ),
        (Some("rejected"), Some(422), Some(1))
    );

    target.answer(503);
    common::publish(&relay.base, &ch.channel, "", "fails").await;
    wait_until(DEADLINE, "the final failure", || client.stdout().len() == 2).await;
    let failed: serde_json::Value = serde_json::from_str(&client.stdout()[1]).unwrap();
    assert_eq!(
        (
            failed["outcome"].as_str(),
            failed["status"].as_u64(),
            failed["attempts"].as_u64()
        ),
        (Some("failed"), Some(503), Some(2))
    );
    assert!(
        client.logs().contains("DELIVERY FAILED for seq 2"),
        "logs:\n{}",
        client.logs()
    );

    // The stream moves on after the failure.
    target.answer(200);
    common::publish(&relay.base, &ch.channel, "", "ok").await;
    wait_until(DEADLINE, "the next delivery", || client.stdout().len() == 3).await;
    let seqs: Vec<u64> = target.seen().iter().map(seq_of).collect();
    assert_eq!(
        seqs,
        vec![1, 3],
        "422 recorded once, 503s never, then the next event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_concurrency_keep_a_contiguous_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let target = Target::start().await;
    for i in 0..60u32 {
        let kind = if i % 3 == 0 { "ping" } else { "push" };
        let res = http()
            .post(format!("{}/{}", relay.base, ch.channel))
            .header("x-github-event", kind)
            .body(format!("{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let state = dir.path().join("s.json");
    let client = Client::start(
        &relay,
        &ch,
        &target.url(),
        &state,
        &[
            "--since",
            "0",
            "--concurrency",
            "4",
            "--filter",
            "X-GitHub-Event=push",
        ],
    );
    wait_until(DEADLINE, "40 push deliveries", || target.count() >= 40).await;
    wait_until(DEADLINE, "the state file at seq 60", || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"last_seq\":60"))
    })
    .await;
    let mut seqs: Vec<u64> = target.seen().iter().map(seq_of).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=60).filter(|s| (s - 1) % 3 != 0).collect::<Vec<_>>(),
        "logs:\n{}",
        client.logs()
    );
    assert!(
        target
            .seen()
            .iter()
            .all(|r| r.header("x-github-event") == Some("push"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_exits_with_a_message_that_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let ch = new_channel(&relay.base).await;
    let state = dir.path().join("s.json");
    let target = "http://127.0.0.1:9/hook";

    let mut c = Client::start_with(
        &format!("{}/{}", relay.base, ch.channel),
        "wrong-token",
        target,
        &state,
        &[],
    );
    assert_eq!(c.wait_exit(DEADLINE).code(), Some(3));
    assert!(
        c.logs().contains("the relay rejected the token"),
        "{}",
        c.logs()
    );
    assert!(
        !c.logs().contains("wrong-token"),
        "the token is never printed"
    );

    let mut c = Client::start_with(
        &format!("{}/NoSuchChannel", relay.base),
        &ch.token,
        target,
        &state,
        &[],
    );
    assert_eq!(c.wait_exit(DEADLINE).code(), Some(4));
    assert!(
        c.logs().contains("no channel NoSuchChannel"),
        "{}",
        c.logs()
    );

    let mut c = Client::start_with("relay.example.com", &ch.token, target, &state, &[]);
    assert_eq!(c.wait_exit(DEADLINE).code(), Some(2));
    assert!(
        c.logs()
            .contains("--url must look like http://relay.example.com/CHANNEL"),
        "{}",
        c.logs()
    );

    let mut c = Client::start_with(
        &format!("{}/{}", relay.base, ch.channel),
        &ch.token,
        "localhost:3000",
        &state,
        &[],
    );
    assert_eq!(c.wait_exit(DEADLINE).code(), Some(2));
    assert!(c.logs().contains("--target must be"), "{}", c.logs());
}

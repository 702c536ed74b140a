//! `hookpipe bench`, run as the real binary: embedded (WebSocket and SSE) and against a separate
//! relay, the plot, the idle-subscriber memory figure, and argument errors.

mod common;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Relay;
use serde_json::Value;

/// Longest any bench run in this file may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `hookpipe bench ARGS`, killing it after [`RUN_DEADLINE`].
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookpipe"))
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("HOOKPIPE_BENCH_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookpipe bench");
    // Drain both pipes while it runs so a chatty run never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hookpipe bench {args:?} did not finish within {RUN_DEADLINE:?}; stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The JSON report of a run that must have succeeded.
fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

fn assert_sane_latencies(r: &Value) {
    let l = &r["latency_ms"];
    let get = |k: &str| {
        l[k].as_f64()
            .unwrap_or_else(|| panic!("latency_ms.{k} missing in {r}"))
    };
    let (p50, p90, p99, p999, max) = (get("p50"), get("p90"), get("p99"), get("p999"), get("max"));
    assert!(p50 > 0.0, "p50 must be positive: {l}");
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "percentiles out of order: {l}"
    );
    assert!(r["publishes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["deliveries_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn embedded_run_delivers_every_message_to_every_subscriber() {
    let out = bench(&[
        "--embedded",
        "--messages",
        "2000",
        "--publishers",
        "4",
        "--subscribers",
        "3",
        "--json",
        "--fail-on-loss",
    ]);
    let r = report(&out);
    assert_eq!(u(&r, "published"), 2000, "{r}");
    assert_eq!(u(&r, "delivered"), 3 * 2000, "{r}");
    assert_eq!(u(&r, "expected"), 3 * 2000, "{r}");
    assert_eq!(u(&r, "lost"), 0, "{r}");
    assert_eq!(u(&r, "duplicates"), 0, "{r}");
    assert_eq!(u(&r, "unexpected_frames"), 0, "{r}");
    assert_eq!(r["rejections"], serde_json::json!({}), "{r}");
    assert_eq!(r["config"]["embedded"], true);
    assert_sane_latencies(&r);
}

#[test]
fn sse_subscribers_get_every_message_too() {
    let out = bench(&[
        "--embedded",
        "--transport",
        "sse",
        "--messages",
        "1000",
        "--subscribers",
        "2",
        "--channels",
        "2",
        "--json",
        "--fail-on-loss",
    ]);
    let r = report(&out);
    assert_eq!(r["config"]["transport"], "sse");
    assert_eq!(u(&r, "published"), 1000, "{r}");
    assert_eq!(u(&r, "delivered"), 2 * 1000, "{r}");
    assert_eq!(u(&r, "lost"), 0, "{r}");
    assert_eq!(u(&r, "duplicates"), 0, "{r}");
    // `ready` and `ping` events are the relay's own, not stray messages.
    assert_eq!(u(&r, "unexpected_frames"), 0, "{r}");
    assert_sane_latencies(&r);
}

#[test]
fn paced_run_against_a_relay_over_ten_channels_draws_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let svg = dir.path().join("out.svg");
    let started = Instant::now();
    let out = bench(&[
        "--url",
        &relay.base,
        "--channels",
        "10",
        "--rate",
        "2000",
        "--messages",
        "2000",
        "--plot",
        svg.to_str().unwrap(),
        "--json",
        "--fail-on-loss",
    ]);
    let r = report(&out);
    assert_eq!(u(&r, "published"), 2000, "{r}");
    assert_eq!(u(&r, "delivered"), 2000, "{r}");
    assert_eq!(u(&r, "lost"), 0, "{r}");
    assert_sane_latencies(&r);
    // 2000 messages at 2000/s cannot take much less than a second.
    assert!(r["publish_secs"].as_f64().unwrap() >= 0.9, "not paced: {r}");
    assert!(
        r["publishes_per_sec"].as_f64().unwrap() <= 2300.0,
        "not paced: {r}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let svg = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(
        svg.contains("<svg"),
        "not an SVG: {}",
        &svg[..svg.len().min(200)]
    );
    assert!(
        svg.contains("percentile") && svg.contains("latency"),
        "axes unlabelled"
    );
}

#[test]
fn idle_subscribers_report_the_relays_memory_per_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let pid = relay.pid().to_string();
    let out = bench(&[
        "--url",
        &relay.base,
        "--idle-subscribers",
        "200",
        "--channels",
        "4",
        "--server-pid",
        &pid,
        "--json",
    ]);
    let r = report(&out);
    assert_eq!(u(&r, "requested"), 200, "{r}");
    assert_eq!(u(&r, "connected"), 200, "{r}");
    assert_eq!(u(&r, "still_connected"), 200, "{r}");
    assert!(r["connects_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        u(&r, "server_rss_after_bytes") > u(&r, "server_rss_before_bytes"),
        "{r}"
    );
    let per = r["per_subscriber_bytes"].as_i64().expect("a byte figure");
    assert!(per > 0, "per-subscriber bytes must be positive: {r}");
}

#[test]
fn argument_errors_exit_non_zero_with_a_message() {
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let both = bench(&["--url", "http://127.0.0.1:9", "--embedded"]);
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );

    let neither = bench(&["--messages", "10"]);
    assert!(!neither.status.success());
    assert!(stderr(&neither).contains("--url"), "{}", stderr(&neither));

    let tiny = bench(&["--embedded", "--payload", "10"]);
    assert!(!tiny.status.success());
    assert!(
        stderr(&tiny).contains("at least 48 bytes"),
        "{}",
        stderr(&tiny)
    );

    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let down = bench(&["--url", &url, "--messages", "10"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).contains(&format!("cannot reach the relay at {url}")),
        "{}",
        stderr(&down)
    );
}

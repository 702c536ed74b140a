//! The binary's command line as a user meets it: help, usage errors and their
//! exit codes, and a relay that cannot be reached (retried, never fatal).
//! Scenarios with a real relay live in the workspace's `tests/client_e2e.rs`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hookpipe-client");

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("HOOKPIPE_TOKEN")
        .output()
        .expect("run hookpipe-client");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_documents_every_flag_and_variable_but_no_secret() {
    let out = Command::new(BIN)
        .arg("--help")
        .env("HOOKPIPE_TOKEN", "s3cr3t-value")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--url",
        "--token",
        "--target",
        "--state-file",
        "--since",
        "--concurrency",
        "--max-retries",
        "--timeout",
        "--filter",
        "--json",
        "--quiet",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        let var = format!(
            "HOOKPIPE_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(help.contains(&var), "{var} missing from --help");
    }
    assert!(help.contains("3½ minutes"), "the retry budget is explained");
    assert!(help.contains("Exit codes"));
    assert!(
        !help.contains("s3cr3t-value"),
        "the token's value is hidden"
    );
}

#[test]
fn usage_errors_exit_2_and_say_what_to_fix() {
    let target = ["--target", "http://127.0.0.1:3000/hook"];
    let (code, _, err) = run(&[
        &["--url", "relay.example.com/abc", "--token", "t"][..],
        &target,
    ]
    .concat());
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--url must look like http://relay.example.com/CHANNEL"),
        "{err}"
    );

    let (code, _, err) = run(&[
        "--url",
        "http://127.0.0.1:1/abc",
        "--token",
        "t",
        "--target",
        "127.0.0.1:3000",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--target must be the http:// or https:// URL of your local server"),
        "{err}"
    );

    let (code, _, err) = run(&[
        &[
            "--url",
            "http://127.0.0.1:1/abc",
            "--token",
            "t",
            "--filter",
            "push",
        ][..],
        &target,
    ]
    .concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("--filter must look like NAME=VALUE"), "{err}");

    let (code, _, err) = run(&[&["--url", "http://127.0.0.1:1/abc"][..], &target].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("--token"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "garbage").unwrap();
    let (code, _, err) = run(&[
        &[
            "--url",
            "http://127.0.0.1:1/abc",
            "--token",
            "t",
            "--state-file",
            state.to_str().unwrap(),
        ][..],
        &target,
    ]
    .concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a hookpipe state file"), "{err}");
}

#[test]
fn an_unreachable_relay_is_retried_and_sigterm_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback refuses connections.
    let mut child = Command::new(BIN)
        .args([
            "--url",
            "http://127.0.0.1:1/abc",
            "--token",
            "t",
            "--target",
            "http://127.0.0.1:1/hook",
            "--state-file",
        ])
        .arg(dir.path().join("s.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let sink = logs.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while logs
        .lock()
        .unwrap()
        .matches("cannot reach the relay")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no reconnect attempts logged:\n{}",
            logs.lock().unwrap()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited on a transient error:\n{}",
            logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        logs.lock().unwrap().contains("is not reachable yet"),
        "the target check warns"
    );
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

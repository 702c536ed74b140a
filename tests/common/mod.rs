//! The shared test kit: a real relay process on port 0, a real WebSocket
//! subscriber, an HTTP publisher, and a recording local target. Every wait
//! has a deadline; nothing sleeps and hopes.
#![allow(dead_code)]

pub mod browser;
pub mod smee;
pub mod sse;
pub mod target;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hookpipe::protocol::{Event, NewChannel, Receipt, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected thing may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Path of a binary built by this workspace (`hookpipe`, `hookpipe-client`).
pub fn bin(name: &str) -> PathBuf {
    let relay = PathBuf::from(env!("CARGO_BIN_EXE_hookpipe"));
    let path = relay.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo test --workspace)",
        path.display()
    );
    path
}

/// A running `hookpipe serve` process, killed on drop.
pub struct Relay {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://addr`.
    pub base: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// Starts a relay on a free port with `extra` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Relay {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts a relay on `listen` (e.g. the port a killed relay had).
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookpipe"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hookpipe");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        // Drain stderr for the process's whole life so logging never blocks it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(DEADLINE) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "relay did not start within {DEADLINE:?}; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Relay {
            child,
            addr,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_owned(),
            logs,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        sigterm(&self.child);
    }

    /// Waits for the process to exit, failing the test after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let logs = self.logs.clone();
        wait_exit(&mut self.child, within, "relay", || {
            logs.lock().unwrap().join("\n")
        })
    }
}

/// `kill -9` a child and reap it.
pub fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Sends SIGTERM to a child.
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM failed");
}

/// Waits for a child to exit, failing the test after `within` with `logs()`.
pub fn wait_exit(
    child: &mut Child,
    within: Duration,
    what: &str,
    logs: impl Fn() -> String,
) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            start.elapsed() < within,
            "{what} did not exit within {within:?}; logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for publishing and management calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

/// `POST /new`.
pub async fn new_channel(base: &str) -> NewChannel {
    let res = http()
        .post(format!("{base}/new"))
        .send()
        .await
        .expect("POST /new");
    assert_eq!(res.status(), 201, "POST /new");
    serde_json::from_slice(&res.bytes().await.unwrap()).expect("NewChannel JSON")
}

/// Publishes `body` with `POST` to `/{channel}{path}` and expects 202.
pub async fn publish(
    base: &str,
    channel: &str,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> Receipt {
    let res = http()
        .post(format!("{base}/{channel}{path}"))
        .body(body)
        .send()
        .await
        .expect("publish");
    assert_eq!(res.status(), 202, "publish to {path}");
    serde_json::from_slice(&res.bytes().await.unwrap()).expect("Receipt JSON")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A real WebSocket subscriber.
pub struct Subscriber {
    ws: Ws,
}

/// Connects with `Authorization: Bearer token` and an optional `since`.
pub async fn subscribe(relay: &Relay, ch: &NewChannel, since: Option<u64>) -> Subscriber {
    let mut url = format!("ws://{}/{}", relay.addr, ch.channel);
    if let Some(n) = since {
        url.push_str(&format!("?since={n}"));
    }
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", ch.token).parse().unwrap(),
    );
    let (ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body =
                String::from_utf8_lossy(res.body().as_deref().unwrap_or_default()).into_owned();
            panic!(
                "WebSocket connect refused: {} {body}\nrelay logs:\n{}",
                res.status(),
                relay.logs()
            )
        }
        Err(e) => panic!("WebSocket connect failed: {e}"),
    };
    Subscriber { ws }
}

impl Subscriber {
    /// The next frame the relay sends, parsed; pings are skipped.
    pub async fn next_frame(&mut self) -> ServerFrame {
        let text = self.next_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad frame {text}: {e}"))
    }

    /// The next text frame, raw.
    pub async fn next_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("no frame within the deadline")
                .expect("connection ended")
                .expect("WebSocket error");
            match msg {
                Message::Text(t) => return t.to_string(),
                Message::Close(c) => panic!("closed by relay: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next frame, which must be an event.
    pub async fn next_event(&mut self) -> Event {
        match self.next_frame().await {
            ServerFrame::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The next `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_event().await);
        }
        out
    }

    /// Sends a raw message (acks, garbage).
    pub async fn send(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Waits for the relay's close frame and returns it.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("no close within the deadline")
            {
                Some(Ok(Message::Close(c))) => return c,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("connection failed instead of closing: {e}"),
                None => return None,
            }
        }
    }
}

/// Polls `cond` until it holds, failing with `what` after `within`.
pub async fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

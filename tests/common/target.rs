//! A real local HTTP server that records every request it receives, the way a
//! developer's webhook endpoint would see it. It can be stopped and started
//! again on the same port, and told which status to answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One request as the target saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query, raw.
    pub uri: String,
    /// Headers as `(name, value)` in the order the server parsed them.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Bytes,
}

impl Recorded {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<AtomicU16>,
}

/// The recording target.
pub struct Target {
    /// Where it listens (kept across restarts).
    pub addr: SocketAddr,
    shared: Shared,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Target {
    /// Starts on a free port, answering 200.
    pub async fn start() -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            seen: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let mut t = Target {
            addr,
            shared,
            running: None,
        };
        t.serve(listener);
        t
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let stop = CancellationToken::new();
        let app = Router::new()
            .fallback(record)
            .with_state(self.shared.clone());
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening: connections are refused until [`Target::restart`].
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind target port");
        self.serve(listener);
    }

    /// Answer `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Recorded> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }
}

async fn record(State(shared): State<Shared>, req: Request) -> (StatusCode, Bytes) {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let status = StatusCode::from_u16(shared.status.load(Ordering::SeqCst)).unwrap();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    // Only requests that will be answered with success count as delivered.
    if status.is_success() || status.is_client_error() {
        shared.seen.lock().unwrap().push(Recorded {
            method: parts.method.to_string(),
            uri,
            headers,
            body,
        });
    }
    (status, Bytes::from_static(b"ok"))
}

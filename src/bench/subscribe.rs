//! A subscriber: connect (WebSocket or SSE), then find each message's marker,
//! record its latency, and account for loss and duplicates.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use memchr::memmem;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::Live;
use super::args::Transport;
use super::marker::{Clock, Finder, Plan, Stamp};
use super::target::{CONNECT_TIMEOUT, Endpoint, Http1};

/// Largest SSE line accepted before the stream counts as broken.
const MAX_SSE_LINE: usize = 16 * 1024 * 1024;
/// Highest latency the histogram holds (60 s, in µs); larger ones saturate.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A WebSocket subscriber's stream.
pub type Ws = WebSocketStream<TcpStream>;

/// An open subscription, live from the moment it exists.
pub enum Conn {
    /// WebSocket (hookpipe or nchan).
    Ws(Box<Ws>),
    /// Server-sent events; the connection is kept for the body's sake.
    Sse(Http1, Incoming),
}

/// Connects a WebSocket subscriber with `read_buffer` bytes of read buffer.
pub async fn connect_ws(url: &str, token: Option<&str>, read_buffer: usize) -> anyhow::Result<Ws> {
    let authority = url.split('/').nth(2).unwrap_or_default();
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
        .await
        .map_err(|_| anyhow!("connecting to {authority} timed out"))??;
    stream.set_nodelay(true)?;
    let mut req = url.into_client_request()?;
    if let Some(token) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0);
    let handshake = tokio_tungstenite::client_async_with_config(req, stream, Some(config));
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Http(res))) => {
            let body = res.body().as_deref().unwrap_or_default();
            Err(anyhow!(
                "{url} refused the subscription: {} {}",
                res.status(),
                String::from_utf8_lossy(body)
            ))
        }
        Ok(Err(e)) => Err(anyhow!("WebSocket handshake with {url} failed: {e}")),
        Err(_) => Err(anyhow!("WebSocket handshake with {url} timed out")),
    }
}

/// Subscribes to `url` over `transport`.
pub async fn connect(
    endpoint: &Endpoint,
    url: &str,
    token: Option<&str>,
    transport: Transport,
) -> anyhow::Result<Conn> {
    if transport == Transport::Ws {
        return Ok(Conn::Ws(Box::new(connect_ws(url, token, 16 * 1024).await?)));
    }
    let mut http = Http1::connect(&endpoint.authority)
        .await
        .with_context(|| format!("cannot reach the relay at {}", endpoint.url))?;
    let path = &url[url.find(&endpoint.authority).unwrap_or(0) + endpoint.authority.len()..];
    let mut req = endpoint.request("GET", path, Bytes::new());
    req.headers_mut()
        .insert("accept", "text/event-stream".parse().expect("valid"));
    if let Some(token) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let res = tokio::time::timeout(CONNECT_TIMEOUT, http.open(req))
        .await
        .map_err(|_| anyhow!("SSE subscription to {url} timed out"))??;
    if res.status() != 200 {
        let status = res.status();
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        return Err(anyhow!(
            "{url} refused the SSE subscription: {status} {}",
            String::from_utf8_lossy(&body.unwrap_or_default())
        ));
    }
    Ok(Conn::Sse(http, res.into_body()))
}

/// What one subscriber saw.
#[derive(Debug)]
pub struct Stats {
    /// The channel it subscribed to.
    pub channel: usize,
    /// End-to-end latency of measured messages, µs (created on first use).
    pub latency: Option<Histogram<u64>>,
    /// Distinct messages received (warmup included).
    pub unique: u64,
    /// Distinct measured messages received.
    pub measured: u64,
    /// Messages received more than once.
    pub duplicates: u64,
    /// When the last measured message arrived, µs on the run clock.
    pub last_us: u64,
    /// `gap` frames (the relay says events were dropped by retention).
    pub gaps: u64,
    /// Frames without a marker of this run, or on the wrong channel.
    pub unexpected: u64,
    /// Why the stream ended before it was stopped, if it did.
    pub ended: Option<String>,
}

/// What a subscriber needs besides its connection.
pub struct Job {
    /// Index of its channel.
    pub channel: usize,
    /// The message plan.
    pub plan: Plan,
    /// Finds this run's markers.
    pub finder: Finder,
    /// The run's clock.
    pub clock: Clock,
}

/// Receives until `stop`, then returns what it saw.
pub async fn run(job: Job, conn: Conn, live: Arc<Live>, stop: CancellationToken) -> Stats {
    let mut rx = Receiver::new(job, live.clone());
    rx.acc.stats.ended = match conn {
        Conn::Ws(ws) => read_ws(*ws, &mut rx, &stop).await,
        Conn::Sse(_http, body) => read_sse(body, &mut rx, &stop).await,
    };
    live.subscribers_alive.fetch_sub(1, Relaxed);
    rx.acc.stats
}

async fn read_ws(mut ws: Ws, rx: &mut Receiver, stop: &CancellationToken) -> Option<String> {
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(Message::Text(text))) => rx.on_text(text.as_bytes()),
            Some(Ok(Message::Binary(data))) => rx.on_text(&data),
            Some(Ok(Message::Close(frame))) => {
                return Some(format!("closed by the server: {frame:?}"));
            }
            Some(Ok(_)) => {} // ping/pong
            Some(Err(e)) => return Some(format!("connection failed: {e}")),
            None => return Some("connection ended".into()),
        }
    }
}

async fn read_sse(
    mut body: Incoming,
    rx: &mut Receiver,
    stop: &CancellationToken,
) -> Option<String> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut named_event = false;
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            frame = body.frame() => frame,
        };
        let data = match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers
            },
            Some(Err(e)) => return Some(format!("SSE stream failed: {e}")),
            None => return Some("SSE stream ended".into()),
        };
        buf.extend_from_slice(&data);
        let Some(last_nl) = memchr::memrchr(b'\n', &buf) else {
            if buf.len() > MAX_SSE_LINE {
                return Some(format!("SSE line longer than {MAX_SSE_LINE} bytes"));
            }
            continue;
        };
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &buf[..=last_nl]) {
            let line = &buf[start..nl];
            if line.starts_with(b"data:") {
                // Named events (`ready`, `ping`, `gap`) are the relay's own, not messages.
                rx.on_data(line, !named_event);
            } else if line.starts_with(b"event:") {
                named_event = true;
            } else if line.is_empty() || line == b"\r" {
                named_event = false;
            }
            start = nl + 1;
        }
        buf.drain(..=last_nl);
    }
}

/// The per-message accounting, shared by both transports.
struct Receiver {
    finder: Finder,
    acc: Accounting,
}

struct Accounting {
    channel: usize,
    plan: Plan,
    clock: Clock,
    live: Arc<Live>,
    seen: Seen,
    stats: Stats,
}

impl Receiver {
    fn new(job: Job, live: Arc<Live>) -> Self {
        let stats = Stats {
            channel: job.channel,
            latency: None,
            unique: 0,
            measured: 0,
            duplicates: 0,
            last_us: 0,
            gaps: 0,
            unexpected: 0,
            ended: None,
        };
        Receiver {
            finder: job.finder,
            acc: Accounting {
                channel: job.channel,
                plan: job.plan,
                clock: job.clock,
                live,
                seen: Seen(vec![Vec::new(); job.plan.publishers as usize]),
                stats,
            },
        }
    }

    fn on_text(&mut self, text: &[u8]) {
        self.on_data(text, true);
    }

    /// Accounts for every marker in `text`; `message` says whether text
    /// without one is a stray frame (rather than a control event).
    fn on_data(&mut self, text: &[u8], message: bool) {
        let now = self.acc.clock.now_us();
        let mut found = false;
        for stamp in self.finder.stamps(text) {
            found = true;
            self.acc.on_stamp(stamp, now);
        }
        if !found {
            if memmem::find(text, br#""type":"gap""#).is_some() {
                self.acc.stats.gaps += 1;
            } else if message {
                self.acc.stats.unexpected += 1;
            }
        }
    }
}

impl Accounting {
    fn on_stamp(&mut self, s: Stamp, now: u64) {
        let plan = &self.plan;
        let in_plan = s.publisher < plan.publishers
            && plan
                .messages_of(s.publisher)
                .is_none_or(|m| s.n < plan.warmup_of(s.publisher) + m)
            && s.n < u64::from(u32::MAX)
            && plan.channel_of(s.publisher, s.n) == self.channel;
        if !in_plan {
            self.stats.unexpected += 1;
            return;
        }
        if !self.seen.insert(s.publisher, s.n) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.unique += 1;
        self.live.unique.fetch_add(1, Relaxed);
        if s.n < plan.warmup_of(s.publisher) {
            return;
        }
        self.stats.measured += 1;
        self.live.delivered.fetch_add(1, Relaxed);
        self.stats.last_us = now;
        self.stats
            .latency
            .get_or_insert_with(new_histogram)
            .saturating_record(now.saturating_sub(s.sent_us).max(1));
    }
}

/// A latency histogram in µs, 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Which (publisher, n) pairs arrived: one growable bitset per publisher.
struct Seen(Vec<Vec<u64>>);

impl Seen {
    /// Marks (p, n) seen; false if it already was.
    fn insert(&mut self, p: u32, n: u64) -> bool {
        let bits = &mut self.0[p as usize];
        let (word, bit) = ((n / 64) as usize, n % 64);
        if bits.len() <= word {
            bits.resize((word + 1).next_power_of_two(), 0);
        }
        let fresh = bits[word] & (1 << bit) == 0;
        bits[word] |= 1 << bit;
        fresh
    }
}

//! A plain Server-Sent Events client over reqwest's byte stream: what a
//! browser's EventSource or `curl -N` sees, parsed field by field.

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::DEADLINE;

/// One SSE event block as sent (absent fields are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:` (an EventSource calls it `message` when absent).
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: Option<String>,
    /// `retry:`.
    pub retry: Option<String>,
    /// `: comment` lines.
    pub comments: Vec<String>,
}

impl SseEvent {
    /// The name an EventSource dispatches it under.
    pub fn name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// `data:` parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        let data = self.data.as_deref().expect("an event with data");
        serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"))
    }
}

/// An open SSE response.
pub struct SseStream {
    /// The response status.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: String,
}

/// `GET url` with `Accept: text/event-stream` and `extra` headers. The client
/// has no overall timeout (streams are long); each read has [`DEADLINE`].
pub async fn connect(url: &str, extra: &[(&str, &str)]) -> SseStream {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream");
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let res = tokio::time::timeout(DEADLINE, req.send())
        .await
        .expect("SSE response within the deadline")
        .expect("SSE request");
    SseStream {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: Box::pin(res.bytes_stream()),
        buf: String::new(),
    }
}

impl SseStream {
    /// A response header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next event block, or `None` once the relay ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout(DEADLINE, self.body.next())
                .await
                .expect("no SSE data within the deadline");
            match chunk {
                Some(Ok(bytes)) => self
                    .buf
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
                Some(Err(e)) if self.buf.trim().is_empty() => {
                    panic!("SSE stream failed instead of ending: {e}")
                }
                Some(Err(e)) => panic!("SSE stream failed mid-event ({e}): {:?}", self.buf),
                None => {
                    assert!(
                        self.buf.trim().is_empty(),
                        "stream ended mid-event: {:?}",
                        self.buf
                    );
                    return None;
                }
            }
        }
    }

    /// The next event, which must exist.
    pub async fn expect_next(&mut self) -> SseEvent {
        self.next().await.expect("the stream ended early")
    }

    /// The next event that is not a `ping`.
    pub async fn next_non_ping(&mut self) -> SseEvent {
        loop {
            let ev = self.expect_next().await;
            if ev.name() != "ping" {
                return ev;
            }
        }
    }

    /// The next `n` webhook (`message`) events, skipping pings; anything else fails.
    pub async fn messages(&mut self, n: usize) -> Vec<SseEvent> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let ev = self.next_non_ping().await;
            assert_eq!(ev.name(), "message", "expected a webhook event, got {ev:?}");
            out.push(ev);
        }
        out
    }

    /// Reads the `ready` event every stream starts with and returns it.
    pub async fn ready(&mut self) -> SseEvent {
        let ev = self.expect_next().await;
        assert_eq!(ev.name(), "ready", "the first event must be ready: {ev:?}");
        ev
    }
}

fn parse(block: &str) -> SseEvent {
    let mut ev = SseEvent::default();
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix(':') {
            ev.comments.push(comment.trim_start().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => ev.id = Some(value),
            "event" => ev.event = Some(value),
            "retry" => ev.retry = Some(value),
            "data" => {
                ev.data = Some(match ev.data.take() {
                    Some(prev) => format!("{prev}\n{value}"),
                    None => value,
                })
            }
            other => panic!("unknown SSE field {other:?} in {block:?}"),
        }
    }
    ev
}

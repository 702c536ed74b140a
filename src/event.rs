//! An incoming webhook before and after it is committed, and its one encoding.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Serialize;

use crate::protocol::BodyEncoding;

/// A webhook request as ingest captured it, before it has a seq.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The channel it was posted to.
    pub channel: String,
    /// Unique event id.
    pub id: String,
    /// Arrival time, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// HTTP method.
    pub method: String,
    /// Raw path after `/{channel}`.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes exactly as received.
    pub body: Bytes,
}

/// An event after its commit: the encoded frame every subscriber shares.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The channel it belongs to.
    pub channel: String,
    /// Its per-channel seq.
    pub seq: u64,
    /// Its unique id.
    pub id: String,
    /// The `{"type":"event",...}` JSON text, encoded once.
    pub frame: String,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-12-04T15:34:59.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Borrowing twin of [`crate::protocol::Event`] inside a `ServerFrame`, so
/// encoding copies nothing but the output.
#[derive(Serialize)]
struct EventFrameRef<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    id: &'a str,
    received_at: String,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    body: Cow<'a, str>,
    body_encoding: BodyEncoding,
}

/// Encodes the event frame for `seq`. Called once per event, at commit.
pub fn encode_frame(ev: &NewEvent, seq: u64) -> String {
    let (body, body_encoding) = match std::str::from_utf8(&ev.body) {
        Ok(text) => (Cow::Borrowed(text), BodyEncoding::Utf8),
        Err(_) => (Cow::Owned(BASE64.encode(&ev.body)), BodyEncoding::Base64),
    };
    let frame = EventFrameRef {
        kind: "event",
        seq,
        id: &ev.id,
        received_at: rfc3339_ms(ev.received_at_ms),
        method: &ev.method,
        path: &ev.path,
        query: &ev.query,
        headers: &ev.headers,
        body,
        body_encoding,
    };
    serde_json::to_string(&frame).expect("an event frame always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, ServerFrame};

    #[test]
    fn encoded_frame_is_a_protocol_event() {
        let ev = NewEvent {
            channel: "c".into(),
            id: "evt_1".into(),
            received_at_ms: 1_764_862_499_123,
            method: "POST".into(),
            path: "/gh".into(),
            query: "x=1".into(),
            headers: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            body: Bytes::from_static(&[0xff, 0x00]),
        };
        let parsed: ServerFrame = serde_json::from_str(&encode_frame(&ev, 9)).unwrap();
        let ServerFrame::Event(e) = parsed else {
            panic!("not an event frame")
        };
        assert_eq!(e.seq, 9);
        assert_eq!(e.received_at, "2025-12-04T15:34:59.123Z");
        assert_eq!(e.body_bytes().unwrap(), vec![0xff, 0x00]);
        assert_eq!(e.headers.len(), 2);
        let _: &Event = &e;
    }
}

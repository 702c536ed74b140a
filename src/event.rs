//! An incoming webhook before and after it is committed, and its one encoding.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::protocol::BodyEncoding;

/// A webhook request as ingest sees it, borrowed from the HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Raw path after `/{channel}`.
    pub path: &'a str,
    /// Raw query string.
    pub query: &'a str,
    /// Headers, in the order the HTTP stack keeps them.
    pub headers: &'a HeaderMap,
    /// Body bytes exactly as received.
    pub body: &'a [u8],
}

/// A webhook request before it has a seq, already encoded: everything of its
/// frame but the seq is serialised on the ingest thread, so the (serial)
/// committer only splices the seq in.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The channel it was posted to.
    pub channel: String,
    /// Unique event id.
    pub id: String,
    /// Arrival time, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The frame's JSON after `{"type":"event","seq":N,`.
    tail: String,
}

impl NewEvent {
    /// Captures and encodes a request.
    pub fn new(channel: String, id: String, received_at_ms: i64, req: Incoming<'_>) -> NewEvent {
        let (body, body_encoding) = match std::str::from_utf8(req.body) {
            Ok(text) => (Cow::Borrowed(text), BodyEncoding::Utf8),
            Err(_) => (Cow::Owned(BASE64.encode(req.body)), BodyEncoding::Base64),
        };
        let fields = EventFieldsRef {
            id: &id,
            received_at: rfc3339_ms(received_at_ms),
            method: req.method,
            path: req.path,
            query: req.query,
            headers: HeaderPairs(req.headers),
            body,
            body_encoding,
        };
        let mut tail = serde_json::to_string(&fields).expect("event fields always serialise");
        tail.remove(0); // the object's `{`: the frame supplies its own
        NewEvent {
            channel,
            id,
            received_at_ms,
            tail,
        }
    }

    /// Bytes this event adds to a batch (for batch size limits).
    pub fn encoded_len(&self) -> usize {
        self.tail.len()
    }

    /// The complete `{"type":"event","seq":N,...}` frame.
    pub fn frame(&self, seq: u64) -> String {
        let mut out = String::with_capacity(self.tail.len() + 40);
        out.push_str("{\"type\":\"event\",\"seq\":");
        out.push_str(itoa::Buffer::new().format(seq));
        out.push(',');
        out.push_str(&self.tail);
        out
    }
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

/// The fields of [`crate::protocol::Event`] after `seq`, borrowed.
#[derive(Serialize)]
struct EventFieldsRef<'a> {
    id: &'a str,
    received_at: String,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: HeaderPairs<'a>,
    body: Cow<'a, str>,
    body_encoding: BodyEncoding,
}

/// Serialises a header map as `[[name, value], ...]` without copying it.
struct HeaderPairs<'a>(&'a HeaderMap);

impl Serialize for HeaderPairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (name, value) in self.0 {
            let value = String::from_utf8_lossy(value.as_bytes());
            seq.serialize_element(&(name.as_str(), value.as_ref()))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Event, ServerFrame};
    use axum::http::HeaderMap;

    #[test]
    fn encoded_frame_is_a_protocol_event() {
        let mut headers = HeaderMap::new();
        headers.append("a", "1".parse().unwrap());
        headers.append("a", "2".parse().unwrap());
        headers.append("content-type", "x/y".parse().unwrap());
        let req = Incoming {
            method: "POST",
            path: "/gh",
            query: "x=1",
            headers: &headers,
            body: &[0xff, 0x00],
        };
        let ev = NewEvent::new("c".into(), "evt_1".into(), 1_764_862_499_123, req);
        let parsed: ServerFrame = serde_json::from_str(&ev.frame(9)).unwrap();
        let ServerFrame::Event(e) = parsed else {
            panic!("not an event frame")
        };
        let expected = Event {
            seq: 9,
            id: "evt_1".into(),
            received_at: "2025-12-04T15:34:59.123Z".into(),
            method: "POST".into(),
            path: "/gh".into(),
            query: "x=1".into(),
            headers: vec![
                ("a".into(), "1".into()),
                ("a".into(), "2".into()),
                ("content-type".into(), "x/y".into()),
            ],
            body: "/wA=".into(),
            body_encoding: crate::protocol::BodyEncoding::Base64,
        };
        assert_eq!(e, expected);
        assert_eq!(e.body_bytes().unwrap(), vec![0xff, 0x00]);
    }
}

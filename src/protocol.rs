//! The wire protocol between the relay and its subscribers.
//!
//! This module is compiled without the `server` feature so that the
//! `hookpipe-client` crate shares these exact types without pulling in the
//! server's stack. Every frame is one JSON text message with a `type` tag.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// How an event's `body` string encodes the original bytes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// The body was valid UTF-8 and is carried as-is.
    Utf8,
    /// The body was not valid UTF-8 and is carried as standard base64.
    Base64,
}

/// One webhook request as the relay received and stored it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Per-channel sequence number, strictly increasing from 1 with no gaps.
    pub seq: u64,
    /// Identifier unique across all channels.
    pub id: String,
    /// RFC 3339 time with millisecond precision, UTC.
    pub received_at: String,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// What followed `/{channel}` in the URL path, raw (`""` when nothing).
    pub path: String,
    /// The raw query string without `?` (`""` when none).
    pub query: String,
    /// All request headers as `[name, value]` pairs, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, as described by `body_encoding`.
    pub body: String,
    /// How `body` encodes the original bytes.
    pub body_encoding: BodyEncoding,
}

impl Event {
    /// Encodes raw body bytes the way the protocol carries them.
    pub fn encode_body(bytes: &[u8]) -> (String, BodyEncoding) {
        match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), BodyEncoding::Utf8),
            Err(_) => (BASE64.encode(bytes), BodyEncoding::Base64),
        }
    }

    /// The body bytes exactly as the relay received them.
    pub fn body_bytes(&self) -> Result<Vec<u8>, ProtocolError> {
        match self.body_encoding {
            BodyEncoding::Utf8 => Ok(self.body.as_bytes().to_vec()),
            BodyEncoding::Base64 => BASE64.decode(&self.body).map_err(|e| {
                ProtocolError(format!("event {}: body is not valid base64: {e}", self.seq))
            }),
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus `expect`, which negotiates the transfer rather than describing
/// content. Whoever re-emits an event (`hookpipe-client`, the smee stream)
/// leaves them out.
pub const CONNECTION_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "expect",
];

/// Why part of a requested backlog cannot be replayed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// First missing seq (inclusive).
    pub from: u64,
    /// Last missing seq (inclusive).
    pub to: u64,
    /// Human-readable reason, e.g. `retention`.
    pub reason: String,
}

/// A frame the relay sends to a subscriber.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A webhook event.
    Event(Event),
    /// Events in `from..=to` are gone (trimmed by retention) and will not be sent.
    Gap(Gap),
    /// The subscriber asked for `since` beyond the channel's newest seq `head`:
    /// the relay's data was reset, so the subscriber's position is meaningless.
    Reset {
        /// The channel's newest seq.
        head: u64,
    },
}

/// A frame a subscriber sends to the relay.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The subscriber finished with event `seq`; `status` is the local server's
    /// HTTP status when it forwarded the event (absent when it did not).
    Ack {
        /// The acknowledged seq.
        seq: u64,
        /// The HTTP status the local target answered, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
}

/// The response to `POST /new`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NewChannel {
    /// The channel id (URL-safe).
    pub channel: String,
    /// The URL to give the webhook provider.
    pub webhook_url: String,
    /// The subscribe secret; shown once, stored only as a hash.
    pub token: String,
}

/// The response to an ingest request (`202 Accepted`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The event's per-channel sequence number.
    pub seq: u64,
    /// The event's unique id.
    pub id: String,
}

/// The JSON body of every error response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong and, where possible, what to do about it.
    pub error: String,
    /// A stable machine-readable code, e.g. `channel_not_found`.
    pub code: String,
}

/// A frame that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frame_shape() {
        let (body, body_encoding) = Event::encode_body(b"{\"a\": 1}");
        let frame = ServerFrame::Event(Event {
            seq: 7,
            id: "e1".into(),
            received_at: "2026-01-01T00:00:00.000Z".into(),
            method: "POST".into(),
            path: "/github".into(),
            query: "a=1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
            body_encoding,
        });
        let json: serde_json::Value = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["type"], "event");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["headers"][0][0], "content-type");
        assert_eq!(json["body_encoding"], "utf8");
        let back: ServerFrame = serde_json::from_value(json).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn binary_bodies_round_trip_through_base64() {
        let raw = [0u8, 159, 146, 150, 255];
        let (body, enc) = Event::encode_body(&raw);
        assert_eq!(enc, BodyEncoding::Base64);
        let ev = Event {
            seq: 1,
            id: String::new(),
            received_at: String::new(),
            method: "POST".into(),
            path: String::new(),
            query: String::new(),
            headers: vec![],
            body,
            body_encoding: enc,
        };
        assert_eq!(ev.body_bytes().unwrap(), raw);
    }

    #[test]
    fn ack_parses_with_and_without_status() {
        let a: ClientFrame = serde_json::from_str(r#"{"type":"ack","seq":3}"#).unwrap();
        assert_eq!(
            a,
            ClientFrame::Ack {
                seq: 3,
                status: None
            }
        );
        let b: ClientFrame =
            serde_json::from_str(r#"{"type":"ack","seq":4,"status":200}"#).unwrap();
        assert_eq!(
            b,
            ClientFrame::Ack {
                seq: 4,
                status: Some(200)
            }
        );
    }
}

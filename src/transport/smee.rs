//! The smee.io message shape, so an unmodified `smee-client` can subscribe.
//!
//! smee-client turns every top-level key of a message except `body` and
//! `query` into a header of the request it sends to its target, and its HTTP
//! stack (undici) rejects the whole request on some headers. So the object
//! holds exactly: the request's headers (lower-cased, minus the ones below),
//! `body`, `query` and `timestamp`.

use serde_json::{Map, Value};

use crate::protocol::{CONNECTION_HEADERS, Event};

/// Keys the message itself uses; a request header with one of these names
/// would clash with them.
const RESERVED_KEYS: &[&str] = &["body", "query", "timestamp"];

/// The smee.io JSON object for one event.
pub fn to_smee(event: &Event) -> Value {
    let mut out = Map::new();
    for (name, value) in &event.headers {
        // `host` names the relay, not the target, and undici refuses
        // connection headers and `expect`.
        if name == "host"
            || CONNECTION_HEADERS.contains(&name.as_str())
            || RESERVED_KEYS.contains(&name.as_str())
        {
            continue;
        }
        // undici only takes header values of Latin-1 characters; one other
        // character (e.g. U+FFFD from a non-UTF-8 value) fails the delivery.
        if value.chars().any(|c| u32::from(c) > 0xff) {
            tracing::debug!(seq = event.seq, header = %name, "header not representable for smee-client; left out");
            continue;
        }
        // A JSON object has one value per name: repeated headers are joined
        // the way HTTP allows (RFC 9110 §5.3).
        match out.get_mut(name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                out.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    out.insert("body".into(), body(event));
    out.insert("query".into(), fields(event.query.as_bytes()));
    out.insert("timestamp".into(), Value::from(timestamp_ms(event)));
    Value::Object(out)
}

/// JSON bodies parsed, form bodies as fields, `{}` when empty, else text.
fn body(event: &Event) -> Value {
    let bytes = match event.body_bytes() {
        Ok(bytes) => bytes,
        // Cannot happen for a stored event; the raw text is the best we have.
        Err(_) => return Value::String(event.body.clone()),
    };
    if bytes.is_empty() {
        return Value::Object(Map::new());
    }
    let media_type = event
        .header("content-type")
        .and_then(|ct| ct.split(';').next())
        .map(|mt| mt.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media_type == "application/json" || media_type.ends_with("+json") {
        if let Ok(parsed) = serde_json::from_slice(&bytes) {
            return parsed;
        }
    } else if media_type == "application/x-www-form-urlencoded" {
        return fields(&bytes);
    }
    Value::String(String::from_utf8_lossy(&bytes).into_owned())
}

/// `a=1&b=2&b=3` → `{"a":"1","b":["2","3"]}`, as smee.io's parsers do.
fn fields(encoded: &[u8]) -> Value {
    let mut out = Map::new();
    for (key, value) in form_urlencoded::parse(encoded) {
        let value = Value::String(value.into_owned());
        match out.get_mut(key.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                out.insert(key.into_owned(), value);
            }
        }
    }
    Value::Object(out)
}

/// When the relay received the event, ms since the epoch (0 if unreadable,
/// which a stored event never is).
fn timestamp_ms(event: &Event) -> u64 {
    humantime::parse_rfc3339(&event.received_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(headers: &[(&str, &str)], body: &[u8], query: &str) -> Event {
        let (body, body_encoding) = Event::encode_body(body);
        Event {
            seq: 1,
            id: "evt_1".into(),
            received_at: "2026-01-02T03:04:05.678Z".into(),
            method: "POST".into(),
            path: "/github".into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body,
            body_encoding,
        }
    }

    #[test]
    fn json_body_with_headers_query_and_timestamp() {
        let ev = event(
            &[
                ("host", "relay.example"),
                ("content-type", "application/json; charset=utf-8"),
                ("x-github-event", "push"),
                ("x-hub-signature-256", "sha256=abc"),
            ],
            br#"{"ref": "main", "n": [1, 2]}"#,
            "a=1&b=x%20y",
        );
        assert_eq!(
            to_smee(&ev),
            json!({
                "content-type": "application/json; charset=utf-8",
                "x-github-event": "push",
                "x-hub-signature-256": "sha256=abc",
                "body": {"ref": "main", "n": [1, 2]},
                "query": {"a": "1", "b": "x y"},
                "timestamp": 1_767_323_045_678u64,
            })
        );
    }

    #[test]
    fn vendor_json_types_are_parsed_and_broken_json_stays_text() {
        let ev = event(&[("content-type", "application/vnd.api+json")], b"[1]", "");
        assert_eq!(to_smee(&ev)["body"], json!([1]));
        let ev = event(&[("content-type", "application/json")], b"{oops", "");
        assert_eq!(to_smee(&ev)["body"], json!("{oops"));
    }

    #[test]
    fn form_bodies_become_fields() {
        let ev = event(
            &[("content-type", "application/x-www-form-urlencoded")],
            b"payload=%7B%22a%22%3A1%7D&tag=x&tag=y+z",
            "",
        );
        assert_eq!(
            to_smee(&ev)["body"],
            json!({"payload": "{\"a\":1}", "tag": ["x", "y z"]})
        );
    }

    #[test]
    fn text_binary_and_empty_bodies() {
        let text = event(&[("content-type", "text/plain")], b"hello", "");
        assert_eq!(to_smee(&text)["body"], json!("hello"));
        let untyped_json = event(&[], b"{\"a\":1}", "");
        assert_eq!(to_smee(&untyped_json)["body"], json!("{\"a\":1}"));
        let binary = event(&[], &[0xff, b'a'], "");
        assert_eq!(to_smee(&binary)["body"], json!("\u{fffd}a"));
        let empty = event(&[("content-type", "application/json")], b"", "");
        assert_eq!(to_smee(&empty)["body"], json!({}));
        assert_eq!(to_smee(&empty)["query"], json!({}));
    }

    #[test]
    fn hop_by_hop_reserved_and_unrepresentable_headers_are_left_out() {
        let ev = event(
            &[
                ("host", "h"),
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "websocket"),
                ("expect", "100-continue"),
                ("te", "trailers"),
                ("body", "sneaky"),
                ("timestamp", "1"),
                ("x-bad", "caf\u{fffd}"),
                ("x-latin", "caf\u{e9}"),
                ("x-keep", "1"),
            ],
            b"x",
            "",
        );
        let v = to_smee(&ev);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["body", "query", "timestamp", "x-keep", "x-latin"]);
        assert_eq!(v["body"], json!("x"));
        assert_eq!(v["timestamp"], json!(1_767_323_045_678u64));
    }

    #[test]
    fn repeated_headers_are_joined() {
        let ev = event(&[("x-a", "1"), ("x-a", "2")], b"", "");
        assert_eq!(to_smee(&ev)["x-a"], json!("1, 2"));
    }
}

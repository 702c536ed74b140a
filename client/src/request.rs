//! The exact request a local server receives for an event.
//!
//! Same method, the relay's headers in the relay's order (hop-by-hop ones
//! dropped, `Host` made the target's, `Content-Length` recomputed), the body
//! bytes exactly as the relay received them, plus three `X-Hookpipe-*`
//! headers for deduplication and tracing. Header names that repeat are sent
//! together at the first one's place (how `http::HeaderMap` orders them, and
//! how the relay stores them).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;

use hookpipe::protocol::{CONNECTION_HEADERS, Event};

use crate::target::Target;

/// Names the client sets itself; copies arriving from the relay are dropped.
pub const EVENT_ID: &str = "x-hookpipe-event-id";
/// The event's per-channel sequence number.
pub const SEQ: &str = "x-hookpipe-seq";
/// 1 for the first attempt, 2 for the first retry, …
pub const ATTEMPT: &str = "x-hookpipe-delivery-attempt";

/// Builds the request for `attempt` (1-based). Fails only on data no HTTP
/// request can carry (an invalid method or URL), which retrying cannot fix.
pub fn build(
    event: &Event,
    body: &Bytes,
    target: &Target,
    attempt: u32,
) -> Result<Request<Full<Bytes>>, String> {
    let method = Method::from_bytes(event.method.as_bytes()).map_err(|_| {
        format!(
            "the event's method '{}' is not a valid HTTP method",
            event.method
        )
    })?;
    let url = target.url_for(&event.path, &event.query);
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("cannot build the target URL '{url}': {e}"))?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body.clone()))
        .expect("method and uri are valid");
    *req.headers_mut() = headers(event, body.len(), target, attempt);
    Ok(req)
}

/// The outgoing headers, in order.
pub fn headers(event: &Event, body_len: usize, target: &Target, attempt: u32) -> HeaderMap {
    // Names listed in `Connection` are hop-by-hop too.
    let listed: Vec<String> = event
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let host =
        HeaderValue::from_str(&target.authority).expect("an authority is a valid header value");
    let length = HeaderValue::from(body_len);

    let mut out = HeaderMap::with_capacity(event.headers.len() + 4);
    let had_host = event
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host"));
    if !had_host {
        out.append(HOST, host.clone());
    }
    let mut length_set = false;
    for (name, value) in &event.headers {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "host" => {
                if !out.contains_key(HOST) {
                    out.append(HOST, host.clone());
                }
            }
            "content-length" => {
                if !length_set {
                    out.append(CONTENT_LENGTH, length.clone());
                    length_set = true;
                }
            }
            n if CONNECTION_HEADERS.contains(&n)
                || listed.iter().any(|l| l == n)
                || n.starts_with("x-hookpipe-") => {}
            _ => match (
                HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                (Ok(n), Ok(v)) => {
                    out.append(n, v);
                }
                _ => {
                    tracing::warn!(seq = event.seq, header = %name, "not forwarding a header that is not valid HTTP")
                }
            },
        }
    }
    let method_has_body = matches!(event.method.as_str(), "POST" | "PUT" | "PATCH");
    if !length_set && (body_len > 0 || method_has_body) {
        out.append(CONTENT_LENGTH, length);
    }
    out.append(
        EVENT_ID,
        HeaderValue::from_str(&event.id).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
    );
    out.append(SEQ, HeaderValue::from(event.seq));
    out.append(ATTEMPT, HeaderValue::from(attempt));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookpipe::protocol::BodyEncoding;

    fn event(headers: &[(&str, &str)], body: &str) -> Event {
        Event {
            seq: 42,
            id: "evt_abc".into(),
            received_at: String::new(),
            method: "POST".into(),
            path: "/github".into(),
            query: "a=1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            body_encoding: BodyEncoding::Utf8,
        }
    }

    fn names_and_values(h: &HeaderMap) -> Vec<(String, String)> {
        h.iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    fn target() -> Target {
        Target::parse("http://127.0.0.1:3000/hook").unwrap()
    }

    #[test]
    fn keeps_order_replaces_host_and_length_drops_hop_by_hop() {
        let ev = event(
            &[
                ("host", "relay.example.com"),
                ("user-agent", "GitHub-Hookshot/1"),
                ("connection", "keep-alive, x-secret-hop"),
                ("x-secret-hop", "1"),
                ("content-type", "application/json"),
                ("transfer-encoding", "chunked"),
                ("content-length", "999"),
                ("x-hub-signature-256", "sha256=ab"),
                ("x-hookpipe-seq", "forged"),
                ("te", "trailers"),
                ("expect", "100-continue"),
                ("proxy-authorization", "Basic x"),
            ],
            "{}",
        );
        let h = headers(&ev, 2, &target(), 3);
        let want: Vec<(String, String)> = [
            ("host", "127.0.0.1:3000"),
            ("user-agent", "GitHub-Hookshot/1"),
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("x-hub-signature-256", "sha256=ab"),
            ("x-hookpipe-event-id", "evt_abc"),
            ("x-hookpipe-seq", "42"),
            ("x-hookpipe-delivery-attempt", "3"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(names_and_values(&h), want);
    }

    #[test]
    fn repeated_headers_keep_their_values_in_order() {
        let ev = event(
            &[("host", "r"), ("x-a", "1"), ("x-b", "2"), ("x-a", "3")],
            "",
        );
        let h = names_and_values(&headers(&ev, 0, &target(), 1));
        assert_eq!(
            &h[1..4],
            &[
                ("x-a".into(), "1".into()),
                ("x-a".into(), "3".into()),
                ("x-b".into(), "2".into())
            ]
        );
    }

    #[test]
    fn host_comes_first_when_the_relay_had_none_and_length_is_added() {
        let ev = event(&[("content-type", "text/plain")], "hello");
        let h = names_and_values(&headers(&ev, 5, &target(), 1));
        assert_eq!(h[0], ("host".into(), "127.0.0.1:3000".into()));
        assert_eq!(h[2], ("content-length".into(), "5".into()));
        let mut get = event(&[], "");
        get.method = "GET".into();
        assert!(
            !headers(&get, 0, &target(), 1).contains_key(CONTENT_LENGTH),
            "no length for a bodiless GET"
        );
    }

    #[test]
    fn builds_method_url_and_exact_body() {
        let mut ev = event(&[("content-type", "application/octet-stream")], "");
        ev.method = "PATCH".into();
        let body = Bytes::from_static(&[0, 255, 1]);
        let req = build(&ev, &body, &target(), 1).unwrap();
        assert_eq!(req.method(), Method::PATCH);
        assert_eq!(
            req.uri().to_string(),
            "http://127.0.0.1:3000/hook/github?a=1"
        );
        assert_eq!(req.headers()[CONTENT_LENGTH], "3");
        ev.method = "BAD METHOD".into();
        assert!(
            build(&ev, &body, &target(), 1)
                .unwrap_err()
                .contains("not a valid HTTP method")
        );
    }
}

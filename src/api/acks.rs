//! Delivery results: what subscribers acked (`{"type":"ack","seq":N,"status":S}`),
//! as a light endpoint the inspector polls and as the `delivery` field the
//! history API adds to acked events.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::history::{authorize_token, json};
use crate::error::AppError;
use crate::event::rfc3339_ms;
use crate::state::AppState;
use crate::store::Ack;

/// The widest seq range one request may ask for.
pub const MAX_SPAN: u64 = 1000;

/// Query parameters of `GET /api/channels/{channel}/acks`.
#[derive(Debug, Deserialize)]
pub struct AcksParams {
    /// The subscribe token (or send `Authorization: Bearer`).
    pub token: Option<String>,
    /// First seq of the range (default 1).
    pub from: Option<String>,
    /// Last seq of the range (default `from + 999`).
    pub to: Option<String>,
}

/// `GET /api/channels/{channel}/acks?from=A&to=B`: `{"acks": [{"seq", "status",
/// "acked_at"}]}` for the acked seqs in `A..=B` (at most 1000 seqs wide), in
/// seq order. `status` is `null` when the subscriber acked without one.
pub async fn acks(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(params): Query<AcksParams>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize_token(&state, &channel, &headers, params.token.as_deref()).await?;
    let seq = |name: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| AppError::BadRequest(format!("{name} must be a seq number, got '{v}'")))
    };
    let from = params.from.as_deref().map_or(Ok(1), |v| seq("from", v))?;
    let to = match params.to.as_deref() {
        Some(v) => seq("to", v)?,
        None => from.saturating_add(MAX_SPAN - 1),
    };
    if to < from || to - from >= MAX_SPAN {
        return Err(AppError::BadRequest(format!(
            "from..=to must be a range of 1 to {MAX_SPAN} seqs, got {from}..={to}"
        )));
    }
    let found = state.store.acks(&channel, from, to).await?;
    let mut out = String::with_capacity(16 + found.len() * 64);
    out.push_str("{\"acks\":[");
    for (i, ack) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"seq\":{},", ack.seq);
        push_result(&mut out, ack);
        out.push('}');
    }
    out.push_str("]}");
    Ok(json(out))
}

/// Appends an event frame to `out`, with `"delivery": {"status", "acked_at"}`
/// spliced in when it was acked. Frames are JSON objects, so they end in `}`.
pub fn push_with_delivery(out: &mut String, frame: &str, ack: Option<&Ack>) {
    match (ack, frame.strip_suffix('}')) {
        (Some(ack), Some(open)) => {
            out.push_str(open);
            out.push_str(",\"delivery\":{");
            push_result(out, ack);
            out.push_str("}}");
        }
        _ => out.push_str(frame),
    }
}

/// `"status":S,"acked_at":"…"` (S is `null` when the ack had none).
fn push_result(out: &mut String, ack: &Ack) {
    out.push_str("\"status\":");
    match ack.status {
        Some(s) => {
            let _ = write!(out, "{s}");
        }
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"acked_at\":\"{}\"", rfc3339_ms(ack.acked_at_ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_is_spliced_into_the_object() {
        let ack = Ack {
            seq: 3,
            status: Some(200),
            acked_at_ms: 0,
        };
        let mut out = String::new();
        push_with_delivery(&mut out, r#"{"type":"event","seq":3}"#, Some(&ack));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["delivery"]["status"], 200);
        assert_eq!(v["delivery"]["acked_at"], "1970-01-01T00:00:00.000Z");
        let mut plain = String::new();
        push_with_delivery(&mut plain, r#"{"seq":4}"#, None);
        assert_eq!(plain, r#"{"seq":4}"#);
    }
}

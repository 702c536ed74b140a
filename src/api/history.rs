//! The history API: a channel's retained events for tools and the inspector,
//! as the same event objects a WebSocket subscriber receives.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::acks::push_with_delivery;
use crate::auth::presented_token;
use crate::error::AppError;
use crate::state::AppState;

/// Events per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// Query parameters of the history endpoints.
#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    /// The subscribe token (or send `Authorization: Bearer`).
    pub token: Option<String>,
    /// Only events with `seq > since` (default 0: from the oldest retained).
    pub since: Option<String>,
    /// At most this many events (default 100, at most 1000).
    pub limit: Option<String>,
}

/// `GET /api/channels/{channel}/events?since=N&limit=M`:
/// `{"events": [...], "head": H, "next_since": S}`. Pass `next_since` as the
/// next `since`: it is the last event's seq when the page is full, else the
/// head (everything up to it was returned or is gone). An event a subscriber
/// acked also carries `"delivery": {"status", "acked_at"}`.
pub async fn events(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(params): Query<HistoryParams>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize_token(&state, &channel, &headers, params.token.as_deref()).await?;
    let since = match params.since.as_deref() {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            AppError::BadRequest(format!("since must be a seq number (0 or more), got '{s}'"))
        })?,
    };
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "limit must be a number from 1 to {MAX_LIMIT}, got '{s}'; page with next_since"
                ))
            })?,
    };
    let page = state.store.read_since(&channel, since, limit).await?;
    let next_since = match page.events.last() {
        Some(last) if page.more => last.seq,
        _ => page.head,
    };
    let acked = match (page.events.first(), page.events.last()) {
        (Some(first), Some(last)) => state.store.acks(&channel, first.seq, last.seq).await?,
        _ => Vec::new(),
    };
    // The stored frames are already the JSON to send: splice, don't re-encode.
    let mut out = String::with_capacity(
        page.events.iter().map(|e| e.frame.len() + 1).sum::<usize>() + acked.len() * 64 + 64,
    );
    out.push_str("{\"events\":[");
    let mut acked = acked.iter().peekable();
    for (i, event) in page.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        while acked.next_if(|a| a.seq < event.seq).is_some() {}
        let ack = acked.next_if(|a| a.seq == event.seq);
        push_with_delivery(&mut out, &event.frame, ack);
    }
    let _ = write!(
        out,
        "],\"head\":{},\"next_since\":{next_since}}}",
        page.head
    );
    Ok(json(out))
}

/// `GET /api/channels/{channel}/events/{seq}`: one event, or `404 event_not_found`
/// (also when retention dropped it).
pub async fn event(
    State(state): State<AppState>,
    Path((channel, seq)): Path<(String, String)>,
    Query(params): Query<HistoryParams>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize_token(&state, &channel, &headers, params.token.as_deref()).await?;
    let seq = seq
        .parse::<u64>()
        .map_err(|_| AppError::BadRequest(format!("seq must be a number, got '{seq}'")))?;
    if seq == 0 {
        return Err(AppError::EventNotFound);
    }
    let page = state.store.read_since(&channel, seq - 1, 1).await?;
    match page.events.into_iter().next() {
        Some(found) if found.seq == seq => {
            let ack = state.store.acks(&channel, seq, seq).await?;
            let mut out = String::with_capacity(found.frame.len() + 64);
            push_with_delivery(&mut out, &found.frame, ack.first());
            Ok(json(out))
        }
        _ => Err(AppError::EventNotFound),
    }
}

/// `404` for an unknown channel, `401` unless the request holds its token
/// (`Authorization: Bearer`, else `query_token`).
pub(super) async fn authorize_token(
    state: &AppState,
    channel: &str,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(), AppError> {
    let token = presented_token(headers, query_token);
    state.authorize(channel, token.as_deref()).await
}

pub(super) fn json(body: String) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

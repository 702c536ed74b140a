//! Redelivery: a stored event published again, as a new event, to the
//! channel's subscribers (the inspector's "Redeliver" button).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::history::{HistoryParams, authorize_token};
use crate::auth::new_event_id;
use crate::error::AppError;
use crate::event::{Incoming, NewEvent, now_ms};
use crate::protocol::{Event, Receipt, ServerFrame};
use crate::state::AppState;

/// The header a redelivered event carries: the seq it is a copy of.
pub const REDELIVERY_OF: &str = "x-hookpipe-redelivery-of";

/// `POST /api/channels/{channel}/events/{seq}/redeliver`: commits a copy of
/// event `seq` (same method, path, query, headers and body bytes, plus
/// `x-hookpipe-redelivery-of: <seq>`) as a new event; `202 {"seq", "id"}`.
pub async fn redeliver(
    State(state): State<AppState>,
    Path((channel, seq)): Path<(String, String)>,
    Query(params): Query<HistoryParams>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Receipt>), AppError> {
    authorize_token(&state, &channel, &headers, params.token.as_deref()).await?;
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or(AppError::EventNotFound)?;
    let page = state.store.read_since(&channel, seq - 1, 1).await?;
    let stored = match page.events.into_iter().next() {
        Some(found) if found.seq == seq => found,
        _ => return Err(AppError::EventNotFound),
    };
    let original = match serde_json::from_str::<ServerFrame>(&stored.frame) {
        Ok(ServerFrame::Event(e)) => e,
        Ok(_) | Err(_) => {
            tracing::error!(%channel, seq, "stored frame is not an event");
            return Err(AppError::Store(crate::store::StoreError::Database(
                format!("event {seq} of {channel} is not readable"),
            )));
        }
    };
    let copy = copy_of(&original, channel, seq)?;
    match state.committer.commit(copy).await {
        Some(Ok(receipt)) => {
            tracing::info!(seq, new_seq = receipt.seq, "event redelivered");
            Ok((StatusCode::ACCEPTED, Json(receipt)))
        }
        Some(Err(e)) => Err(AppError::Store(e)),
        None => Err(AppError::ShuttingDown),
    }
}

/// A new event with everything of `original` but its seq, id and time.
fn copy_of(original: &Event, channel: String, seq: u64) -> Result<NewEvent, AppError> {
    let body = original
        .body_bytes()
        .map_err(|e| AppError::Store(crate::store::StoreError::Database(e.to_string())))?;
    let mut headers = HeaderMap::with_capacity(original.headers.len() + 1);
    for (name, value) in &original.headers {
        // Stored headers came from a valid request; should one no longer
        // parse (a U+FFFD replacement), keep the rest rather than fail.
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => tracing::warn!(%name, seq, "header not redelivered: not valid in HTTP"),
        }
    }
    headers.insert(
        HeaderName::from_static(REDELIVERY_OF),
        HeaderValue::from(seq),
    );
    let incoming = Incoming {
        method: &original.method,
        path: &original.path,
        query: &original.query,
        headers: &headers,
        body: &body,
    };
    Ok(NewEvent::new(channel, new_event_id(), now_ms(), incoming))
}

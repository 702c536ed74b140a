//! Subscriber transports. `GET /{channel}` picks one from the request:
//! a WebSocket upgrade, or Server-Sent Events (default format smee.io's);
//! a browser asking for HTML gets the inspector page instead.

pub mod smee;
pub mod sse;
pub mod ws;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::presented_token;
use crate::error::AppError;
use crate::hub::feed::Feed;
use crate::state::AppState;

/// Query parameters of a subscribe request.
#[derive(Debug, Deserialize)]
pub struct SubscribeParams {
    /// The subscribe token (or send `Authorization: Bearer`).
    pub token: Option<String>,
    /// Replay retained events with `seq > since` first.
    pub since: Option<String>,
    /// SSE only: `smee` (default) or `hookpipe`.
    pub format: Option<String>,
}

impl SubscribeParams {
    /// `since` as a number, or a `400` that says what is wrong.
    pub fn since(&self) -> Result<Option<u64>, AppError> {
        self.since
            .as_deref()
            .map(|s| {
                s.parse::<u64>().map_err(|_| {
                    AppError::BadRequest(format!(
                        "since must be a seq number (0 or more), got '{s}'"
                    ))
                })
            })
            .transpose()
    }
}

/// `GET /{channel}`: pick the transport, authorize, join the hub, hand over.
pub async fn subscribe(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(params): Query<SubscribeParams>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let token = presented_token(&headers, params.token.as_deref());
    if let Ok(ws) = ws {
        state.authorize(&channel, token.as_deref()).await?;
        let since = params.since()?;
        let feed = open_feed(&state, &channel, since).await?;
        return Ok(ws::upgrade(ws, state, channel, feed));
    }
    if accepts(&headers, "text/event-stream") {
        return sse::subscribe(state, channel, token, &params, &headers).await;
    }
    if accepts(&headers, "text/html") {
        // A browser: the inspector page, which asks for the token itself.
        return Ok(crate::ui::channel_page(&state, &channel).await);
    }
    state.authorize(&channel, token.as_deref()).await?;
    params.since()?;
    Err(AppError::BadRequest(
        "subscribe with a WebSocket upgrade (hookpipe-client, websocat) or with \
         'Accept: text/event-stream' (EventSource, smee-client, curl -N); publish with POST"
            .into(),
    ))
}

/// Whether the `Accept` header lists `media_type` (parameters and q ignored).
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|mt| mt.trim().eq_ignore_ascii_case(media_type))
        })
}

/// Joins the channel's live ring first, then positions the feed in the store.
pub async fn open_feed(
    state: &AppState,
    channel: &str,
    since: Option<u64>,
) -> Result<Feed, AppError> {
    let max = state.config.max_subscribers;
    let sub = state
        .hub
        .subscribe(channel, max)
        .ok_or(AppError::TooManySubscribers(max))?;
    Feed::start(state.store.clone(), channel, sub, since)
        .await
        .map_err(|e| match e {
            crate::hub::feed::FeedError::Store(s) => AppError::Store(s),
            crate::hub::feed::FeedError::Closed => AppError::ShuttingDown,
        })
}

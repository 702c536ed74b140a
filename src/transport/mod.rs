//! Subscriber transports. `GET /{channel}` picks one from the request.

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

/// `GET /{channel}`: authorize, join the hub, then hand over to a transport.
pub async fn subscribe(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(params): Query<SubscribeParams>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    state
        .authorize(
            &channel,
            presented_token(&headers, params.token.as_deref()).as_deref(),
        )
        .await?;
    let since = params.since()?;
    let ws = ws.map_err(|_| {
        AppError::BadRequest("subscribe with a WebSocket upgrade (e.g. hookpipe-client, websocat); publish with POST".into())
    })?;
    let feed = open_feed(&state, &channel, since).await?;
    Ok(ws::upgrade(ws, state, channel, feed))
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

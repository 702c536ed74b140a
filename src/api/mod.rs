//! Management endpoints: channel creation, event history, delivery results,
//! redelivery and health.

pub mod acks;
pub mod history;
pub mod redeliver;

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::{hash_token, new_channel_id, new_token};
use crate::error::AppError;
use crate::event::now_ms;
use crate::protocol::NewChannel;
use crate::state::AppState;

/// `POST /new`: a fresh channel and its subscribe token (shown only here).
pub async fn create_channel(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<NewChannel>), AppError> {
    let created = create(&state, &state.public_url).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET|HEAD /new`, the way smee.io creates channels: `307` to the fresh
/// channel's subscribe URL, token included (`?token=`), so smee-client and
/// browsers can follow it. The body is the same JSON as `POST /new`.
pub async fn new_redirect(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = request_base(&state, &headers);
    let created = match create(&state, &base).await {
        Ok(created) => created,
        Err(e) => return e.into_response(),
    };
    let location = format!("{}?token={}", created.webhook_url, created.token);
    let location = HeaderValue::try_from(location).expect("base, id and token are URL-safe");
    (
        StatusCode::TEMPORARY_REDIRECT,
        [
            (LOCATION, location),
            // Every request makes a channel, and the answer holds its secret.
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(created),
    )
        .into_response()
}

async fn create(state: &AppState, base: &str) -> Result<NewChannel, AppError> {
    let (id, token) = (new_channel_id(), new_token());
    let hash = hash_token(&token);
    state.store.create_channel(&id, &hash, now_ms()).await?;
    state.remember_channel(&id, hash);
    tracing::info!(channel = %id, "channel created");
    Ok(NewChannel {
        webhook_url: format!("{base}/{id}"),
        channel: id,
        token,
    })
}

/// The base URL the requester reached the relay by: `--public-url` when set,
/// else `X-Forwarded-Proto`/`X-Forwarded-Host` (behind a proxy), else `Host`.
/// Spoofed forwarded headers only mislead the one who sends them.
fn request_base(state: &AppState, headers: &HeaderMap) -> String {
    if state.config.public_url.is_some() {
        return state.public_url.to_string();
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = first("x-forwarded-host")
        .filter(|h| is_host(h))
        .or_else(|| first(HOST.as_str()).filter(|h| is_host(h)));
    let Some(host) = host else {
        return state.public_url.to_string();
    };
    let scheme = match first("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// A host name, IPv4 or `[IPv6]` address, with an optional port: nothing
/// that could change the meaning of the URL built from it.
fn is_host(s: &str) -> bool {
    s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// `GET /healthz`.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

//! Management endpoints: channel creation and health.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
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
    let (id, token) = (new_channel_id(), new_token());
    let hash = hash_token(&token);
    state.store.create_channel(&id, &hash, now_ms()).await?;
    state.remember_channel(&id, hash);
    tracing::info!(channel = %id, "channel created");
    let webhook_url = format!("{}/{}", state.public_url, id);
    Ok((
        StatusCode::CREATED,
        Json(NewChannel {
            channel: id,
            webhook_url,
            token,
        }),
    ))
}

/// `GET /healthz`.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

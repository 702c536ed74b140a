//! The HTTP handler that turns any request on a channel URL into an event.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::auth::new_event_id;
use crate::error::AppError;
use crate::event::{Incoming, NewEvent, now_ms};
use crate::protocol::Receipt;
use crate::state::AppState;

/// `POST|PUT|PATCH|DELETE /{channel}` and any method on `/{channel}/{*rest}`:
/// answers `202 {"seq","id"}` only once the event is durably committed.
pub async fn ingest(
    State(state): State<AppState>,
    req: Request,
) -> Result<(StatusCode, Json<Receipt>), AppError> {
    let received_at_ms = now_ms();
    let (parts, body) = req.into_parts();
    let (channel, path) = split_channel_path(parts.uri.path());
    state.channel_token_hash(channel).await?;

    let limit = state.config.max_body;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::BodyTooLarge { limit });
    }
    let body = read_body(body, limit).await?;

    let incoming = Incoming {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let event = NewEvent::new(channel.to_owned(), new_event_id(), received_at_ms, incoming);
    match state.committer.commit(event).await {
        Some(Ok(receipt)) => Ok((StatusCode::ACCEPTED, Json(receipt))),
        Some(Err(e)) => Err(AppError::Store(e)),
        None => Err(AppError::ShuttingDown),
    }
}

/// `/abc/github/x` → (`abc`, `/github/x`); `/abc` → (`abc`, ``). Raw, not decoded.
pub fn split_channel_path(raw: &str) -> (&str, &str) {
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    }
}

async fn read_body(body: Body, limit: u64) -> Result<bytes::Bytes, AppError> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit_usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(AppError::BodyTooLarge { limit })
        }
        Err(e) => Err(AppError::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::split_channel_path;

    #[test]
    fn splits_raw_paths() {
        assert_eq!(split_channel_path("/abc"), ("abc", ""));
        assert_eq!(split_channel_path("/abc/"), ("abc", "/"));
        assert_eq!(split_channel_path("/abc/gh/x%20y"), ("abc", "/gh/x%20y"));
    }
}

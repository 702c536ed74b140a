//! The relay's error type and its one HTTP shape: `{"error": "...", "code": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::protocol::ErrorBody;
use crate::store::StoreError;

/// Everything a request can fail with. Internals are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The channel in the URL does not exist.
    #[error("no channel with this id; create one with POST /new")]
    ChannelNotFound,
    /// The subscribe token is missing or does not match.
    #[error("missing or invalid token; send it as 'Authorization: Bearer TOKEN' or '?token=TOKEN'")]
    Unauthorized,
    /// The request body is larger than `--max-body`.
    #[error("request body is larger than the relay's limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// No retained event with this seq in the channel.
    #[error("no event with this seq in the channel (never sent, or dropped by retention)")]
    EventNotFound,
    /// Something in the request is malformed; the message says what.
    #[error("{0}")]
    BadRequest(String),
    /// The method is not used on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The channel already has `--max-subscribers` live subscribers.
    #[error("this channel already has the maximum of {0} subscribers")]
    TooManySubscribers(usize),
    /// The relay is stopping and takes no new work.
    #[error("the relay is shutting down; retry shortly")]
    ShuttingDown,
    /// The store failed; details are in the relay's log.
    #[error("the relay could not access its store; see the relay's log")]
    Store(#[from] StoreError),
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::ChannelNotFound => (StatusCode::NOT_FOUND, "channel_not_found"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            AppError::EventNotFound => (StatusCode::NOT_FOUND, "event_not_found"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::TooManySubscribers(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_subscribers")
            }
            AppError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            AppError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Store(inner) = &self {
            tracing::error!(error = %inner, "store failure");
        }
        let body = ErrorBody {
            error: self.to_string(),
            code: code.to_owned(),
        };
        (status, Json(body)).into_response()
    }
}

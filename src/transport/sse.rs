//! The Server-Sent Events subscriber session: for browsers, `curl -N` and
//! smee-client.
//!
//! A tracked task (like the WebSocket session) turns the feed into SSE text
//! and hands it to the response body through a small bounded queue, so a
//! client that stops reading is noticed and closed, and shutdown ends every
//! stream. Once the `200` is out, nothing can change the status: a fault
//! ends the stream, and the client reconnects with `Last-Event-ID`.

use std::fmt::Write as _;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;

use super::smee::to_smee;
use super::{SubscribeParams, open_feed};
use crate::error::AppError;
use crate::hub::feed::{Feed, FeedError, Item};
use crate::protocol::ServerFrame;
use crate::state::AppState;

/// Sent as `retry:`: how long an EventSource waits before reconnecting
/// (its default is 3 s).
pub const RETRY: Duration = Duration::from_secs(1);
/// `retry:` when the channel is full: no point hammering it.
pub const BUSY_RETRY: Duration = Duration::from_secs(10);
/// How long one chunk may wait for a client that reads nothing before it
/// counts as stalled (as for WebSocket subscribers).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Chunks queued between the session and the connection.
const QUEUE: usize = 4;
/// A burst stops growing at this size, which bounds a stalled client's memory.
const CHUNK_BYTES: usize = 256 * 1024;

/// What each webhook's `data:` line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// smee.io's object: headers, `body`, `query`, `timestamp` (the default).
    Smee,
    /// The WebSocket event frame, exact bytes included (`?format=hookpipe`).
    Hookpipe,
}

impl Format {
    /// Parses `?format=`; absent means smee.
    pub fn parse(s: Option<&str>) -> Result<Format, String> {
        match s {
            None | Some("smee") => Ok(Format::Smee),
            Some("hookpipe") => Ok(Format::Hookpipe),
            Some(other) => Err(format!(
                "format must be 'smee' (default) or 'hookpipe', got '{other}'"
            )),
        }
    }
}

/// `GET /{channel}` with `Accept: text/event-stream`. A wrong channel, token
/// or parameter is a JSON error as everywhere; a transient fault is a `200`
/// stream that ends at once (see [`closing`]).
pub async fn subscribe(
    state: AppState,
    channel: String,
    token: Option<String>,
    params: &SubscribeParams,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    match state.authorize(&channel, token.as_deref()).await {
        Err(e) if is_transient(&e) => return Ok(fault(&channel, &e)),
        other => other?,
    }
    let format = Format::parse(params.format.as_deref()).map_err(AppError::BadRequest)?;
    let since = match last_event_id(headers, &channel) {
        Some(seq) => {
            tracing::info!(%channel, after = seq, "SSE subscriber resuming from Last-Event-ID");
            Some(seq)
        }
        None => params.since()?,
    };
    match open_feed(&state, &channel, since).await {
        Ok(feed) => Ok(stream(state, channel, feed, format)),
        Err(e) if is_transient(&e) => Ok(fault(&channel, &e)),
        Err(e) => Err(e),
    }
}

/// Faults that may be gone by the next reconnect.
fn is_transient(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Store(_) | AppError::ShuttingDown | AppError::TooManySubscribers(_)
    )
}

fn fault(channel: &str, e: &AppError) -> Response {
    let retry = match e {
        AppError::TooManySubscribers(_) => BUSY_RETRY,
        _ => RETRY,
    };
    match e {
        AppError::Store(inner) => {
            tracing::error!(%channel, error = %inner, "store failure; ending SSE stream")
        }
        _ => tracing::info!(%channel, error = %e, "SSE subscriber turned away; it will retry"),
    }
    closing(&e.to_string(), retry)
}

/// The seq an EventSource last saw. One that is not a seq cannot be resumed
/// from; a 400 would make the EventSource give up, so it counts as absent.
fn last_event_id(headers: &HeaderMap, channel: &str) -> Option<u64> {
    let raw = headers.get("last-event-id")?;
    let text = raw.to_str().unwrap_or_default().trim();
    if text.is_empty() {
        return None;
    }
    let seq = text.parse().ok();
    if seq.is_none() {
        tracing::warn!(%channel, last_event_id = ?raw, "ignoring a Last-Event-ID that is not a seq");
    }
    seq
}

/// Starts the session and answers with its stream.
pub fn stream(state: AppState, channel: String, feed: Feed, format: Format) -> Response {
    let (tx, rx) = mpsc::channel(QUEUE);
    let abort = CancellationToken::new();
    // A fresh queue has room: the client sees `ready` before anything else.
    let hello = format!("retry: {}\nevent: ready\ndata: {{}}\n\n", RETRY.as_millis());
    let _ = tx.try_send(Bytes::from(hello));
    tracing::debug!(%channel, ?format, "SSE subscriber joined");
    state.tracker.spawn(session(
        state.clone(),
        channel,
        feed,
        format,
        tx,
        abort.clone(),
    ));
    response(body(rx, abort))
}

/// A `200` stream that only says why it ends, for transient faults before
/// the session could start: an EventSource gives up for good on any other
/// status, but reconnects after `retry` when a stream ends.
pub fn closing(why: &str, retry: Duration) -> Response {
    let text = format!(": {why}\nretry: {}\n\n", retry.as_millis());
    response(Body::from(text))
}

fn response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Proxies such as nginx would otherwise hold events back.
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The response body: queued chunks until the session ends; on `abort` the
/// connection is cut instead (the client stopped reading).
fn body(rx: mpsc::Receiver<Bytes>, abort: CancellationToken) -> Body {
    let chunks = futures::stream::unfold((rx, abort), |(mut rx, abort)| async move {
        if abort.is_cancelled() {
            return Some((
                Err(std::io::Error::other("subscriber stalled")),
                (rx, abort),
            ));
        }
        // The common case, a queued chunk, touches no token.
        if let Ok(c) = rx.try_recv() {
            return Some((Ok::<_, std::io::Error>(c), (rx, abort)));
        }
        tokio::select! {
            biased;
            _ = abort.cancelled() => Some((Err(std::io::Error::other("subscriber stalled")), (rx, abort))),
            chunk = rx.recv() => chunk.map(|c| (Ok::<_, std::io::Error>(c), (rx, abort))),
        }
    });
    Body::from_stream(chunks)
}

async fn session(
    state: AppState,
    channel: String,
    mut feed: Feed,
    format: Format,
    tx: mpsc::Sender<Bytes>,
    abort: CancellationToken,
) {
    let ping_every = state.config.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    // After a slow send, one ping is enough, not a burst of the missed ones.
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Registered once: a fresh `cancelled()` per loop would lock the shared
    // token on every event for every subscriber.
    let shutdown = state.shutdown.clone().cancelled_owned();
    tokio::pin!(shutdown);
    loop {
        let chunk = tokio::select! {
            _ = &mut shutdown => {
                let _ = tx.try_send(Bytes::from_static(b": relay shutting down; reconnect with Last-Event-ID\n\n"));
                break;
            }
            _ = tx.closed() => break, // the client went away
            item = feed.next() => match item {
                Ok(first) => burst(&mut feed, first, format, &channel),
                Err(FeedError::Store(e)) => {
                    tracing::error!(%channel, error = %e, "SSE subscriber feed failed; ending the stream");
                    break;
                }
                Err(FeedError::Closed) => break,
            },
            _ = ping.tick() => Bytes::from_static(b"event: ping\ndata: {}\n\n"),
        };
        match timeout(SEND_TIMEOUT, tx.send(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::warn!(%channel, cursor = feed.cursor(), "closing stalled SSE subscriber");
                abort.cancel();
                break;
            }
        }
    }
    tracing::debug!(%channel, cursor = feed.cursor(), "SSE subscriber left");
}

/// `first` and whatever else is ready, as one chunk.
fn burst(feed: &mut Feed, first: Item, format: Format, channel: &str) -> Bytes {
    let mut out = String::new();
    write_item(&mut out, first, format, channel);
    while out.len() < CHUNK_BYTES {
        match feed.ready() {
            Ok(Some(item)) => write_item(&mut out, item, format, channel),
            _ => break, // an error resurfaces on the next `next()`
        }
    }
    Bytes::from(out)
}

/// Appends one SSE event. Every `data:` is compact JSON, so one line. Control
/// frames carry the seq they move the stream to as `id:`, so a reconnect
/// does not repeat them.
fn write_item(out: &mut String, item: Item, format: Format, channel: &str) {
    match item {
        Item::Event(frame) => match format {
            Format::Hookpipe => {
                let _ = write!(out, "id: {}\ndata: {}\n\n", frame.seq, frame.json.as_str());
            }
            Format::Smee => match serde_json::from_str::<ServerFrame>(frame.json.as_str()) {
                Ok(ServerFrame::Event(event)) => {
                    let _ = write!(out, "id: {}\ndata: {}\n\n", frame.seq, to_smee(&event));
                }
                other => {
                    let why = match other {
                        Ok(_) => "not an event frame".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    tracing::error!(%channel, seq = frame.seq, error = %why, "stored event is unreadable; sent as an error event");
                    let data = serde_json::json!({"seq": frame.seq, "error": "the relay could not read this stored event"});
                    let _ = write!(out, "id: {}\nevent: error\ndata: {data}\n\n", frame.seq);
                }
            },
        },
        Item::Gap(gap) => {
            if format == Format::Smee {
                tracing::info!(%channel, from = gap.from, to = gap.to, "smee subscriber missed events trimmed by retention");
            }
            let id = gap.to;
            write_control(out, "gap", id, &ServerFrame::Gap(gap));
        }
        Item::Reset { head } => {
            if format == Format::Smee {
                tracing::info!(%channel, head, "smee subscriber resumed beyond the channel's head; continuing after it");
            }
            write_control(out, "reset", head, &ServerFrame::Reset { head });
        }
    }
}

fn write_control(out: &mut String, name: &str, id: u64, frame: &ServerFrame) {
    let json = serde_json::to_string(frame).expect("control frames serialise");
    let _ = write!(out, "id: {id}\nevent: {name}\ndata: {json}\n\n");
}

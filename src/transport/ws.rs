//! The WebSocket subscriber session: feed frames out, acks and pongs in.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout};

use crate::hub::feed::{Feed, FeedError, Item};
use crate::protocol::{ClientFrame, ServerFrame};
use crate::state::AppState;

/// Largest message a subscriber may send (acks are tiny).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// How long one burst may take to reach a subscriber before it counts as stalled.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames written before one flush.
const BURST: usize = 128;

/// Close codes (RFC 6455 §7.4.1).
const GOING_AWAY: u16 = 1001;
const POLICY: u16 = 1008;
const INTERNAL: u16 = 1011;

/// Completes the upgrade and runs the session as a tracked, cancellable task.
pub fn upgrade(ws: WebSocketUpgrade, state: AppState, channel: String, feed: Feed) -> Response {
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        // Small buffers keep idle subscribers cheap; bursts still coalesce.
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| {
            let tracker = state.tracker.clone();
            tracker.track_future(session(socket, state, channel, feed))
        })
}

async fn session(socket: WebSocket, state: AppState, channel: String, mut feed: Feed) {
    let (mut tx, mut rx) = socket.split();
    let ping_every = state.config.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let mut warned_malformed = false;
    // Registered once: a fresh `cancelled()` per loop would lock the shared
    // token on every event for every subscriber.
    let shutdown = state.shutdown.clone().cancelled_owned();
    tokio::pin!(shutdown);

    let close = loop {
        tokio::select! {
            _ = &mut shutdown => break Some((GOING_AWAY, "relay shutting down; reconnect with since=<last seq>")),
            item = feed.next() => {
                let first = match item {
                    Ok(item) => item,
                    Err(FeedError::Store(e)) => {
                        tracing::error!(%channel, error = %e, "subscriber feed failed");
                        break Some((INTERNAL, "relay store unavailable; reconnect with since=<last seq>"));
                    }
                    Err(FeedError::Closed) => break Some((GOING_AWAY, "channel closed")),
                };
                match timeout(SEND_TIMEOUT, send_burst(&mut tx, &mut feed, first)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None, // the peer went away
                    Err(_) => {
                        tracing::warn!(%channel, cursor = feed.cursor(), "closing stalled subscriber");
                        break Some((POLICY, "subscriber too slow: nothing could be written for 30s; reconnect with since=<last seq>"));
                    }
                }
            }
            msg = rx.next() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => handle_text(&state, &channel, &text, &mut warned_malformed).await,
                    Some(Ok(Message::Binary(_))) => tracing::debug!(%channel, "ignoring binary frame from subscriber"),
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(_)) => {} // ping/pong: liveness only
                    Some(Err(e)) => {
                        tracing::debug!(%channel, error = %e, "subscriber connection error");
                        break None;
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 {
                    tracing::info!(%channel, "dropping subscriber that stopped answering pings");
                    break Some((GOING_AWAY, "no pong received; reconnect"));
                }
                if timeout(SEND_TIMEOUT, tx.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = timeout(Duration::from_secs(2), tx.send(Message::Close(Some(frame)))).await;
    }
}

/// Writes `first` and whatever else is ready, then flushes once.
async fn send_burst(
    tx: &mut (impl SinkExt<Message, Error = axum::Error> + Unpin),
    feed: &mut Feed,
    first: Item,
) -> Result<(), axum::Error> {
    tx.feed(to_message(first)).await?;
    for _ in 1..BURST {
        match feed.ready() {
            Ok(Some(item)) => tx.feed(to_message(item)).await?,
            _ => break, // an error resurfaces on the next `next()`
        }
    }
    tx.flush().await
}

fn to_message(item: Item) -> Message {
    match item {
        Item::Event(frame) => Message::Text(frame.json),
        Item::Gap(gap) => control(ServerFrame::Gap(gap)),
        Item::Reset { head } => control(ServerFrame::Reset { head }),
    }
}

fn control(frame: ServerFrame) -> Message {
    Message::Text(
        serde_json::to_string(&frame)
            .expect("control frames serialise")
            .into(),
    )
}

async fn handle_text(state: &AppState, channel: &str, text: &str, warned: &mut bool) {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Ack { seq, status }) => {
            if let Err(e) = state.store.record_ack(channel, seq, status).await {
                tracing::warn!(%channel, seq, error = %e, "could not record ack");
            }
        }
        Err(e) if !*warned => {
            *warned = true;
            tracing::warn!(%channel, error = %e, "ignoring malformed frame from subscriber (further ones logged at debug)");
        }
        Err(e) => tracing::debug!(%channel, error = %e, "ignoring malformed frame from subscriber"),
    }
}

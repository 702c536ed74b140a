//! The WebSocket to the relay: subscribe with `since`, hand frames to the
//! pipeline, send acks, heartbeat, and reconnect with jittered backoff after
//! any disconnect. Only a rejected token (401), an unknown channel (404) or a
//! URL that is not a relay channel stops it; everything else is retried.

use futures_util::{SinkExt, StreamExt};
use http::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use hookpipe::protocol::{ClientFrame, ErrorBody, ServerFrame};

use crate::backoff::{
    self, DEAD_AFTER, HANDSHAKE_TIMEOUT, PING_EVERY, RECONNECT_CAP, STABLE_AFTER, WRITE_TIMEOUT,
};
use crate::cli::{RelayUrl, Secret};
use crate::error::Fatal;
use crate::output::human_duration;
use crate::queue::{self, Full, Incoming, Offer};

/// `since` asked for on a first start: beyond any seq, so the relay answers
/// `reset{head}` with its newest seq and then streams what follows it. That
/// is "only new events", with the start position known and saved.
pub const FROM_HEAD: u64 = i64::MAX as u64;

/// Largest event frame accepted; the relay's default body limit is 25 MiB,
/// which base64 and JSON grow to about 34 MiB.
const MAX_FRAME: usize = 64 * 1024 * 1024;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How one connection ended.
enum End {
    /// Reconnect after a backoff delay.
    Lost(String),
    /// The pipeline's queue is full: reconnect once it has room for this item.
    Paused(Full, u64),
    /// Shutdown finished: the last acks were sent and the socket closed.
    Finished,
}

enum ConnectError {
    Fatal(Fatal),
    Transient(String),
}

/// One channel subscription that survives disconnects.
pub struct Relay {
    url: RelayUrl,
    token: Secret,
    /// The highest seq handed to the pipeline (or skipped by the relay).
    position: Option<u64>,
}

impl Relay {
    /// A subscription that resumes after `position` (`None`: the relay's head).
    pub fn new(url: RelayUrl, token: Secret, position: Option<u64>) -> Relay {
        Relay {
            url,
            token,
            position,
        }
    }

    /// Connects and reconnects until shutdown or a fatal answer.
    pub async fn run(
        mut self,
        events: queue::Sender,
        mut acks: mpsc::UnboundedReceiver<ClientFrame>,
        shutdown: CancellationToken,
    ) -> Result<(), Fatal> {
        let mut delays = backoff::reconnect();
        let mut connected_before = false;
        let mut paused = false;
        loop {
            let since = self.position.unwrap_or(FROM_HEAD);
            let connected = tokio::select! {
                r = self.connect(since) => r,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let problem = match connected {
                Err(ConnectError::Fatal(f)) => return Err(f),
                Err(ConnectError::Transient(e)) => {
                    format!("cannot reach the relay at {}: {e}", self.url.base)
                }
                Ok(ws) => {
                    let verb = if connected_before {
                        "reconnected to"
                    } else {
                        "connected to"
                    };
                    match self.position {
                        Some(p) if paused => {
                            tracing::debug!("resumed {} after seq {p}", self.url.ws)
                        }
                        Some(p) => {
                            tracing::info!("{verb} {} (resuming after seq {p})", self.url.ws)
                        }
                        None => tracing::info!("{verb} {} (waiting for new events)", self.url.ws),
                    }
                    connected_before = true;
                    paused = false;
                    let began = Instant::now();
                    let end = self.session(ws, &events, &mut acks, &shutdown).await;
                    if began.elapsed() >= STABLE_AFTER {
                        delays = backoff::reconnect();
                    }
                    match end {
                        End::Finished => return Ok(()),
                        End::Paused(full, position) => {
                            // Flow control, not a failure: the relay keeps the events.
                            tracing::debug!("paused the relay stream until the target catches up");
                            let queued = tokio::select! {
                                q = events.send_when_room(full) => q,
                                _ = shutdown.cancelled() => return Ok(()),
                            };
                            if queued.is_err() {
                                return Ok(());
                            }
                            self.position = Some(position);
                            delays = backoff::reconnect();
                            paused = true;
                            continue;
                        }
                        End::Lost(reason) => format!("disconnected from the relay: {reason}"),
                    }
                }
            };
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let delay = delays.next().unwrap_or(RECONNECT_CAP);
            tracing::warn!("{problem}; reconnecting in {}", human_duration(delay));
            tokio::select! {
                _ = sleep(delay) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn connect(&self, since: u64) -> Result<Ws, ConnectError> {
        let req = subscribe_request(&self.url, &self.token, since)
            .map_err(|e| ConnectError::Fatal(Fatal::Usage(e)))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let handshake = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
        match timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Err(_) => Err(ConnectError::Transient(format!(
                "no WebSocket handshake within {}",
                human_duration(HANDSHAKE_TIMEOUT)
            ))),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tungstenite::Error::Http(resp))) => Err(self.refused(&resp)),
            Ok(Err(e)) => Err(ConnectError::Transient(describe(&e))),
        }
    }

    fn refused(&self, resp: &http::Response<Option<Vec<u8>>>) -> ConnectError {
        let status = resp.status();
        let said = resp
            .body()
            .as_deref()
            .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
            .map(|e| e.error)
            .unwrap_or_else(|| status.to_string());
        let channel = self.url.channel.clone();
        match status.as_u16() {
            401 | 403 => ConnectError::Fatal(Fatal::TokenRejected { channel }),
            404 => ConnectError::Fatal(Fatal::ChannelNotFound {
                relay: self.url.base.clone(),
                channel,
            }),
            300..=399 => {
                let to = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("elsewhere");
                ConnectError::Fatal(Fatal::Usage(format!(
                    "the relay URL redirects to {to}; put that URL in --url / HOOKPIPE_URL"
                )))
            }
            400..=499 | 200..=299 => ConnectError::Fatal(Fatal::Usage(format!(
                "{} did not accept the subscription ({status}: {said}); check that --url is a hookpipe channel URL",
                self.url.ws
            ))),
            _ => ConnectError::Transient(format!("the relay answered {status}: {said}")),
        }
    }

    async fn session(
        &mut self,
        ws: Ws,
        events: &queue::Sender,
        acks: &mut mpsc::UnboundedReceiver<ClientFrame>,
        shutdown: &CancellationToken,
    ) -> End {
        let (mut tx, mut rx) = ws.split();
        let mut ping = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut last_heard = Instant::now();
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping => stopping = true,
                ack = acks.recv() => {
                    let Some(ack) = ack else {
                        // The pipeline finished after shutdown: say goodbye properly.
                        close(&mut tx, &mut rx, "client stopping").await;
                        return End::Finished;
                    };
                    let text = serde_json::to_string(&ack).expect("an ack serialises");
                    if let Err(e) = write(&mut tx, Message::Text(text.into())).await {
                        return End::Lost(e);
                    }
                }
                msg = rx.next() => {
                    last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) if !stopping => {
                            if let Some(end) = self.on_text(&text, events) {
                                close(&mut tx, &mut rx, "client paused while its target catches up").await;
                                return end;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => return End::Lost(describe_close(frame)),
                        Some(Ok(_)) => {} // pings are answered by tungstenite; new events wait for the next start
                        Some(Err(e)) => return End::Lost(describe(&e)),
                        None => return End::Lost("the connection closed".into()),
                    }
                }
                _ = ping.tick() => {
                    if let Err(e) = write(&mut tx, Message::Ping(Default::default())).await {
                        return End::Lost(e);
                    }
                }
                _ = sleep_until(last_heard + DEAD_AFTER) => {
                    return End::Lost(format!("nothing heard from the relay for {} (dead connection)", human_duration(DEAD_AFTER)));
                }
            }
        }
    }

    /// Hands one frame to the pipeline; `Some` ends the session.
    fn on_text(&mut self, text: &str, events: &queue::Sender) -> Option<End> {
        let frame: ServerFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "ignoring a frame this client does not understand ({e}); is the client older than the relay?"
                );
                return None;
            }
        };
        let (queued, position) = match frame {
            ServerFrame::Event(ev) => {
                if self.position.is_some_and(|p| ev.seq <= p) {
                    return None;
                }
                let seq = ev.seq;
                (events.try_event(ev, text.len()), seq)
            }
            ServerFrame::Gap(gap) => {
                let to = self.position.map_or(gap.to, |p| p.max(gap.to));
                (events.try_send(Incoming::Gap(gap)), to)
            }
            ServerFrame::Reset { head } if self.position.is_none() => {
                (events.try_send(Incoming::Start { head }), head)
            }
            ServerFrame::Reset { head } => (events.try_send(Incoming::Reset { head }), head),
        };
        match queued {
            Offer::Queued => {
                self.position = Some(position);
                None
            }
            Offer::Full(full) => Some(End::Paused(full, position)),
            Offer::Closed => None, // the pipeline is stopping
        }
    }
}

/// The subscribe request: `ws(s)://…/CHANNEL?since=N` with the token as a
/// bearer header, so it never appears in URLs or logs.
pub fn subscribe_request(
    url: &RelayUrl,
    token: &Secret,
    since: u64,
) -> Result<http::Request<()>, String> {
    let mut req = format!("{}?since={since}", url.ws)
        .into_client_request()
        .map_err(|e| format!("--url cannot be used for a WebSocket ({e})"))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| "--token is not a valid token".to_owned())?;
    req.headers_mut().insert(AUTHORIZATION, bearer);
    req.headers_mut().insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("hookpipe-client/", env!("CARGO_PKG_VERSION"))),
    );
    Ok(req)
}

async fn write(
    tx: &mut (impl SinkExt<Message, Error = tungstenite::Error> + Unpin),
    msg: Message,
) -> Result<(), String> {
    match timeout(WRITE_TIMEOUT, tx.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!(
            "a write to the relay took over {}",
            human_duration(WRITE_TIMEOUT)
        )),
    }
}

/// Sends a normal close and waits briefly for the relay's reply.
async fn close(
    tx: &mut (impl SinkExt<Message, Error = tungstenite::Error> + Unpin),
    rx: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
    reason: &'static str,
) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: reason.into(),
    };
    tracing::debug!("closing the relay connection");
    if write(tx, Message::Close(Some(frame))).await.is_ok() {
        let _ = timeout(WRITE_TIMEOUT / 5, async {
            while let Some(Ok(_)) = rx.next().await {}
        })
        .await;
    }
    tracing::debug!("closed the relay connection");
}

fn describe_close(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => format!(
            "the relay closed the connection ({}: {})",
            u16::from(f.code),
            f.reason
        ),
        Some(f) => format!("the relay closed the connection ({})", u16::from(f.code)),
        None => "the relay closed the connection".into(),
    }
}

fn describe(e: &tungstenite::Error) -> String {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the connection dropped without a close (relay stopped or network lost)".into()
        }
        tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        tungstenite::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_request_carries_since_and_a_bearer_token() {
        let url = RelayUrl::parse("https://relay.example.com/ch1").unwrap();
        let token = Secret::parse("tok_123").unwrap();
        let req = subscribe_request(&url, &token, 42).unwrap();
        assert_eq!(
            req.uri().to_string(),
            "wss://relay.example.com/ch1?since=42"
        );
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok_123");
        assert!(
            !req.uri().to_string().contains("tok_123"),
            "the token never goes in the URL"
        );
        let first = subscribe_request(
            &RelayUrl::parse("http://127.0.0.1:8080/c").unwrap(),
            &token,
            FROM_HEAD,
        )
        .unwrap();
        assert_eq!(
            first.uri().to_string(),
            "ws://127.0.0.1:8080/c?since=9223372036854775807"
        );
    }

    #[test]
    fn close_frames_are_described() {
        let f = CloseFrame {
            code: CloseCode::Away,
            reason: "relay shutting down".into(),
        };
        assert_eq!(
            describe_close(Some(f)),
            "the relay closed the connection (1001: relay shutting down)"
        );
        assert_eq!(describe_close(None), "the relay closed the connection");
    }
}

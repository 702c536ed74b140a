//! Delivers one event to the local server: attempts, retries with backoff,
//! and the final outcome.
//!
//! A refused connection, a timeout and a 5xx are retried (the local server may
//! be restarting); any other status is the server's answer and final. When the
//! retry budget runs out the event has *failed*: the caller logs it loudly,
//! acks it and moves on, since holding the stream forever is worse.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use hookpipe::protocol::Event;

use crate::backoff;
use crate::request;
use crate::target::Target;

/// Most of a response body read (and thrown away) so the connection can be reused.
const MAX_DRAIN: usize = 1024 * 1024;

/// How one event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target answered with a final status (2xx, 3xx or 4xx).
    Answered {
        /// The status.
        status: u16,
    },
    /// Every attempt failed; `status` is the last 5xx, if any.
    Failed {
        /// The last status the target answered, if it answered at all.
        status: Option<u16>,
        /// The last attempt's problem.
        error: String,
    },
    /// Shutdown came before a final outcome: not acked, delivered again next start.
    Interrupted,
}

/// The result of delivering one event.
#[derive(Debug, Clone)]
pub struct Report {
    /// The event's seq.
    pub seq: u64,
    /// The event's id.
    pub id: String,
    /// The event's method.
    pub method: String,
    /// The event's sub-path and query, as shown to the user.
    pub path: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts made.
    pub attempts: u32,
    /// Duration of the last attempt.
    pub elapsed: Duration,
}

enum Attempt {
    Final(u16),
    Retry { status: Option<u16>, error: String },
}

/// Sends events to one target.
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    target: Target,
    timeout: Duration,
    max_retries: usize,
}

impl Forwarder {
    /// A forwarder with its own connection pool.
    pub fn new(target: Target, timeout: Duration, max_retries: usize) -> Forwarder {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Forwarder {
            client,
            target,
            timeout,
            max_retries,
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Warns when the target does not accept connections at start; events
    /// are retried until it does.
    pub async fn probe_target(&self) {
        let addr = (self.target.host.as_str(), self.target.port);
        match timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let why = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    "connection refused".to_owned()
                } else {
                    e.to_string()
                };
                tracing::warn!(
                    "the target {} is not reachable yet ({why}); events will be retried until it is",
                    self.target.origin()
                );
            }
            Err(_) => tracing::warn!(
                "the target {} did not accept a connection within 3s; events will be retried",
                self.target.origin()
            ),
        }
    }

    /// Delivers `event`, retrying per the policy, until a final outcome or
    /// until `stop` is cancelled between attempts.
    pub async fn deliver(&self, event: Event, stop: &CancellationToken) -> Report {
        let mut report = Report {
            seq: event.seq,
            id: event.id.clone(),
            method: event.method.clone(),
            path: display_path(&event),
            outcome: Outcome::Interrupted,
            attempts: 0,
            elapsed: Duration::ZERO,
        };
        let body = match event.body_bytes() {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                report.outcome = Outcome::Failed {
                    status: None,
                    error: e.to_string(),
                };
                return report;
            }
        };
        let mut delays = backoff::delivery(self.max_retries);
        loop {
            report.attempts += 1;
            let req = match request::build(&event, &body, &self.target, report.attempts) {
                Ok(r) => r,
                Err(error) => {
                    report.outcome = Outcome::Failed {
                        status: None,
                        error,
                    };
                    return report;
                }
            };
            let started = Instant::now();
            let attempt = self.attempt(req).await;
            report.elapsed = started.elapsed();
            let (status, error) = match attempt {
                Attempt::Final(status) => {
                    report.outcome = Outcome::Answered { status };
                    return report;
                }
                Attempt::Retry { status, error } => (status, error),
            };
            let Some(delay) = delays.next() else {
                report.outcome = Outcome::Failed { status, error };
                return report;
            };
            tracing::warn!(
                "seq {}: {} {} → {error}; retry {} of {} in {}",
                event.seq,
                event.method,
                report.path,
                report.attempts,
                self.max_retries,
                crate::output::human_duration(delay)
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => {
                    report.outcome = Outcome::Interrupted;
                    return report;
                }
            }
        }
    }

    async fn attempt(&self, req: http::Request<Full<Bytes>>) -> Attempt {
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            // Read the answer so the connection can be reused; its content is not ours.
            let _ = Limited::new(resp.into_body(), MAX_DRAIN).collect().await;
            Ok::<StatusCode, hyper_util::client::legacy::Error>(status)
        };
        match timeout(self.timeout, exchange).await {
            Err(_) => Attempt::Retry {
                status: None,
                error: format!(
                    "no answer within {}",
                    crate::output::human_duration(self.timeout)
                ),
            },
            Ok(Err(e)) => Attempt::Retry {
                status: None,
                error: describe(&e, &self.target),
            },
            Ok(Ok(s)) if s.is_server_error() => Attempt::Retry {
                status: Some(s.as_u16()),
                error: s.to_string(),
            },
            Ok(Ok(s)) => Attempt::Final(s.as_u16()),
        }
    }
}

/// `/github?a=1`, or `/` for the channel URL itself.
pub fn display_path(event: &Event) -> String {
    let path = if event.path.is_empty() {
        "/"
    } else {
        &event.path
    };
    if event.query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", event.query)
    }
}

/// The most specific cause in an error chain, e.g. "connection refused".
fn describe(e: &hyper_util::client::legacy::Error, target: &Target) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::ConnectionRefused {
            return format!(
                "connection refused by {} (is the local server running?)",
                target.origin()
            );
        }
        return io.to_string();
    }
    if e.is_connect() {
        format!("cannot connect to {}: {source}", target.origin())
    } else {
        source.to_string()
    }
}

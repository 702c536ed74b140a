//! A publisher: one keep-alive connection, one request in flight, optionally paced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Barrier;
use tokio::time::{Instant, MissedTickBehavior};

use super::Live;
use super::marker::{self, Clock, Plan, Stamp};
use super::target::{Endpoint, Http1};

/// What one publisher needs to know.
pub struct Job {
    /// This publisher's index.
    pub id: u32,
    /// The server under test.
    pub endpoint: Arc<Endpoint>,
    /// Publish path per channel.
    pub paths: Arc<Vec<String>>,
    /// The message plan.
    pub plan: Plan,
    /// Run id written into every marker.
    pub run: u32,
    /// Body size.
    pub payload: usize,
    /// Pause between publishes, when paced.
    pub interval: Option<Duration>,
    /// Publish until then instead of counting.
    pub duration: Option<Duration>,
    /// The run's clock.
    pub clock: Clock,
}

/// What one publisher did in the measured phase.
#[derive(Debug, Default)]
pub struct Stats {
    /// Measured publishes the server acknowledged (2xx).
    pub acked: u64,
    /// Publishes that failed, by status code or `conn_error` (warmup included).
    pub rejections: BTreeMap<String, u64>,
    /// When its last measured publish was answered, in µs on the run clock.
    pub finished_us: u64,
}

enum Outcome {
    Acked,
    Rejected(u16),
    ConnError,
}

/// Publishes the warmup, waits at `start` for every other publisher, then the measured messages.
pub async fn run(job: Job, live: Arc<Live>, start: Arc<Barrier>) -> Stats {
    let mut conn = Http1::connect(&job.endpoint.authority).await.ok();
    let mut body = marker::body_template(job.payload);
    let mut stats = Stats::default();
    let warmup = job.plan.warmup_of(job.id);
    for n in 0..warmup {
        publish(&job, &mut conn, &mut body, n, &live, &mut stats).await;
    }
    start.wait().await;

    let begin = Instant::now();
    let deadline = job.duration.map(|d| begin + d);
    let mut ticker = job.interval.map(|every| {
        // Stagger publishers over one interval so a paced rate is steady, not bursts.
        let offset = every.mul_f64(f64::from(job.id) / f64::from(job.plan.publishers));
        let mut t = tokio::time::interval_at(begin + offset, every);
        // Delay, not Burst: after a stall the rate resumes instead of catching up,
        // so latency at a steady rate is measured at that rate.
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    let end = job.plan.messages_of(job.id).map(|m| warmup + m);
    let mut n = warmup;
    while end.is_none_or(|end| n < end) {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if publish(&job, &mut conn, &mut body, n, &live, &mut stats).await {
            stats.acked += 1;
            live.published.fetch_add(1, Relaxed);
        }
        n += 1;
    }
    stats.finished_us = job.clock.now_us();
    stats
}

/// Publishes message `n`; true if the server acknowledged it.
async fn publish(
    job: &Job,
    conn: &mut Option<Http1>,
    body: &mut [u8],
    n: u64,
    live: &Live,
    stats: &mut Stats,
) -> bool {
    let channel = job.plan.channel_of(job.id, n);
    let stamp = Stamp {
        publisher: job.id,
        n,
        sent_us: job.clock.now_us(),
    };
    marker::write(body, job.run, stamp);
    let body = Bytes::copy_from_slice(body);
    match send(job, conn, &job.paths[channel], body).await {
        Outcome::Acked => {
            live.acked[channel].fetch_add(1, Relaxed);
            true
        }
        Outcome::Rejected(status) => {
            live.rejected.fetch_add(1, Relaxed);
            *stats.rejections.entry(status.to_string()).or_default() += 1;
            false
        }
        Outcome::ConnError => {
            live.rejected.fetch_add(1, Relaxed);
            *stats.rejections.entry("conn_error".into()).or_default() += 1;
            false
        }
    }
}

async fn send(job: &Job, conn: &mut Option<Http1>, path: &str, body: Bytes) -> Outcome {
    // A connection the server closed (keep-alive timeout, `Connection: close`)
    // is replaced once; nothing was sent on it, so retrying cannot duplicate.
    for _ in 0..2 {
        if conn.as_ref().is_none_or(Http1::is_closed) {
            *conn = Http1::connect(&job.endpoint.authority).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            return Outcome::ConnError;
        };
        if c.ready().await.is_err() {
            *conn = None;
            continue;
        }
        let req = job.endpoint.request("POST", path, body);
        return match c.send(req).await {
            Ok((status, _)) if (200..300).contains(&status) => Outcome::Acked,
            Ok((status, _)) => Outcome::Rejected(status),
            Err(_) => {
                *conn = None;
                Outcome::ConnError
            }
        };
    }
    Outcome::ConnError
}

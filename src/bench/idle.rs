//! `--idle-subscribers N`: how fast subscribers connect and what each idle one costs the server.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::args::{BenchArgs, Transport};
use super::report::{ConfigEcho, IdleReport};
use super::subscribe::{Ws, connect_ws};
use super::target::{Channel, Endpoint};

/// Handshakes in flight at once: enough to measure the server, not a SYN flood.
const CONNECT_CONCURRENCY: usize = 64;
/// Read buffer of an idle subscriber: it receives nothing but pings.
const IDLE_READ_BUFFER: usize = 4 * 1024;
/// Longest wait for the server's RSS to settle after the last connect.
const RSS_SETTLE: Duration = Duration::from_secs(2);

/// Connects `n` subscribers round-robin over `channels`, holds them, reports.
pub async fn run(
    args: &BenchArgs,
    endpoint: &Endpoint,
    channels: &[Channel],
    n: usize,
) -> anyhow::Result<IdleReport> {
    let pids = &args.server_pid;
    let rss_before = if pids.is_empty() {
        None
    } else {
        Some(total_rss(pids)?)
    };
    let started = Instant::now();
    let results: Vec<anyhow::Result<Ws>> = futures::stream::iter(0..n)
        .map(|i| {
            let ch = &channels[i % channels.len()];
            let url = endpoint.subscribe_url(ch, Transport::Ws);
            async move { connect_ws(&url, ch.token.as_deref(), IDLE_READ_BUFFER).await }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connect_secs = started.elapsed().as_secs_f64();

    let stop = CancellationToken::new();
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    let mut holders = Vec::with_capacity(n);
    for r in results {
        match r {
            Ok(ws) => holders.push(tokio::spawn(hold(ws, stop.clone()))),
            Err(e) => *failed.entry(e.to_string()).or_default() += 1,
        }
    }
    let connected = holders.len();
    let rss_after = if pids.is_empty() {
        None
    } else {
        Some(settled_rss(pids).await?)
    };
    if let Some(hold_for) = args.duration {
        tokio::time::sleep(hold_for).await;
    }
    stop.cancel();
    let mut still_connected = 0;
    for h in holders {
        still_connected += usize::from(h.await.unwrap_or(false));
    }

    let per_subscriber_bytes = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => Some((a as i64 - b as i64) / connected as i64),
        _ => None,
    };
    Ok(IdleReport {
        requested: n,
        connected,
        failed,
        connect_secs,
        connects_per_sec: connected as f64 / connect_secs.max(1e-9),
        still_connected,
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        per_subscriber_bytes,
        config: ConfigEcho::new(args, &endpoint.url),
    })
}

/// Keeps a subscriber open (answering pings) until `stop`; true if it lasted.
async fn hold(mut ws: Ws, stop: CancellationToken) -> bool {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return true;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The server's RSS once two readings 100 ms apart agree (at most [`RSS_SETTLE`]).
async fn settled_rss(pids: &[u32]) -> anyhow::Result<u64> {
    let deadline = Instant::now() + RSS_SETTLE;
    let mut last = total_rss(pids)?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = total_rss(pids)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

/// Summed `VmRSS` of `pids`.
fn total_rss(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| rss_bytes(p)).sum()
}

/// `VmRSS` of process `pid` in bytes, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {path} (is --server-pid {pid} running?): {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow::anyhow!("{path} has no VmRSS line"))
}

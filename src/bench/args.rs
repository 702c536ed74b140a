//! The `hookpipe bench` flags; each also reads a `HOOKPIPE_BENCH_*` variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use serde::Serialize;

use super::marker::MARKER_LEN;
use crate::config::{parse_duration, parse_size};

/// Which server is under test, i.e. which publish/subscribe contract to speak.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// hookpipe: `POST /new`, `POST /{channel}`, WebSocket or SSE on `/{channel}` with a bearer token.
    Hookpipe,
    /// nginx + nchan: `POST /pub?id={channel}`, WebSocket on `/sub?id={channel}`.
    Nchan,
}

/// How subscribers receive events.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket.
    Ws,
    /// Server-sent events (hookpipe only).
    Sse,
}

/// Everything `hookpipe bench` needs.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("relay").required(true).args(["url", "embedded"])))]
pub struct BenchArgs {
    /// Base URL of a running relay, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "HOOKPIPE_BENCH_URL")]
    pub url: Option<String>,

    /// Start a relay in this process on a temporary data dir instead of --url.
    #[arg(long)]
    pub embedded: bool,

    /// Which server speaks at --url.
    #[arg(long, env = "HOOKPIPE_BENCH_TARGET", value_enum, default_value_t = Target::Hookpipe)]
    pub target: Target,

    /// Publisher connections (one keep-alive HTTP/1.1 connection each, one request in flight).
    #[arg(long, env = "HOOKPIPE_BENCH_PUBLISHERS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=999_999))]
    pub publishers: u32,

    /// Subscribers per channel.
    #[arg(long, env = "HOOKPIPE_BENCH_SUBSCRIBERS", default_value_t = 1)]
    pub subscribers: usize,

    /// Channels; publishers spread their messages over them round-robin.
    #[arg(long, env = "HOOKPIPE_BENCH_CHANNELS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub channels: u64,

    /// Body size of each message in bytes (at least the 48-byte marker); 1KiB etc. work too.
    #[arg(long, env = "HOOKPIPE_BENCH_PAYLOAD", default_value = "256", value_parser = parse_payload)]
    pub payload: usize,

    /// Measured messages to publish in total (ignored when --duration is given).
    #[arg(long, env = "HOOKPIPE_BENCH_MESSAGES", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub messages: u64,

    /// Publish for this long instead of a message count, e.g. 30s; with
    /// --idle-subscribers: how long to hold them after they are connected.
    #[arg(long, env = "HOOKPIPE_BENCH_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Target publish rate in messages per second over all publishers (0: as fast as possible).
    #[arg(long, env = "HOOKPIPE_BENCH_RATE", default_value_t = 0)]
    pub rate: u64,

    /// How subscribers receive (sse needs --target hookpipe).
    #[arg(long, env = "HOOKPIPE_BENCH_TRANSPORT", value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,

    /// Print one JSON object instead of the table (and no progress bar).
    #[arg(long)]
    pub json: bool,

    /// Also draw the latency distribution into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Instead of a load run: connect N idle WebSocket subscribers spread over
    /// --channels, hold them, report the connect rate (and memory with --server-pid).
    #[arg(long, value_name = "N", env = "HOOKPIPE_BENCH_IDLE_SUBSCRIBERS")]
    pub idle_subscribers: Option<usize>,

    /// With --idle-subscribers: the relay's process id, to report its RSS before
    /// and after; several (`--server-pid 1,2`) are summed, e.g. nginx's workers.
    #[arg(
        long,
        value_name = "PID",
        value_delimiter = ',',
        requires = "idle_subscribers"
    )]
    pub server_pid: Vec<u32>,

    /// Messages published (and delivered) before the measured ones, not counted in
    /// rates or latencies.
    #[arg(long, env = "HOOKPIPE_BENCH_WARMUP", default_value_t = 0)]
    pub warmup: u64,

    /// Longest wait for outstanding deliveries once publishing has ended.
    #[arg(long, env = "HOOKPIPE_BENCH_SETTLE", default_value = "5s", value_parser = parse_duration)]
    pub settle: Duration,

    /// Exit with status 1 if any message was lost or delivered twice.
    #[arg(long)]
    pub fail_on_loss: bool,
}

impl BenchArgs {
    /// Checks the combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.transport == Transport::Sse && self.target != Target::Hookpipe {
            return Err(
                "--transport sse needs --target hookpipe (nchan is measured over ws)".into(),
            );
        }
        if self.transport == Transport::Sse && self.idle_subscribers.is_some() {
            return Err(
                "--idle-subscribers connects WebSocket subscribers; drop --transport sse".into(),
            );
        }
        Ok(())
    }

    /// The time between two publishes of one publisher when --rate paces them.
    pub fn per_publisher_interval(&self) -> Option<Duration> {
        (self.rate > 0)
            .then(|| Duration::from_secs_f64(f64::from(self.publishers) / self.rate as f64))
    }
}

fn parse_payload(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    if n < MARKER_LEN as u64 {
        return Err(format!(
            "payload must be at least {MARKER_LEN} bytes (the marker each message carries)"
        ));
    }
    usize::try_from(n).map_err(|_| format!("payload {n} is too large"))
}

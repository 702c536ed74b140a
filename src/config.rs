//! Command line and environment configuration of `hookpipe serve`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The `hookpipe` command line.
#[derive(Parser, Debug)]
#[command(
    name = "hookpipe",
    version,
    about = "A webhook relay: providers POST to a channel URL, subscribers receive every event over WebSocket"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `hookpipe`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the relay server.
    Serve(Config),
    /// Measure a relay (or nginx+nchan) under load: throughput, latency, loss.
    Bench(crate::bench::BenchArgs),
}

/// How hard SQLite works to keep a committed event across failures.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync the write-ahead log on every group commit: survives power loss.
    Full,
    /// fsync only at checkpoints: survives a crash of the process (`kill -9`),
    /// may lose the last commits on power loss or a kernel crash.
    Normal,
}

/// Everything `hookpipe serve` needs; each flag also reads a `HOOKPIPE_*` variable.
#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "HOOKPIPE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Directory for the embedded SQLite store; created if missing.
    #[arg(long, env = "HOOKPIPE_DATA_DIR", default_value = "./hookpipe-data")]
    pub data_dir: PathBuf,

    /// Base URL used in the URLs the relay returns [default: http://<listen>].
    #[arg(long, env = "HOOKPIPE_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Largest accepted request body: plain bytes or a size like 25MiB, 512KB.
    #[arg(long, env = "HOOKPIPE_MAX_BODY", default_value = "25MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Events kept per channel (the newest ones).
    #[arg(long, env = "HOOKPIPE_RETAIN_EVENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retain_events: u64,

    /// Longest time an event is kept, e.g. 24h, 90m, 7days.
    #[arg(long, env = "HOOKPIPE_RETAIN_FOR", default_value = "24h", value_parser = parse_duration)]
    pub retain_for: Duration,

    /// Durability of each group commit (see README: Durability).
    #[arg(long, env = "HOOKPIPE_SYNC", value_enum, default_value_t = SyncMode::Normal)]
    pub sync: SyncMode,

    /// How often subscribers are pinged (WebSocket pings, SSE `ping` events);
    /// a WebSocket subscriber silent for two intervals is dropped.
    #[arg(long, env = "HOOKPIPE_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// Most live subscribers one channel accepts.
    #[arg(long, env = "HOOKPIPE_MAX_SUBSCRIBERS", default_value_t = 10_000)]
    pub max_subscribers: usize,

    /// Threads serving connections, each a single-threaded runtime that keeps
    /// the connections dealt to it [default: one per CPU core].
    #[arg(long, env = "HOOKPIPE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// How long shutdown waits for in-flight work before exiting anyway.
    #[arg(long, env = "HOOKPIPE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

impl Config {
    /// A configuration with every default, for embedding and tests.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut cfg = Cli::parse_from(["hookpipe", "serve"]);
        let Command::Serve(ref mut c) = cfg.command else {
            unreachable!("parsed from `hookpipe serve`")
        };
        c.data_dir = data_dir.into();
        c.clone()
    }

    /// `--workers`, or one per CPU core.
    pub fn workers(&self) -> usize {
        match self.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Parses `1048576`, `25MiB`, `512 KB`, `1.5MB` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{s}' is not a size ({e}); use bytes or a unit like 25MiB, 512KB"))
}

/// Parses `24h`, `90s`, `7days`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); use a value like 30s, 90m, 24h, 7days")
    })
}

fn parse_public_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() <= "https://".len() {
        return Err(format!(
            "'{s}' must be an absolute http:// or https:// URL, e.g. https://hooks.example.com"
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("25MiB").unwrap(), 25 * 1024 * 1024);
        assert_eq!(parse_size("1 KiB").unwrap(), 1024);
        assert_eq!(parse_size("2KB").unwrap(), 2000);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations_and_urls() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_public_url("https://x.io/").unwrap(), "https://x.io");
        assert!(parse_public_url("x.io").is_err());
    }

    #[test]
    fn defaults_match_the_readme() {
        let c = Config::with_data_dir("d");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.max_body, 25 * 1024 * 1024);
        assert_eq!(c.retain_events, 1000);
        assert_eq!(c.retain_for, Duration::from_secs(86_400));
        assert_eq!(c.sync, SyncMode::Normal);
    }
}

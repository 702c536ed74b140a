//! The command line: flags, their `HOOKPIPE_*` variables, and validation into
//! a [`Config`] whose errors say what to fix.

// The flags' doc comments are clap's --help text, written for a terminal.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::error::Fatal;
use crate::filter::Filter;
use crate::output::OutputMode;
use crate::state;
use crate::target::Target;

/// The `hookpipe-client` command line.
#[derive(Parser, Debug)]
#[command(
    name = "hookpipe-client",
    version,
    about = "Forwards every event of a hookpipe channel to a local server, byte-exact and in order",
    after_help = "Exit codes: 0 stopped by Ctrl-C/SIGTERM, 2 bad flags or state file, 3 token rejected, 4 unknown channel."
)]
pub struct Cli {
    /// The channel URL on the relay, e.g. https://relay.example.com/CHANNEL
    /// (http→ws, https→wss).
    #[arg(long, env = "HOOKPIPE_URL", value_name = "URL")]
    pub url: String,

    /// The channel's subscribe token from `POST /new` (never printed).
    #[arg(
        long,
        env = "HOOKPIPE_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: String,

    /// The local server, e.g. http://127.0.0.1:3000/hook; each event's sub-path
    /// and query are appended.
    #[arg(long, env = "HOOKPIPE_TARGET", value_name = "URL")]
    pub target: String,

    /// Where the last finished seq is kept
    /// [default: <state dir>/hookpipe/<host_port>-<channel>.json].
    #[arg(long, env = "HOOKPIPE_STATE_FILE", value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// Start after this seq instead of the saved position (0 replays all the
    /// relay retains). Without it and without a state file, only new events.
    #[arg(long, env = "HOOKPIPE_SINCE", value_name = "SEQ")]
    pub since: Option<u64>,

    /// Deliveries in flight at once; 1 keeps strict seq order.
    #[arg(long, env = "HOOKPIPE_CONCURRENCY", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Retries after a refused connection, timeout or 5xx, with backoff growing
    /// to ~30 s: the default 12 keeps trying for about 3½ minutes. 4xx is never retried.
    #[arg(
        long,
        env = "HOOKPIPE_MAX_RETRIES",
        value_name = "N",
        default_value_t = 12
    )]
    pub max_retries: u32,

    /// Time limit of one request to the target, e.g. 30s, 2m.
    #[arg(long, env = "HOOKPIPE_TIMEOUT", value_name = "DURATION", default_value = "30s",
          value_parser = parse_duration)]
    pub timeout: Duration,

    /// Forward only matching events: HEADER=VALUE (name case-insensitive, value
    /// exact), method=POST or path=/github. Repeatable: different names must all
    /// match, the same name repeated matches any of its values.
    #[arg(long = "filter", env = "HOOKPIPE_FILTER", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,

    /// Print one JSON object per delivery on stdout instead of a text line.
    #[arg(long, env = "HOOKPIPE_JSON")]
    pub json: bool,

    /// Print only warnings and errors (--json lines are still printed).
    #[arg(long, short, env = "HOOKPIPE_QUIET")]
    pub quiet: bool,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The relay channel to subscribe to.
    pub relay: RelayUrl,
    /// The subscribe token.
    pub token: Secret,
    /// The local server.
    pub target: Target,
    /// The state file's path.
    pub state_file: PathBuf,
    /// An explicit start position.
    pub since: Option<u64>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Retries per event after the first attempt.
    pub max_retries: usize,
    /// Time limit per request to the target.
    pub timeout: Duration,
    /// Which events to forward.
    pub filter: Filter,
    /// How deliveries are printed.
    pub output: OutputMode,
}

impl Cli {
    /// Validates every flag; the error names the flag and shows a good value.
    pub fn into_config(self) -> Result<Config, Fatal> {
        let relay = RelayUrl::parse(&self.url).map_err(Fatal::Usage)?;
        let token = Secret::parse(&self.token).map_err(Fatal::Usage)?;
        let target = Target::parse(&self.target).map_err(Fatal::Usage)?;
        let filter = Filter::parse(&self.filters).map_err(Fatal::Usage)?;
        if self.timeout.is_zero() {
            return Err(Fatal::Usage(
                "--timeout must be more than 0, e.g. 30s".into(),
            ));
        }
        let state_file = match self.state_file {
            Some(p) => p,
            None => state::default_path(&relay),
        };
        Ok(Config {
            relay,
            token,
            target,
            state_file,
            since: self.since,
            concurrency: usize::from(self.concurrency),
            max_retries: self.max_retries as usize,
            timeout: self.timeout,
            filter,
            output: OutputMode {
                json: self.json,
                quiet: self.quiet,
            },
        })
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Accepts a token that can travel in an `Authorization` header.
    pub fn parse(s: &str) -> Result<Secret, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err(
                "--token is empty; pass the token that POST /new returned (or set HOOKPIPE_TOKEN)"
                    .into(),
            );
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("--token contains spaces or non-ASCII characters; pass the token exactly as POST /new returned it".into());
        }
        Ok(Secret(t.to_owned()))
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}

/// A channel on a relay, as given by `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl {
    /// The relay's base, without the channel, e.g. `https://relay.example.com`.
    pub base: String,
    /// The WebSocket URL of the channel, without query, e.g. `wss://relay.example.com/abc`.
    pub ws: String,
    /// `host:port` with the port made explicit, e.g. `relay.example.com:443`.
    pub host_port: String,
    /// The channel id.
    pub channel: String,
}

const URL_SHAPE: &str = "--url must look like http://relay.example.com/CHANNEL (the webhook_url that POST /new returned)";

impl RelayUrl {
    /// Parses `http(s)://host[:port][/prefix]/CHANNEL` (or `ws(s)://`).
    pub fn parse(s: &str) -> Result<RelayUrl, String> {
        let s = s.trim();
        let uri: http::Uri = s.parse().map_err(|_| format!("{URL_SHAPE}; got '{s}'"))?;
        let (ws_scheme, default_port) = match uri.scheme_str() {
            Some("http") | Some("ws") => ("ws", 80),
            Some("https") | Some("wss") => ("wss", 443),
            _ => {
                return Err(format!(
                    "{URL_SHAPE}; got '{s}' (the scheme must be http or https)"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{URL_SHAPE}; got '{s}'"))?;
        if uri.query().is_some() {
            return Err(format!(
                "{URL_SHAPE}, without a query; pass the token with --token, not in the URL"
            ));
        }
        let path = uri.path().trim_end_matches('/');
        let (prefix, channel) = path.rsplit_once('/').unwrap_or(("", ""));
        let channel_ok = (1..=64).contains(&channel.len())
            && channel
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !channel_ok {
            return Err(format!("{URL_SHAPE}; '{s}' has no channel id at the end"));
        }
        let http_scheme = if ws_scheme == "ws" { "http" } else { "https" };
        Ok(RelayUrl {
            base: format!("{http_scheme}://{authority}{prefix}"),
            ws: format!("{ws_scheme}://{authority}{path}"),
            host_port: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(default_port)
            ),
            channel: channel.to_owned(),
        })
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use a value like 10s, 500ms, 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_map_to_websocket_urls() {
        let r = RelayUrl::parse("http://127.0.0.1:8080/abc_DEF-1").unwrap();
        assert_eq!(r.ws, "ws://127.0.0.1:8080/abc_DEF-1");
        assert_eq!(r.base, "http://127.0.0.1:8080");
        assert_eq!(r.host_port, "127.0.0.1:8080");
        assert_eq!(r.channel, "abc_DEF-1");

        let r = RelayUrl::parse("https://relay.example.com/hooks/ch1/").unwrap();
        assert_eq!(r.ws, "wss://relay.example.com/hooks/ch1");
        assert_eq!(r.base, "https://relay.example.com/hooks");
        assert_eq!(r.host_port, "relay.example.com:443");

        assert_eq!(RelayUrl::parse("ws://h/c").unwrap().ws, "ws://h/c");
    }

    #[test]
    fn bad_relay_urls_say_what_to_fix() {
        for bad in [
            "relay.example.com/abc",
            "ftp://h/abc",
            "http://h",
            "http://h/",
            "http://h/a%20b",
            "http://h/c?token=x",
        ] {
            let e = RelayUrl::parse(bad).unwrap_err();
            assert!(
                e.starts_with("--url must look like http://relay.example.com/CHANNEL"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn tokens_are_masked_and_checked() {
        let t = Secret::parse(" s3cr3t ").unwrap();
        assert_eq!(t.expose(), "s3cr3t");
        assert_eq!(format!("{t:?}"), "MASKED");
        assert!(Secret::parse("").is_err());
        assert!(Secret::parse("a b").is_err());
    }

    #[test]
    fn flags_and_defaults() {
        let cli = Cli::try_parse_from([
            "hookpipe-client",
            "--url",
            "http://127.0.0.1:1/ch",
            "--token",
            "t",
            "--target",
            "http://127.0.0.1:3000/hook",
            "--filter",
            "X-GitHub-Event=push",
            "--filter",
            "method=POST",
            "--state-file",
            "/tmp/s.json",
        ])
        .unwrap();
        let c = cli.into_config().unwrap();
        assert_eq!(c.concurrency, 1);
        assert_eq!(c.max_retries, 12);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.since, None);
        assert_eq!(c.state_file, PathBuf::from("/tmp/s.json"));
        assert!(!c.output.json && !c.output.quiet);
        assert!(!format!("{c:?}").contains("token: \"t\""));
    }

    #[test]
    fn bad_target_is_a_usage_error() {
        let cli = Cli::try_parse_from([
            "c",
            "--url",
            "http://h/ch",
            "--token",
            "t",
            "--target",
            "localhost:3000",
        ])
        .unwrap();
        let e = cli.into_config().unwrap_err();
        assert!(
            matches!(e, Fatal::Usage(ref m) if m.starts_with("--target")),
            "{e}"
        );
        assert_eq!(e.exit_code(), std::process::ExitCode::from(2));
    }
}

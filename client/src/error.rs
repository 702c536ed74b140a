//! Errors that stop the client, each with its exit code and a message that
//! says what to fix.

use std::process::ExitCode;

/// Why the client stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// A flag, variable or local file is wrong; the message says which.
    #[error("{0}")]
    Usage(String),
    /// The relay answered `401` to the subscribe request.
    #[error("the relay rejected the token for channel {channel}; check --token / HOOKPIPE_TOKEN")]
    TokenRejected {
        /// The channel id.
        channel: String,
    },
    /// The relay answered `404` to the subscribe request.
    #[error(
        "the relay at {relay} has no channel {channel}; check --url / HOOKPIPE_URL (create one with POST /new)"
    )]
    ChannelNotFound {
        /// The relay's base URL.
        relay: String,
        /// The channel id.
        channel: String,
    },
}

impl Fatal {
    /// The process exit code: 2 usage, 3 token rejected, 4 unknown channel.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Fatal::Usage(_) => 2,
            Fatal::TokenRejected { .. } => 3,
            Fatal::ChannelNotFound { .. } => 4,
        })
    }
}

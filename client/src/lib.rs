//! hookpipe-client: re-emits every event of a hookpipe channel to a local
//! server, byte-exact, in order, surviving restarts of either side.
//!
//! A tour of the rooms:
//! - [`cli`]: flags, `HOOKPIPE_*` variables and their validation into a [`cli::Config`].
//! - [`relay`]: the WebSocket to the relay: connect, resume with `since`,
//!   heartbeat, reconnect with backoff, send acks.
//! - [`pipeline`]: takes events from the relay in seq order, runs deliveries,
//!   acks final outcomes and advances the [`watermark`] saved in the [`state`] file;
//!   [`queue`] is the bounded hand-off between the two.
//! - [`forward`]: one event to the local target, with retries; [`request`]
//!   builds the exact outgoing request, [`target`] joins its URL.
//! - [`filter`]: `--filter` rules; [`output`]: delivery lines on stdout.
//! - [`backoff`]: every retry policy in one place; [`error`]: fatal errors and exit codes.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod error;
pub mod filter;
pub mod forward;
pub mod output;
pub mod pipeline;
pub mod queue;
pub mod relay;
pub mod request;
pub mod state;
pub mod target;
pub mod watermark;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::Config;
use crate::error::Fatal;
use crate::forward::Forwarder;
use crate::pipeline::Pipeline;
use crate::relay::Relay;
use crate::state::StateFile;

/// Runs the client until `shutdown` is cancelled (returns `Ok`) or a fatal
/// error such as a rejected token (returns it, after in-flight deliveries end).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Fatal> {
    let state = StateFile::new(config.state_file.clone(), &config.relay);
    let saved = state.load()?;
    state.prepare()?;
    let start = config.since.or(saved);

    let forwarder = Arc::new(Forwarder::new(
        config.target.clone(),
        config.timeout,
        config.max_retries,
    ));
    forwarder.probe_target().await;

    let (events_tx, events_rx) = queue::channel(config.concurrency);
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    // The pipeline outlives the relay connection when a fatal error stops it,
    // so it gets its own token: in-flight deliveries still finish cleanly.
    let stop_pipeline = shutdown.child_token();
    let pipeline = Pipeline::new(forwarder, &config, state, start, acks_tx)?;
    let pipeline = tokio::spawn(pipeline.run(events_rx, stop_pipeline.clone()));

    let relay = Relay::new(config.relay.clone(), config.token.clone(), start);
    let outcome = relay.run(events_tx, acks_rx, shutdown).await;
    stop_pipeline.cancel();
    match pipeline.await {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {}
    }
    outcome
}

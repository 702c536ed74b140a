//! Between the relay and the local server: takes events in seq order, runs
//! up to `--concurrency` deliveries, acks each final outcome and saves the
//! contiguous watermark, so a restart resumes without skipping anything.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use hookpipe::protocol::{ClientFrame, Event};

use crate::cli::Config;
use crate::error::Fatal;
use crate::filter::Filter;
use crate::forward::{self, Forwarder, Outcome, Report};
use crate::output::OutputMode;
use crate::queue::Incoming;
use crate::state::StateFile;
use crate::watermark::Watermark;

/// The delivery side of the client.
pub struct Pipeline {
    forwarder: Arc<Forwarder>,
    filter: Filter,
    output: OutputMode,
    state: StateFile,
    concurrency: usize,
    acks: mpsc::UnboundedSender<ClientFrame>,
    /// `None` until the start position is known.
    watermark: Option<Watermark>,
    /// The highest seq taken from the relay.
    received: u64,
    in_flight: JoinSet<Report>,
}

impl Pipeline {
    /// A pipeline starting after `start` (`None`: after the relay's head).
    /// An explicit `--since` is saved at once, so it also fails fast.
    pub fn new(
        forwarder: Arc<Forwarder>,
        config: &Config,
        state: StateFile,
        start: Option<u64>,
        acks: mpsc::UnboundedSender<ClientFrame>,
    ) -> Result<Pipeline, Fatal> {
        if let Some(since) = config.since {
            state.save(since).map_err(|e| {
                Fatal::Usage(format!(
                    "state file {} cannot be written ({e}); pass a writable --state-file",
                    state.path().display()
                ))
            })?;
        }
        Ok(Pipeline {
            forwarder,
            filter: config.filter.clone(),
            output: config.output,
            state,
            concurrency: config.concurrency,
            acks,
            watermark: start.map(Watermark::new),
            received: start.unwrap_or(0),
            in_flight: JoinSet::new(),
        })
    }

    /// Runs until `stop`, then lets in-flight deliveries end (a retry wait
    /// ends at once, a request in progress completes) and saves the position.
    pub async fn run(mut self, mut events: mpsc::Receiver<Incoming>, stop: CancellationToken) {
        loop {
            let room = self.in_flight.len() < self.concurrency;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => self.finish(done).await,
                item = events.recv(), if room => match item {
                    Some(item) => self.take(item, &stop).await,
                    None => break,
                },
            }
        }
        self.drain().await;
        if let Some(w) = &self.watermark {
            tracing::info!(
                "stopped; every event through seq {} is finished",
                w.through()
            );
        }
    }

    async fn take(&mut self, item: Incoming, stop: &CancellationToken) {
        match item {
            Incoming::Start { head } => {
                tracing::info!(
                    "starting after the relay's newest event, seq {head} (older events are not replayed; use --since SEQ for that)"
                );
                self.restart_at(head).await;
            }
            Incoming::Reset { head } => {
                self.drain().await;
                let was = self.watermark.as_ref().map_or(0, Watermark::through);
                tracing::warn!(
                    "THE RELAY'S DATA WAS RESET: it has no events after seq {head}, but this client had finished seq {was}. \
                     Continuing after seq {head}; events the relay lost cannot be delivered."
                );
                self.restart_at(head).await;
            }
            Incoming::Gap(gap) => {
                tracing::warn!(
                    "the relay LOST events {}..={} ({}); they cannot be delivered",
                    gap.from,
                    gap.to,
                    gap.reason
                );
                self.skip(gap.from, gap.to).await;
            }
            Incoming::Event(event, held) => self.start(event, held, stop).await,
        }
    }

    async fn start(&mut self, event: Event, held: OwnedSemaphorePermit, stop: &CancellationToken) {
        let seq = event.seq;
        if self.watermark.is_none() {
            // The relay sent no start position: begin with this event.
            self.watermark = Some(Watermark::new(seq.saturating_sub(1)));
            self.received = seq.saturating_sub(1);
        }
        if seq <= self.received {
            tracing::debug!(seq, "ignoring an event already taken");
            return;
        }
        if seq > self.received + 1 {
            tracing::warn!(
                "the relay skipped events {}..={} without a gap notice; they cannot be delivered",
                self.received + 1,
                seq - 1
            );
            self.skip(self.received + 1, seq - 1).await;
        }
        self.received = seq;
        if !self.filter.matches(&event) {
            tracing::info!(
                "skipped seq {seq} (filter): {} {}",
                event.method,
                forward::display_path(&event)
            );
            self.complete(seq, None).await;
            return;
        }
        let forwarder = self.forwarder.clone();
        let stop = stop.clone();
        self.in_flight.spawn(async move {
            let report = forwarder.deliver(event, &stop).await;
            drop(held); // the event's bytes are free once its delivery ends
            report
        });
    }

    async fn finish(&mut self, done: Result<Report, tokio::task::JoinError>) {
        let report = match done {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return, // aborted: only at drop, after run
        };
        self.output.delivery(&report);
        match &report.outcome {
            Outcome::Answered { status } => self.complete(report.seq, Some(*status)).await,
            Outcome::Failed { status, error } => {
                tracing::error!(
                    "DELIVERY FAILED for seq {} ({} {}, id {}) after {} attempts: {error}. It is acked as failed and will not be retried \
                     (while the relay retains it, --since {} replays from there)",
                    report.seq,
                    report.method,
                    report.path,
                    report.id,
                    report.attempts,
                    report.seq - 1
                );
                self.complete(report.seq, *status).await;
            }
            Outcome::Interrupted => {
                tracing::info!(
                    "seq {} was not delivered before stopping; it will be on the next start",
                    report.seq
                );
            }
        }
    }

    async fn drain(&mut self) {
        while let Some(done) = self.in_flight.join_next().await {
            self.finish(done).await;
        }
    }

    /// A final outcome: ack it, and save if the watermark moved.
    async fn complete(&mut self, seq: u64, status: Option<u16>) {
        let _ = self.acks.send(ClientFrame::Ack { seq, status });
        let moved = self.watermark.as_mut().is_some_and(|w| w.complete(seq));
        if moved {
            self.save().await;
        }
    }

    async fn skip(&mut self, from: u64, to: u64) {
        self.received = self.received.max(to);
        let moved = self
            .watermark
            .as_mut()
            .is_some_and(|w| w.complete_range(from, to));
        if moved {
            self.save().await;
        }
    }

    async fn restart_at(&mut self, head: u64) {
        self.watermark = Some(Watermark::new(head));
        self.received = head;
        self.save().await;
    }

    async fn save(&self) {
        let Some(through) = self.watermark.as_ref().map(Watermark::through) else {
            return;
        };
        let state = self.state.clone();
        let saved = tokio::task::spawn_blocking(move || state.save(through)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(
                "cannot write the state file {} ({e}); a restart may deliver events again",
                self.state.path().display()
            ),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

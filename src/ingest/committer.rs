//! Group commit: one task drains every waiting event into one transaction,
//! publishes the committed frames in seq order, then answers the requests.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::event::NewEvent;
use crate::hub::{Frame, Hub};
use crate::protocol::Receipt;
use crate::store::{Store, StoreError};

/// Requests that may wait for the committer before ingest pushes back.
const QUEUE: usize = 16 * 1024;
/// Most events in one transaction.
const MAX_BATCH_EVENTS: usize = 4096;
/// Most body bytes in one transaction, so large bodies commit in small groups.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<Receipt, StoreError>>,
}

/// The ingest side's handle on the committer. When every handle is dropped
/// the committer finishes what is queued and stops.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Pending>,
}

impl Committer {
    /// Starts the committer task. It runs the store's commit inline: a
    /// batch commit is short (the WAL write lands in the page cache), and
    /// staying on the runtime avoids a cross-thread wake-up per batch.
    pub fn spawn(store: Arc<dyn Store>, hub: Hub) -> (Committer, CommitterHandle) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(rx, store, hub));
        (Committer { tx }, CommitterHandle { task })
    }

    /// Commits one event; resolves once it is durable (or failed).
    /// `None` means the committer has stopped (the relay is shutting down).
    pub async fn commit(&self, event: NewEvent) -> Option<Result<Receipt, StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Pending { event, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Resolves when the committer has drained its queue and stopped.
pub struct CommitterHandle {
    task: tokio::task::JoinHandle<()>,
}

impl CommitterHandle {
    /// Waits for the committer to finish.
    pub async fn finished(self) {
        let _ = self.task.await;
    }
}

async fn run(mut rx: mpsc::Receiver<Pending>, store: Arc<dyn Store>, hub: Hub) {
    let mut batch: Vec<Pending> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.event.encoded_len();
        batch.push(first);
        while batch.len() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.event.encoded_len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let (events, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|p| (p.event, p.reply)).unzip();
        match store.append(events).await {
            Ok(committed) => {
                for (c, reply) in committed.into_iter().zip(replies) {
                    let receipt = Receipt {
                        seq: c.seq,
                        id: c.id,
                    };
                    hub.publish(
                        &c.channel,
                        Frame {
                            seq: c.seq,
                            json: c.frame.into(),
                        },
                    );
                    // The requester may have gone away; the event is stored regardless.
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; answering its requests with 500");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

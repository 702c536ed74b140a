//! The hand-off from the relay connection to the pipeline, bounded twice:
//! by event count (the channel) and by bytes (a semaphore whose permits an
//! event holds until its delivery ends). When either is spent the connection
//! pauses, closing the WebSocket, and resumes with `since` once there is
//! room; the relay keeps the events meanwhile, so memory stays small however
//! far behind the target is.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use hookpipe::protocol::{Event, Gap};

/// Most bytes of event frames held between the relay and the target.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Events buffered for `concurrency` deliveries.
pub fn capacity(concurrency: usize) -> usize {
    (concurrency * 2).max(64)
}

/// What the relay connection hands the pipeline, in the relay's order.
#[derive(Debug)]
pub enum Incoming {
    /// First start without a saved position: the relay's newest seq;
    /// delivery starts after it.
    Start {
        /// The relay's newest seq.
        head: u64,
    },
    /// An event to deliver, with its share of the byte budget.
    Event(Event, OwnedSemaphorePermit),
    /// Events the relay no longer has.
    Gap(Gap),
    /// The relay has nothing after `head` though this client was further on.
    Reset {
        /// The relay's newest seq.
        head: u64,
    },
}

/// The sending side, used by the relay connection.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Incoming>,
    bytes: Arc<Semaphore>,
}

/// A channel for `concurrency` deliveries.
pub fn channel(concurrency: usize) -> (Sender, mpsc::Receiver<Incoming>) {
    let (tx, rx) = mpsc::channel(capacity(concurrency));
    (
        Sender {
            tx,
            bytes: Arc::new(Semaphore::new(MAX_BYTES)),
        },
        rx,
    )
}

/// Why an item could not be queued now.
#[derive(Debug)]
pub enum Full {
    /// Not enough bytes left for this event frame of `len` bytes.
    Bytes(Event, usize),
    /// No slot left.
    Slot(Incoming),
}

/// What became of an item offered without waiting.
#[derive(Debug)]
pub enum Offer {
    /// It is queued.
    Queued,
    /// It does not fit now; pause and queue it with [`Sender::send_when_room`].
    Full(Full),
    /// The pipeline has stopped taking items.
    Closed,
}

/// The pipeline has stopped taking items.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

impl Sender {
    /// Queues an event frame of `len` bytes without waiting.
    pub fn try_event(&self, event: Event, len: usize) -> Offer {
        match self.bytes.clone().try_acquire_many_owned(permits(len)) {
            Ok(held) => self.try_send(Incoming::Event(event, held)),
            Err(tokio::sync::TryAcquireError::Closed) => Offer::Closed,
            Err(tokio::sync::TryAcquireError::NoPermits) => Offer::Full(Full::Bytes(event, len)),
        }
    }

    /// Queues a control item without waiting.
    pub fn try_send(&self, item: Incoming) -> Offer {
        match self.tx.try_send(item) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(item)) => Offer::Full(Full::Slot(item)),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Waits until the item fits and half the slots are free (so a resumed
    /// connection does not pause again at once), then queues it.
    pub async fn send_when_room(&self, full: Full) -> Result<(), Closed> {
        let item = match full {
            Full::Slot(item) => item,
            Full::Bytes(event, len) => {
                let held = self
                    .bytes
                    .clone()
                    .acquire_many_owned(permits(len))
                    .await
                    .map_err(|_| Closed)?;
                Incoming::Event(event, held)
            }
        };
        let room = (self.tx.max_capacity() / 2).max(1);
        let mut slots = self.tx.reserve_many(room).await.map_err(|_| Closed)?;
        slots.next().expect("reserved at least one slot").send(item);
        Ok(())
    }
}

/// An event larger than the whole budget takes all of it.
fn permits(len: usize) -> u32 {
    len.clamp(1, MAX_BYTES) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookpipe::protocol::BodyEncoding;

    fn ev(seq: u64) -> Event {
        Event {
            seq,
            id: String::new(),
            received_at: String::new(),
            method: "POST".into(),
            path: String::new(),
            query: String::new(),
            headers: vec![],
            body: String::new(),
            body_encoding: BodyEncoding::Utf8,
        }
    }

    #[tokio::test]
    async fn bytes_and_slots_bound_the_queue() {
        let (tx, mut rx) = channel(1);
        assert!(matches!(tx.try_event(ev(1), MAX_BYTES - 10), Offer::Queued));
        let Offer::Full(Full::Bytes(e, 20)) = tx.try_event(ev(2), 20) else {
            panic!("expected the byte budget to be spent")
        };
        assert_eq!(e.seq, 2);
        // Delivering the first event frees its bytes.
        let Some(Incoming::Event(_, held)) = rx.recv().await else {
            panic!()
        };
        drop(held);
        tx.send_when_room(Full::Bytes(e, 20)).await.unwrap();
        for _ in 1..capacity(1) {
            assert!(matches!(
                tx.try_send(Incoming::Start { head: 0 }),
                Offer::Queued
            ));
        }
        assert!(matches!(
            tx.try_send(Incoming::Start { head: 0 }),
            Offer::Full(Full::Slot(_))
        ));
        drop(rx);
        assert!(matches!(
            tx.try_send(Incoming::Start { head: 0 }),
            Offer::Closed
        ));
    }

    #[test]
    fn huge_frames_take_the_whole_budget() {
        assert_eq!(permits(0), 1);
        assert_eq!(permits(MAX_BYTES * 3) as usize, MAX_BYTES);
    }
}

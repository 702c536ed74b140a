//! A subscriber's ordered view of one channel: backlog from the store, then
//! live frames from the hub, with no gap and no duplicate between them.
//!
//! The feed subscribes to the hub *before* it reads the store, so every event
//! is in at least one of the two; `cursor` (the last seq handed out) drops the
//! overlap. Whenever the live ring cannot continue exactly at `cursor + 1`
//! (the subscriber lagged, or a frame is missing) the feed goes back to the
//! store, which holds every committed event. The transport only ever sees
//! events in seq order, and an explicit [`Item::Gap`] where retention already
//! dropped events.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{Frame, Subscription};
use crate::protocol::Gap;
use crate::store::{Store, StoreError};

/// Events read from the store per round trip while catching up.
const PAGE: usize = 256;

/// What a subscriber is sent next.
#[derive(Debug, Clone)]
pub enum Item {
    /// An event frame.
    Event(Frame),
    /// Events in this range are gone and will not come.
    Gap(Gap),
    /// The subscriber's `since` is beyond the channel's newest seq.
    Reset {
        /// The channel's newest seq; the feed continues after it.
        head: u64,
    },
}

/// Why a feed ended.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The store failed while catching up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub closed the channel.
    #[error("the channel closed")]
    Closed,
}

/// One subscriber's position in one channel.
pub struct Feed {
    store: Arc<dyn Store>,
    channel: String,
    sub: Subscription,
    cursor: u64,
    catching_up: bool,
    ready: VecDeque<Item>,
}

impl Feed {
    /// Starts after `since`, or at the channel's current head when `None`
    /// (only new events). `sub` must have been taken before this call.
    pub async fn start(
        store: Arc<dyn Store>,
        channel: &str,
        sub: Subscription,
        since: Option<u64>,
    ) -> Result<Feed, FeedError> {
        let head = store.read_since(channel, u64::MAX, 0).await?.head;
        let mut feed = Feed {
            store,
            channel: channel.to_owned(),
            sub,
            cursor: head,
            catching_up: false,
            ready: VecDeque::new(),
        };
        match since {
            Some(n) if n > head => feed.ready.push_back(Item::Reset { head }),
            Some(n) => {
                feed.cursor = n;
                feed.catching_up = true;
            }
            None => {}
        }
        Ok(feed)
    }

    /// The last seq handed out.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The next item, waiting for one if needed. Cancel-safe: state changes
    /// only after an await completes.
    pub async fn next(&mut self) -> Result<Item, FeedError> {
        loop {
            if let Some(item) = self.ready()? {
                return Ok(item);
            }
            if self.catching_up {
                self.load_page().await?;
                continue;
            }
            match self.sub.rx.recv().await {
                Ok(frame) => self.accept_live(frame),
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return Err(FeedError::Closed),
            }
        }
    }

    /// An item that is available without waiting, if any: lets a transport
    /// write a burst and flush once.
    pub fn ready(&mut self) -> Result<Option<Item>, FeedError> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            if self.catching_up {
                return Ok(None);
            }
            match self.sub.rx.try_recv() {
                Ok(frame) => self.accept_live(frame),
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Lagged(_)) => self.catching_up = true,
                Err(TryRecvError::Closed) => return Err(FeedError::Closed),
            }
        }
    }

    fn accept_live(&mut self, frame: Arc<Frame>) {
        if frame.seq <= self.cursor {
            return; // already sent from the store
        }
        if frame.seq == self.cursor + 1 {
            self.cursor = frame.seq;
            self.ready.push_back(Item::Event(Frame::clone(&frame)));
        } else {
            // Something between is missing live; the store has it.
            self.catching_up = true;
        }
    }

    async fn load_page(&mut self) -> Result<(), FeedError> {
        let page = self
            .store
            .read_since(&self.channel, self.cursor, PAGE)
            .await?;
        let full = page.more;
        for ev in page.events {
            if ev.seq > self.cursor + 1 {
                self.ready
                    .push_back(Item::Gap(gap(self.cursor + 1, ev.seq - 1)));
            }
            self.cursor = ev.seq;
            self.ready.push_back(Item::Event(Frame {
                seq: ev.seq,
                json: ev.frame.into(),
            }));
        }
        if !full {
            if page.head > self.cursor {
                self.ready
                    .push_back(Item::Gap(gap(self.cursor + 1, page.head)));
                self.cursor = page.head;
            }
            self.catching_up = false;
        }
        Ok(())
    }
}

fn gap(from: u64, to: u64) -> Gap {
    Gap {
        from,
        to,
        reason: "retention: these events were trimmed before they could be replayed".into(),
    }
}

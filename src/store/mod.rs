//! Durable storage of channels and events behind one trait.
//!
//! Ingest and fan-out only see [`Store`]; `sqlite` is the embedded default,
//! and a clustered backend plugs in beside it without touching either.

mod log_index;
pub mod retention;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;

use crate::event::{Committed, NewEvent};

pub use sqlite::SqliteStore;

/// What a store keeps of each channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many events per channel.
    pub keep_events: u64,
    /// None older than this.
    pub max_age: Duration,
}

/// A channel as stored.
#[derive(Debug, Clone)]
pub struct ChannelRecord {
    /// Channel id.
    pub id: String,
    /// SHA-256 of the subscribe token.
    pub token_hash: Vec<u8>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Newest seq assigned (0 when none yet).
    pub last_seq: u64,
}

/// One stored event frame.
#[derive(Debug, Clone)]
pub struct StoredFrame {
    /// Its seq.
    pub seq: u64,
    /// The encoded `{"type":"event",...}` JSON.
    pub frame: String,
}

/// A page of a channel's retained events after some seq.
#[derive(Debug, Clone)]
pub struct Page {
    /// Events in seq order, at most the requested limit.
    pub events: Vec<StoredFrame>,
    /// The channel's newest seq when the page was read.
    pub head: u64,
    /// More retained events follow this page (read on from the last seq).
    pub more: bool,
}

/// A subscriber's acknowledgement of one event, as stored (the latest wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The acknowledged seq.
    pub seq: u64,
    /// The HTTP status the subscriber's local target answered, if it said.
    pub status: Option<u16>,
    /// When the ack was recorded, ms since the epoch.
    pub acked_at_ms: i64,
}

/// Why the store failed. Cloneable so one failed group commit can answer
/// every request in the group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store's files could not be opened or created.
    #[error("cannot open the store at {path}: {message}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        message: String,
    },
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// An operation named a channel that does not exist.
    #[error("unknown channel {0}")]
    UnknownChannel(String),
    /// The blocking task running the operation died.
    #[error("store task failed: {0}")]
    Task(String),
}

/// Durable channels and events. All methods are safe to call concurrently.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a channel; ids are random, so a clash is an error.
    async fn create_channel(
        &self,
        id: &str,
        token_hash: &[u8],
        created_at_ms: i64,
    ) -> Result<(), StoreError>;
    /// Looks a channel up.
    async fn channel(&self, id: &str) -> Result<Option<ChannelRecord>, StoreError>;
    /// Ids of all channels.
    async fn channels(&self) -> Result<Vec<String>, StoreError>;
    /// Assigns seqs and commits the whole batch in one transaction, in order;
    /// returns once it is durable. Events may belong to several channels.
    /// Only the group committer calls it, one batch at a time. An embedded
    /// store may complete it inline: a hand-off per batch costs more than the commit.
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError>;
    /// Retained events of `channel` with `seq > since`, oldest first, at most `limit`.
    async fn read_since(&self, channel: &str, since: u64, limit: usize)
    -> Result<Page, StoreError>;
    /// Deletes what retention no longer keeps; returns how many events went.
    /// A store may also retire events beyond `keep_events` as newer ones are
    /// appended; `trim` then only deletes what appends left.
    async fn trim(&self, now_ms: i64) -> Result<u64, StoreError>;
    /// Records that a subscriber finished with `seq` (and the status it got).
    async fn record_ack(
        &self,
        channel: &str,
        seq: u64,
        status: Option<u16>,
    ) -> Result<(), StoreError>;
    /// The acks of `channel` for seqs `from_seq..=to_seq`, in seq order. Callers
    /// bound the range: it is at most one row per seq.
    async fn acks(&self, channel: &str, from_seq: u64, to_seq: u64)
    -> Result<Vec<Ack>, StoreError>;
}

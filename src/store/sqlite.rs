//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer connection (behind a mutex) takes whole batches in one
//! transaction; readers come from a small pool and never block the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{ChannelRecord, Page, Retention, Store, StoreError, StoredFrame};
use crate::config::SyncMode;
use crate::event::{Committed, NewEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS channels (
    id         TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    channel     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    frame       TEXT NOT NULL,
    PRIMARY KEY (channel, seq)
);
CREATE TABLE IF NOT EXISTS acks (
    channel  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    status   INTEGER,
    acked_at INTEGER NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
";

/// Idle read connections kept open.
const READER_POOL: usize = 8;
/// How often the background thread folds the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages after which a commit checkpoints by itself, should the
/// background checkpointer fall behind (SQLite's default is 1000).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    sync: SyncMode,
    /// Newest seq per channel seen by this process; guarded together with
    /// the writer (locked only while `writer` is held).
    heads: Mutex<HashMap<String, u64>>,
    /// Dropping it stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    retention: Retention,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

fn open_connection(path: &Path, sync: SyncMode) -> Result<Connection, StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let conn = Connection::open(path).map_err(open_err)?;
    let sync = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;"
    ))
    .map_err(open_err)?;
    Ok(conn)
}

/// Checkpoints off the commit path: a passive checkpoint never blocks the
/// writer, and the committer no longer pays for copying pages back.
fn spawn_checkpointer(conn: Connection) -> Result<mpsc::Sender<()>, StoreError> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("hookpipe-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        })
        .map_err(|e| StoreError::Open {
            path: "checkpoint thread".into(),
            message: e.to_string(),
        })?;
    Ok(stop)
}

impl SqliteStore {
    /// Opens (creating if needed) `hookpipe.db` in `data_dir`.
    pub fn open(data_dir: &Path, sync: SyncMode, retention: Retention) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.display().to_string(),
            message: format!("cannot create the data directory: {e}"),
        })?;
        let path = data_dir.join("hookpipe.db");
        let writer = open_connection(&path, sync)?;
        writer.execute_batch(SCHEMA).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        let checkpointer = spawn_checkpointer(open_connection(&path, sync)?)?;
        let inner = Inner {
            path,
            sync,
            heads: Mutex::new(HashMap::new()),
            _checkpointer: checkpointer,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            retention,
        };
        let removed = inner.trim_counts()?;
        if removed > 0 {
            tracing::info!(
                removed,
                "applied --retain-events to events kept by an earlier run"
            );
        }
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool so SQLite never stalls the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl Inner {
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means another operation panicked mid-way; its
        // transaction rolled back when the connection's guard dropped.
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            // Readers never write, so the sync mode is irrelevant to them.
            None => open_connection(&self.path, SyncMode::Normal)?,
        };
        let out = f(&mut conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }

    fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError> {
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // One counter update per channel per batch, not per event.
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for ev in &batch {
                *counts.entry(ev.channel.as_str()).or_default() += 1;
            }
            // Heads live in memory (loaded once per channel), so a batch
            // touches no channel rows: the events table is the record.
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            let mut next: HashMap<&str, u64> = HashMap::with_capacity(counts.len());
            for channel in counts.keys() {
                let head = match heads.get(*channel) {
                    Some(h) => *h,
                    None => head_of(&tx, channel)?
                        .ok_or_else(|| StoreError::UnknownChannel((*channel).to_owned()))?,
                };
                next.insert(channel, head + 1);
            }
            let mut committed = Vec::with_capacity(batch.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (channel, seq, received_at, frame) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for ev in &batch {
                    let slot = next.get_mut(ev.channel.as_str()).expect("counted above");
                    let seq = *slot;
                    *slot += 1;
                    let frame = ev.frame(seq);
                    insert.execute(params![ev.channel, seq, ev.received_at_ms, frame])?;
                    committed.push(Committed {
                        channel: ev.channel.clone(),
                        seq,
                        id: ev.id.clone(),
                        frame,
                    });
                }
            }
            {
                // Count retention in the same transaction: each batch deletes
                // as many rows as fell out of the window, so the table stays
                // at its size with no trimming bursts that stall ingest.
                let keep = self.retention.keep_events;
                let mut drop_old = tx.prepare_cached(
                    "DELETE FROM events WHERE channel = ?1 AND seq > ?2 AND seq <= ?3",
                )?;
                let mut drop_acks = tx.prepare_cached(
                    "DELETE FROM acks WHERE channel = ?1 AND seq > ?2 AND seq <= ?3",
                )?;
                for (channel, n) in &counts {
                    let last = next[channel] - 1;
                    let (from, upto) = ((last - n).saturating_sub(keep), last.saturating_sub(keep));
                    if upto > from {
                        drop_old.execute(params![channel, from, upto])?;
                        drop_acks.execute(params![channel, from, upto])?;
                    }
                }
            }
            tx.commit()?;
            // Only a committed batch moves the heads.
            for (channel, n) in next {
                heads.insert(channel.to_owned(), n - 1);
            }
            Ok(committed)
        })
    }

    fn read_since(
        &self,
        channel: &str,
        since: u64,
        limit: usize,
        now_ms: i64,
    ) -> Result<Page, StoreError> {
        let keep = self.retention.keep_events;
        let cutoff = now_ms - self.retention.max_age.as_millis() as i64;
        self.with_reader(|conn| {
            // One snapshot for both reads, so `head` matches `events`.
            let tx = conn.transaction()?;
            let head = head_of(&tx, channel)?
                .ok_or_else(|| StoreError::UnknownChannel(channel.to_owned()))?;
            // Reads apply retention themselves, so trimming is only housekeeping.
            let oldest_kept = head.saturating_sub(keep);
            let mut stmt = tx.prepare_cached(
                "SELECT seq, frame FROM events WHERE channel = ?1 AND seq > ?2 AND received_at >= ?3
                 ORDER BY seq LIMIT ?4",
            )?;
            let events = stmt
                .query_map(
                    params![
                        channel,
                        since.max(oldest_kept).min(i64::MAX as u64),
                        cutoff,
                        limit as i64
                    ],
                    |r| {
                        Ok(StoredFrame {
                            seq: r.get(0)?,
                            frame: r.get(1)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            drop(stmt);
            tx.finish()?;
            Ok(Page { events, head })
        })
    }

    fn trim(&self, now_ms: i64) -> Result<u64, StoreError> {
        let cutoff = now_ms - self.retention.max_age.as_millis() as i64;
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Rowids follow commit order and received_at follows arrival, so
            // old rows come first: the scan stops at the first young one.
            let first_young: Option<i64> = tx
                .query_row(
                    "SELECT rowid FROM events WHERE received_at >= ?1 ORDER BY rowid LIMIT 1",
                    params![cutoff],
                    |r| r.get(0),
                )
                .optional()?;
            let bound = first_young.unwrap_or(i64::MAX);
            let any_old: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE rowid < ?1 AND received_at < ?2)",
                params![bound, cutoff],
                |r| r.get(0),
            )?;
            if !any_old {
                return Ok(0);
            }
            // Heads are kept by the events themselves; before age may delete
            // a channel's last event, write its head down.
            tx.execute(
                "UPDATE channels SET last_seq = (SELECT max(seq) FROM events WHERE channel = channels.id)
                 WHERE EXISTS (SELECT 1 FROM events WHERE channel = channels.id)",
                [],
            )?;
            let deleted = tx.execute(
                "DELETE FROM events WHERE rowid < ?1 AND received_at < ?2",
                params![bound, cutoff],
            )? as u64;
            tx.execute("DELETE FROM acks WHERE acked_at < ?1", params![cutoff])?;
            tx.commit()?;
            Ok(deleted)
        })
    }

    /// Applies count retention to what an earlier run (perhaps with a larger
    /// --retain-events) left; appends keep it from then on.
    fn trim_counts(&self) -> Result<u64, StoreError> {
        let keep = self.retention.keep_events;
        self.with_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let heads: Vec<(String, u64)> = tx
                .prepare("SELECT channel, max(seq) FROM events GROUP BY channel")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut deleted = 0;
            for (channel, head) in heads.iter().filter(|(_, h)| *h > keep) {
                let upto = head - keep;
                deleted += tx.execute(
                    "DELETE FROM events WHERE channel = ?1 AND seq <= ?2",
                    params![channel, upto],
                )?;
                tx.execute(
                    "DELETE FROM acks WHERE channel = ?1 AND seq <= ?2",
                    params![channel, upto],
                )?;
            }
            tx.commit()?;
            Ok(deleted as u64)
        })
    }
}

/// A channel's newest seq: its newest event, or the head written down when
/// age retention emptied it. `None` for an unknown channel.
fn head_of(conn: &Connection, channel: &str) -> Result<Option<u64>, StoreError> {
    let head = conn
        .prepare_cached(
            "SELECT max(last_seq, IFNULL((SELECT max(seq) FROM events WHERE channel = ?1), 0))
             FROM channels WHERE id = ?1",
        )?
        .query_row(params![channel], |r| r.get(0))
        .optional()?;
    Ok(head)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_channel(
        &self,
        id: &str,
        token_hash: &[u8],
        created_at_ms: i64,
    ) -> Result<(), StoreError> {
        let (id, hash) = (id.to_owned(), token_hash.to_vec());
        self.blocking(move |inner| {
            inner.with_writer(|conn| {
                conn.execute(
                    "INSERT INTO channels (id, token_hash, created_at) VALUES (?1, ?2, ?3)",
                    params![id, hash, created_at_ms],
                )?;
                Ok(())
            })
        })
        .await
    }

    async fn channel(&self, id: &str) -> Result<Option<ChannelRecord>, StoreError> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            inner.with_reader(|conn| {
                let rec = conn
                    .prepare_cached(
                        "SELECT id, token_hash, created_at,
                                max(last_seq, IFNULL((SELECT max(seq) FROM events WHERE channel = ?1), 0))
                         FROM channels WHERE id = ?1",
                    )?
                    .query_row(params![id], |r| {
                        Ok(ChannelRecord {
                            id: r.get(0)?,
                            token_hash: r.get(1)?,
                            created_at_ms: r.get(2)?,
                            last_seq: r.get(3)?,
                        })
                    })
                    .optional()?;
                Ok(rec)
            })
        })
        .await
    }

    async fn channels(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(|inner| {
            inner.with_reader(|conn| {
                let ids = conn
                    .prepare_cached("SELECT id FROM channels ORDER BY created_at")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
        })
        .await
    }

    /// Runs on the calling thread: a thread hand-off per batch would cost
    /// more than the commit itself. Only `--sync full` waits for an fsync;
    /// then the worker hands its other tasks away while it waits.
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<Committed>, StoreError> {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if self.inner.sync == SyncMode::Full && multi_thread {
            tokio::task::block_in_place(|| self.inner.append(batch))
        } else {
            self.inner.append(batch)
        }
    }

    async fn read_since(
        &self,
        channel: &str,
        since: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let channel = channel.to_owned();
        let now = crate::event::now_ms();
        self.blocking(move |inner| inner.read_since(&channel, since, limit, now))
            .await
    }

    async fn trim(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.blocking(move |inner| inner.trim(now_ms)).await
    }

    async fn record_ack(
        &self,
        channel: &str,
        seq: u64,
        status: Option<u16>,
    ) -> Result<(), StoreError> {
        let channel = channel.to_owned();
        let now = crate::event::now_ms();
        self.blocking(move |inner| {
            inner.with_writer(|conn| {
                conn.prepare_cached(
                    "INSERT INTO acks (channel, seq, status, acked_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (channel, seq) DO UPDATE SET status = excluded.status, acked_at = excluded.acked_at",
                )?
                .execute(params![channel, seq, status, now])?;
                Ok(())
            })
        })
        .await
    }
}
